//! `cargo xtask bench [SCENARIO…] [--quick]`: runs the release agent against a Loki-compatible sink on
//! loopback (real HTTP, protobuf + snappy decoding), accounts for every line, and reports throughput,
//! CPU per GiB (and its ratio to the physical bound measured in the same run), peak RSS, latency and
//! idle CPU — as a Markdown table on stdout, `target/bench/report.json` and a chart,
//! `target/bench/report.svg`. A full run (every scenario, full sizes) also publishes its results:
//! `docs/bench/report.json`, the page `docs/src/results.md` and README's figures, all from that JSON
//! (see [`results`]).

mod bound;
mod chart;
#[cfg(test)]
mod figures;
mod lag;
mod meta;
mod node;
mod peers;
mod report;
mod results;
mod scenarios;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCENARIOS: &[&str] = &[
    "throughput-1",
    "throughput-100",
    "rotation",
    "live",
    "idle-1000",
    "idle-10000",
    "node",
    "node-glob",
    "stages",
    "wake",
];

/// The runs of the `wake` scenario: single-line writes per second, spread over how many files.
const WAKE_RUNS: [(u64, u32); 3] = [(100_000, 1_000), (10_000, 1_000), (100_000, 10_000)];

/// The watchers the `wake` scenario compares.
const WATCHERS: &[&str] = &["ebpf", "inotify", "poll"];

/// One scenario's numbers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    /// shipper, or the peer run for comparison.
    pub agent: String,
    pub files: u32,
    pub lines: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_per_s: f64,
    pub lines_per_s: f64,
    pub cpu_seconds: f64,
    pub cpu_s_per_gib: f64,
    /// The in-process bound (read + split + parse + encode + snappy on one core), same bytes.
    pub bound_cpu_s_per_gib: Option<f64>,
    /// The CPU per GiB of the run this one is weighed against, when that is not a bound (the stages
    /// scenario: shipper's plain path, same bytes).
    pub plain_cpu_s_per_gib: Option<f64>,
    pub peak_rss_mib: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub latency_ms: Option<Latency>,
    pub idle_cpu_ms: Option<f64>,
    /// Agent CPU (cores) while a fixed write rate goes on (`wake`).
    pub cores: Option<f64>,
    /// Write→read latency as the agent measured it (`wake`): how soon a write wakes the reader.
    pub wake_ms: Option<Latency>,
    /// What each of shipper's threads cost over the run (empty for peers): where the CPU went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<Thread>,
}

/// One thread name's cost over a run: CPU, sleeps (voluntary switches) and preemptions.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
pub struct Thread {
    pub name: String,
    pub count: usize,
    pub cpu_seconds: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub struct Ctx {
    pub quick: bool,
    pub work: PathBuf,
}

impl Ctx {
    /// A fresh directory for a scenario's files.
    pub fn dir(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.work.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }
}

const USAGE: &str = "usage: cargo xtask bench [SCENARIO…] [--quick]\n  scenarios: throughput-1, throughput-100, \
rotation, live, idle-1000, idle-10000, node, node-glob, stages, wake (default: all)\n  peers side by side: set PROMTAIL_BIN=/path/to/promtail, FLUENTBIT_BIN=/path/to/fluent-bit, VECTOR_BIN=/path/to/vector and/or ALLOY_BIN=/path/to/alloy\n  another shipper build (to compare two; its results are not published): set SHIPPER_BIN=/path/to/shipper";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(flag) = args.iter().find(|a| a.starts_with('-') && *a != "--quick") {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        return Err(format!("unknown option `{flag}`\n{USAGE}"));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(bad) = chosen.iter().find(|c| !SCENARIOS.contains(c)) {
        return Err(format!(
            "unknown scenario `{bad}`; choose from {}",
            SCENARIOS.join(", ")
        ));
    }
    // Only a run of every scenario at full size publishes its results (docs/bench, results.md, README).
    let publish = !quick
        && std::env::var_os("SHIPPER_BIN").is_none()
        && (chosen.is_empty() || SCENARIOS.iter().all(|s| chosen.contains(s)));
    if chosen.is_empty() {
        chosen = SCENARIOS.to_vec();
    }
    let shipper = match std::env::var_os("SHIPPER_BIN") {
        Some(bin) => std::path::PathBuf::from(bin),
        None => crate::agent::build_release()?,
    };
    let peers = peers::Peer::all(shipper)?;
    // The run's wall time, from the release binary being built.
    let started = std::time::Instant::now();
    let commit = meta::commit();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let out_dir = root.join("target/bench");
    let ctx = Ctx {
        quick,
        work: out_dir.join("work"),
    };
    let mut outcomes = Vec::new();
    for name in chosen {
        if name == "stages" {
            // shipper with and without stages on the same file, and Promtail with its own stages.
            eprintln!("== stages{}", if quick { " (quick)" } else { "" });
            for o in scenarios::stages(&ctx, &peers)? {
                eprintln!("{}", report::line(&o));
                outcomes.push(o);
            }
            continue;
        }
        if name == "node" {
            // Kubernetes discovery against the API stand-in: peers would need their own service discovery.
            eprintln!("== node (shipper{})", if quick { ", quick" } else { "" });
            let o = node::node(&ctx, &peers[0].bin)?;
            eprintln!("{}", report::line(&o));
            outcomes.push(o);
            continue;
        }
        if name == "node-glob" {
            // The same node through a path glob: every agent can read it, so peers run too.
            for peer in &peers {
                eprintln!("== node-glob ({}{})", peer.name(), if quick { ", quick" } else { "" });
                let o = node::node_glob(&ctx, peer)?;
                eprintln!("{}", report::line(&o));
                outcomes.push(o);
            }
            continue;
        }
        if name == "wake" {
            // shipper's own watchers side by side; peers have no such choice.
            // At 100k writes/s this 2-core machine is saturated (writer, agent and sink); at 10k
            // writes/s it is not, which shows the wake latency itself.
            for (rate, files) in WAKE_RUNS {
                for mode in WATCHERS {
                    eprintln!(
                        "== wake ({mode}, {rate} writes/s over {files} files{})",
                        if quick { ", quick" } else { "" }
                    );
                    let o = scenarios::wake(&ctx, &peers[0].bin, mode, rate, files)?;
                    eprintln!("{}", report::line(&o));
                    outcomes.push(o);
                }
            }
            continue;
        }
        for peer in &peers {
            eprintln!("== {name} ({}{})", peer.name(), if quick { ", quick" } else { "" });
            let o = match name {
                "throughput-1" => scenarios::throughput(&ctx, peer, name, 1, if quick { 64 << 20 } else { 1 << 30 })?,
                "throughput-100" => {
                    scenarios::throughput(&ctx, peer, name, 100, if quick { 1 << 20 } else { 10 << 20 })?
                }
                "rotation" => scenarios::rotation(&ctx, peer)?,
                "live" => scenarios::live(&ctx, peer)?,
                "idle-1000" => scenarios::idle(&ctx, peer, 1_000)?,
                "idle-10000" => scenarios::idle(&ctx, peer, 10_000)?,
                _ => unreachable!("checked above"),
            };
            eprintln!("{}", report::line(&o));
            outcomes.push(o);
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.work);
    let report = results::Report {
        run: meta::collect(&peers, quick, started.elapsed().as_secs_f64(), commit)?,
        outcomes,
    };
    println!("{}", report::markdown(&report.outcomes, quick));
    println!("{}", report::targets(&report.outcomes, quick));
    // The API-server load is measured against a real Kubernetes by tests/cluster (load.rs), which
    // writes it beside this report; shown here when a run of the cluster tests left it.
    if let Ok(api_load) = std::fs::read_to_string(out_dir.join("api-load.md")) {
        println!("{api_load}");
    }
    let json = out_dir.join("report.json");
    let bytes = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&json, &bytes).map_err(|e| format!("{}: {e}", json.display()))?;
    let svg = out_dir.join("report.svg");
    std::fs::write(&svg, chart::svg(&report.outcomes)).map_err(|e| format!("{}: {e}", svg.display()))?;
    eprintln!("report: {} and {}", json.display(), svg.display());
    // Peers may lose lines (that is what the comparison shows); shipper must not, whatever its watcher.
    let lost = report
        .outcomes
        .iter()
        .filter(|o| o.lost > 0 && o.agent.starts_with("shipper"))
        .count();
    eprintln!("wall time: {:.0} s", started.elapsed().as_secs_f64());
    if lost > 0 {
        return Err(format!("lines were lost in {lost} scenario(s)"));
    }
    if publish {
        results::publish(root, &bytes, &report)?;
        eprintln!("published: docs/bench/report.json, docs/src/results.md and README.md's figures");
    }
    Ok(())
}
