//! `cargo xtask demo`: the whole pipeline on a laptop, no cluster and no Loki needed.
//!
//! Writes a pod-like log tree (`pods/<namespace>_<pod>_<uid>/<container>/0.log` in CRI format, with
//! long lines split into partials and kubelet-style rotation, plus docker json-file containers),
//! runs the release `shipper` binary on it against a Loki-compatible receiver on loopback (real HTTP,
//! protobuf + snappy), shows progress, and verifies every line arrived intact.

use crate::agent::{self, Agent, Target};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter, Receiver};
use std::path::Path;
use std::time::{Duration, Instant};

const PODS: u32 = 8;
const DOCKER: u32 = 2;

struct Opts {
    lines: u64,
    keep: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        lines: 50_000,
        keep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lines" => {
                o.lines = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--lines needs a number of lines per file")?
            }
            "--keep" => o.keep = true,
            other => return Err(format!("unknown demo option {other}; use --lines N and --keep")),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let bin = agent::build_release()?;
    let dir = tempfile::Builder::new()
        .prefix("shipper-demo-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let base = dir.path();
    let loki = Receiver::start();
    let port = agent::free_port()?;
    let (pods, docker) = (base.join("pods/*/*/*.log"), base.join("containers/*/*-json.log"));
    let targets = [
        Target {
            glob: &pods,
            format: "cri",
            job: "demo",
        },
        Target {
            glob: &docker,
            format: "docker",
            job: "demo-docker",
        },
    ];
    let config = agent::write_config(base, &loki.url(), port, &targets, "200ms")?;
    let agent = Agent::start(&bin, &config, port)?;
    eprintln!("shipper running on a generated pod log tree in {}", base.display());

    let files = PODS + DOCKER;
    let total = files as u64 * opts.lines;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} lines in Loki ({per_sec})",
        )
        .map_err(|e| e.to_string())?,
    );
    let start = Instant::now();
    write_tree(base, opts.lines, &loki, &bar)?;
    let arrived = loki.wait_for(
        |s| {
            bar.set_position(s.entry_count() as u64);
            s.entry_count() as u64 >= total
        },
        Duration::from_secs(300),
    );
    let elapsed = start.elapsed();
    bar.finish();
    let cpu_s = agent.cpu_seconds();
    let log = agent.log.clone();
    let status = agent.stop()?;

    let streams = loki.streams();
    let account = Account::from_streams(&streams, (0..files).map(|f| (f, opts.lines)));
    let corrupt = streams
        .values()
        .flatten()
        .filter(|e| match shipper_testkit::parse_tag(&e.line) {
            Some((f, s)) => e.line != message(f, s),
            None => true,
        })
        .count();
    let mib =
        (agent::dir_size(&base.join("pods")) + agent::dir_size(&base.join("containers"))) as f64 / (1 << 20) as f64;
    println!(
        "\nshipped {} lines ({mib:.1} MiB of log files, {} streams) in {:.1} s: {:.1} MiB/s",
        account.received(),
        streams.len(),
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64()
    );
    println!("agent CPU: {cpu_s:.2} s ({:.1} CPU-s per GiB)", cpu_s / (mib / 1024.0));
    println!(
        "verified: {} lost, {} duplicated, {corrupt} corrupt; agent exited with {status}",
        account.lost(),
        account.duplicated()
    );
    if opts.keep {
        println!("kept {} (agent log: {})", dir.keep().display(), log.display());
    }
    if !arrived || account.lost() > 0 || corrupt > 0 || !status.success() {
        return Err("the demo did not deliver every line intact".into());
    }
    Ok(())
}

/// The message of line `seq` of file `f`; every 500th is longer than the runtimes' 16 KiB split.
fn message(f: u32, seq: u64) -> String {
    let len = if seq.is_multiple_of(500) {
        20_000
    } else {
        varied_len(seq, 60, 360)
    };
    tag_line(f, seq, len)
}

/// Writes every file's lines in rounds (so the agent tails them live), rotating the CRI logs like
/// kubelet every 10 MiB.
fn write_tree(base: &Path, lines: u64, loki: &Receiver, bar: &indicatif::ProgressBar) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut writers = Vec::new();
    for p in 0..PODS {
        let ns = ["default", "monitoring", "payments", "web"][p as usize % 4];
        let path = base.join(format!("pods/{ns}_app-{p}-7d9f_{p:08x}-uid/app/0.log"));
        writers.push(LogWriter::create(path, Format::Cri).map_err(io)?);
    }
    for d in 0..DOCKER {
        let id = format!("{d:064x}");
        let path = base.join(format!("containers/{id}/{id}-json.log"));
        writers.push(LogWriter::create(path, Format::Docker).map_err(io)?);
    }
    let mut since_rotation = vec![0u64; writers.len()];
    for chunk in (0..lines).step_by(1000) {
        for (f, w) in writers.iter_mut().enumerate() {
            for seq in chunk..(chunk + 1000).min(lines) {
                let msg = message(f as u32, seq);
                let stream = if seq.is_multiple_of(7) { "stderr" } else { "stdout" };
                w.write_line(stream, &msg).map_err(io)?;
                since_rotation[f] += msg.len() as u64 + 40;
            }
            w.flush().map_err(io)?;
            if since_rotation[f] > 10 << 20 && w.format() == Format::Cri {
                w.rotate_kubelet().map_err(io)?;
                since_rotation[f] = 0;
            }
        }
        bar.set_position(loki.entry_count() as u64);
    }
    Ok(())
}
