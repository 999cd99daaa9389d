//! The bench scenarios. Each generates tagged lines (file id, sequence number), runs the release agent
//! against the sink, waits until every line arrived, and accounts for all of them.

use super::peers::Peer;
use super::{bound, Ctx, Latency, Outcome};
use crate::agent::{self, Agent};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter, Receiver};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// CRI lines of realistic length spread (~220 bytes with the CRI header on average).
pub(super) fn line(f: u32, seq: u64) -> String {
    tag_line(f, seq, varied_len(seq, 80, 280))
}

fn pods_glob(dir: &Path) -> PathBuf {
    dir.join("pods/*/*/*.log")
}

fn pod_log(dir: &Path, f: u32) -> PathBuf {
    dir.join(format!("pods/bench_pod-{f}_uid-{f}/app/0.log"))
}

/// Writes `files` CRI files of about `bytes` each; returns lines per file.
fn write_files(dir: &Path, files: u32, bytes: u64) -> Result<Vec<u64>, String> {
    let mut counts = Vec::new();
    for f in 0..files {
        let path = pod_log(dir, f);
        let mut w = LogWriter::create(&path, Format::Cri).map_err(|e| e.to_string())?;
        let (mut written, mut seq) = (0u64, 0u64);
        while written < bytes {
            let l = line(f, seq);
            written += l.len() as u64 + 36;
            w.write_line("stdout", &l).map_err(|e| e.to_string())?;
            seq += 1;
        }
        w.flush().map_err(|e| e.to_string())?;
        counts.push(seq);
    }
    Ok(counts)
}

/// Starts `peer` on the scenario's files, pushing to `loki`.
fn start(peer: &Peer, dir: &Path, loki: &Receiver, batch_wait: &str) -> Result<Agent, String> {
    peer.start(dir, &pods_glob(dir), &loki.url(), batch_wait)
}

/// Waits until every line `0..n` of each file arrived (duplicates do not count), with a progress bar.
pub(super) fn wait_all(loki: &Receiver, expected: &[(u32, u64)], timeout: Duration) -> Result<Account, String> {
    let total: u64 = expected.iter().map(|e| e.1).sum();
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("  [{elapsed_precise}] {bar:40} {pos}/{len} lines ({per_sec})")
    {
        bar.set_style(style);
    }
    let deadline = Instant::now() + timeout;
    let account = || loki.tally_account().ok_or("the bench sink must be a tallying receiver");
    loop {
        let n = loki.entry_count() as u64;
        bar.set_position(n.min(total));
        if n >= total || Instant::now() >= deadline {
            let account = account()?;
            if account.lost() == 0 || Instant::now() >= deadline {
                bar.finish_and_clear();
                return Ok(account);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the agent's CPU and peak RSS, stops it, and fills the outcome of scenario `name`.
pub(super) fn finish(
    agent: Agent,
    agent_name: &str,
    name: &str,
    dir: &Path,
    files: u32,
    account: &Account,
    secs: f64,
) -> Result<Outcome, String> {
    let (cpu, rss) = (agent.cpu_seconds(), agent.peak_rss());
    let threads = if agent_name.starts_with("shipper") {
        threads(name, agent.pid())
    } else {
        Vec::new()
    };
    agent.stop()?;
    let bytes = agent::dir_size(&dir.join("pods"));
    Ok(Outcome {
        scenario: name.into(),
        agent: agent_name.into(),
        files,
        bytes,
        lines: account.expected(),
        seconds: secs,
        mib_per_s: bytes as f64 / (1 << 20) as f64 / secs,
        lines_per_s: account.expected() as f64 / secs,
        cpu_seconds: cpu,
        cpu_s_per_gib: cpu / (bytes as f64 / (1u64 << 30) as f64),
        peak_rss_mib: rss as f64 / (1 << 20) as f64,
        lost: account.lost(),
        duplicated: account.duplicated(),
        reordered: account.out_of_order(),
        threads,
        ..Default::default()
    })
}

/// Files written first, then read from their beginning as fast as the agent can.
pub fn throughput(ctx: &Ctx, peer: &Peer, name: &str, files: u32, bytes: u64) -> Result<Outcome, String> {
    let dir = ctx.dir(name)?;
    let counts = write_files(&dir, files, bytes)?;
    let paths: Vec<PathBuf> = (0..files).map(|f| pod_log(&dir, f)).collect();
    let bound = bound::cpu_s_per_gib(&paths)?;
    let expected: Vec<(u32, u64)> = counts.iter().enumerate().map(|(f, &n)| (f as u32, n)).collect();
    let loki = Receiver::start_tally(expected.iter().copied(), false);
    let agent = start(peer, &dir, &loki, "1s")?;
    let t0 = Instant::now();
    let account = wait_all(&loki, &expected, Duration::from_secs(600))?;
    let mut o = finish(
        agent,
        peer.name(),
        name,
        &dir,
        files,
        &account,
        t0.elapsed().as_secs_f64(),
    )?;
    o.bound_cpu_s_per_gib = Some(bound);
    Ok(o)
}

/// Writers at full speed with kubelet-style rotation every 10 MiB while the agent tails.
pub fn rotation(ctx: &Ctx, peer: &Peer) -> Result<Outcome, String> {
    let dir = ctx.dir("rotation")?;
    let files = 4u32;
    let total: u64 = if ctx.quick { 64 << 20 } else { 512 << 20 };
    // Lines average ~236 bytes with the CRI header; whole rounds of 100 per file.
    let per_file = (total / u64::from(files) / 236).div_ceil(100) * 100;
    let expected: Vec<(u32, u64)> = (0..files).map(|f| (f, per_file)).collect();
    let loki = Receiver::start_tally(expected.iter().copied(), false);
    // The files exist (empty) before the agent starts: every agent finds them at once.
    let mut writers = Vec::new();
    for f in 0..files {
        writers.push(LogWriter::create(pod_log(&dir, f), Format::Cri).map_err(|e| e.to_string())?);
    }
    let agent = start(peer, &dir, &loki, "1s")?;
    let t0 = Instant::now();
    let mut since = vec![0u64; files as usize];
    for seq in (0..per_file).step_by(100) {
        for (f, w) in writers.iter_mut().enumerate() {
            for s in seq..seq + 100 {
                let l = line(f as u32, s);
                since[f] += l.len() as u64 + 36;
                w.write_line("stdout", &l).map_err(|e| e.to_string())?;
            }
            if since[f] >= 10 << 20 {
                w.rotate_kubelet().map_err(|e| e.to_string())?;
                since[f] = 0;
            }
        }
    }
    for w in &mut writers {
        w.flush().map_err(|e| e.to_string())?;
    }
    let account = wait_all(&loki, &expected, Duration::from_secs(600))?;
    finish(
        agent,
        peer.name(),
        "rotation",
        &dir,
        files,
        &account,
        t0.elapsed().as_secs_f64(),
    )
}

/// A writer appends 50,000 lines/s across 100 files; latency is write time → stored by the sink.
pub fn live(ctx: &Ctx, peer: &Peer) -> Result<Outcome, String> {
    let dir = ctx.dir("live")?;
    let files = 100u32;
    let secs = if ctx.quick { 5 } else { 30 };
    let rate = 50_000u64;
    // Lines go round-robin over the files, `rate / 100` every 10 ms.
    let per_file = rate * secs / u64::from(files);
    let LiveFiles {
        expected,
        loki,
        mut writers,
    } = live_files(&dir, files, per_file)?;
    let agent = start(peer, &dir, &loki, "100ms")?;
    let t0 = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = rate / 100;
    let mut seqs = vec![0u64; files as usize];
    let mut next = 0usize;
    for k in 0..(secs * 100) {
        for _ in 0..per_tick {
            let f = next % files as usize;
            next += 1;
            writers[f]
                .write_line("stdout", &line(f as u32, seqs[f]))
                .map_err(|e| e.to_string())?;
            seqs[f] += 1;
        }
        for w in &mut writers {
            w.flush().map_err(|e| e.to_string())?;
        }
        let due = t0 + tick * (k as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    if seqs.iter().any(|&n| n != per_file) {
        return Err(format!("live: wrote {seqs:?} lines per file, expected {per_file} each"));
    }
    let account = wait_all(&loki, &expected, Duration::from_secs(120))?;
    let mut o = finish(
        agent,
        peer.name(),
        "live",
        &dir,
        files,
        &account,
        t0.elapsed().as_secs_f64(),
    )?;
    o.latency_ms = Some(percentiles(loki.latencies_ns()));
    Ok(o)
}

/// `files` files of one line: all shipped, then the agent's CPU while they stay idle, once shipper's
/// safety net has backed off, per 10 s (measured over 60 s; 10 s with --quick, which does not wait)
/// (`idle-1000`, `idle-10000`).
pub fn idle(ctx: &Ctx, peer: &Peer, files: u32) -> Result<Outcome, String> {
    let name = format!("idle-{files}");
    let dir = ctx.dir(&name)?;
    for f in 0..files {
        let mut w = LogWriter::create(pod_log(&dir, f), Format::Cri).map_err(|e| e.to_string())?;
        w.write_line("stdout", &line(f, 0)).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
    }
    let expected: Vec<(u32, u64)> = (0..files).map(|f| (f, 1)).collect();
    let loki = Receiver::start_tally(expected.iter().copied(), false);
    let agent = start(peer, &dir, &loki, "1s")?;
    let t0 = Instant::now();
    let account = wait_all(&loki, &expected, Duration::from_secs(300))?;
    let secs = t0.elapsed().as_secs_f64();
    // Idle means settled: shipper's safety net (every file checked, the targets rescanned) starts
    // at tail.rescan_interval and backs off while the events miss nothing, up to
    // tail.max_rescan_interval (60 s by default). The window opens just after a round at that
    // spacing, so it holds one round, as every minute of an idle node does. (--quick does not wait:
    // its window holds the early, closer rounds.)
    if !ctx.quick && agent.metrics_url.is_some() {
        let until = Instant::now() + Duration::from_secs(400);
        let metric = |name: &str| agent.metric(name).unwrap_or(0.0);
        while metric("shipper_rescan_interval_seconds") < 60.0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
        let rounds = metric("shipper_scans_total");
        while metric("shipper_scans_total") <= rounds && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // Over the spaced rounds of the safety net (tail.rescan_interval, backing off to
    // tail.max_rescan_interval while the events miss nothing), reported per 10 s.
    let window = if ctx.quick { 10 } else { 60 };
    let before = agent.cpu_seconds();
    std::thread::sleep(Duration::from_secs(window));
    let idle = (agent.cpu_seconds() - before) * 10.0 / window as f64;
    let mut o = finish(agent, peer.name(), &name, &dir, files, &account, secs)?;
    o.idle_cpu_ms = Some(idle * 1000.0);
    Ok(o)
}

/// How fast each watcher wakes the reader and what it costs: `rate` single-line writes/s (one write
/// syscall each) spread over `files` files, `batch_wait: 10ms`; latency is write → stored by the sink,
/// write → read is the agent's own measure, cores is the agent's CPU while the writes go on.
pub fn wake(ctx: &Ctx, bin: &Path, mode: &str, rate: u64, files: u32) -> Result<Outcome, String> {
    let name = format!("wake-{}k-{files}f-{mode}", rate / 1000);
    let dir = ctx.dir(&name)?;
    let secs = if ctx.quick { 1 } else { 5 };
    let per_file = rate * secs / u64::from(files);
    let LiveFiles {
        expected,
        loki,
        mut writers,
    } = live_files(&dir, files, per_file)?;
    let port = agent::free_port()?;
    let glob = pods_glob(&dir);
    let targets = [agent::Target {
        glob: &glob,
        format: "cri",
        job: "bench",
    }];
    let tail = format!("  watch: {mode}\n  poll_interval: 250ms\n");
    let config = agent::write_config_with(&dir, &loki.url(), port, &targets, "10ms", &tail)?;
    let agent = Agent::start(bin, &config, port)?;
    let cpu0 = agent.cpu_seconds();
    let t0 = Instant::now();
    let mut seqs = vec![0u64; files as usize];
    let total = rate * secs;
    // Paced every millisecond's worth of writes, so they come steadily rather than in bursts.
    let step = (rate / 1_000).max(1);
    for n in 0..total {
        let f = (n % u64::from(files)) as usize;
        let w = &mut writers[f];
        w.write_line("stdout", &line(f as u32, seqs[f]))
            .map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        seqs[f] += 1;
        if n % step == step - 1 {
            let due = t0 + Duration::from_secs_f64((n + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let writing = t0.elapsed().as_secs_f64();
    let cores = (agent.cpu_seconds() - cpu0) / writing;
    let account = wait_all(&loki, &expected, Duration::from_secs(120))?;
    let wake = super::lag::scrape(port)?;
    let agent_name = format!("shipper ({mode})");
    let mut o = finish(
        agent,
        &agent_name,
        &name,
        &dir,
        files,
        &account,
        t0.elapsed().as_secs_f64(),
    )?;
    o.cores = Some(cores);
    o.latency_ms = Some(percentiles(loki.latencies_ns()));
    o.wake_ms = Some(wake);
    Ok(o)
}

/// What each of the agent's threads cost over the whole run (start included): CPU, and how often it
/// slept and woke (voluntary switches) or was preempted. Wake-ups are what batching reads and
/// chunks saves; they are far less noisy than CPU time on a shared machine.
fn threads(scenario: &str, pid: u32) -> Vec<super::Thread> {
    eprintln!("   {scenario}: threads (name ×count: CPU s, voluntary / involuntary context switches)");
    let mut all = Vec::new();
    for t in shipper_testkit::proc::thread_costs(pid) {
        eprintln!(
            "     {:<16} ×{:<2} {:>7.2} s {:>9} / {}",
            t.name, t.threads, t.cpu_seconds, t.voluntary_switches, t.involuntary_switches
        );
        all.push(super::Thread {
            name: t.name,
            count: t.threads,
            cpu_seconds: t.cpu_seconds,
            voluntary_switches: t.voluntary_switches,
            involuntary_switches: t.involuntary_switches,
        });
    }
    all
}

/// p50, p99 and max of latencies in nanoseconds, in milliseconds.
pub(super) fn percentiles(mut lat: Vec<i64>) -> Latency {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |&ns| ns as f64 / 1e6)
    };
    Latency {
        p50: pct(0.5),
        p99: pct(0.99),
        max: pct(1.0),
    }
}

struct LiveFiles {
    expected: Vec<(u32, u64)>,
    loki: Receiver,
    writers: Vec<LogWriter>,
}

/// For a live scenario: the expected lines (`per_file` each), a tallying sink that keeps latencies,
/// and the `files` empty CRI files, created before any agent starts.
fn live_files(dir: &Path, files: u32, per_file: u64) -> Result<LiveFiles, String> {
    let expected: Vec<(u32, u64)> = (0..files).map(|f| (f, per_file)).collect();
    let loki = Receiver::start_tally(expected.iter().copied(), true);
    let mut writers = Vec::new();
    for f in 0..files {
        writers.push(LogWriter::create(pod_log(dir, f), Format::Cri).map_err(|e| e.to_string())?);
    }
    Ok(LiveFiles {
        expected,
        loki,
        writers,
    })
}

/// The stages of the `stages` scenario, what a typical JSON app needs; shipper and Promtail run the
/// same list (indented to where each config puts it).
const PIPELINE: &str = r#"- multiline: {firstline: '^\{', max_wait_time: 100ms}
- json: {expressions: {level: "", msg: "", trace: ctx.trace_id}}
- labels: {level: ""}
- structured_metadata: {trace_id: trace}
- output: {source: msg}
"#;

fn indented(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{:by$}{l}\n", "")).collect()
}

/// shipper's target settings of the `stages` scenario: the namespace and pod from the path by
/// relabel rules (once per file), then [`PIPELINE`].
fn shipper_stages() -> String {
    let relabel = r#"relabel_configs:
  - source_labels: [__path__]
    regex: '.*/pods/([^_]+)_([^_]+)_.*'
    target_label: namespace
  - source_labels: [__path__]
    regex: '.*/pods/([^_]+)_([^_]+)_.*'
    replacement: $2
    target_label: pod
pipeline_stages:
"#;
    relabel.to_string() + &indented(PIPELINE, 2)
}

/// Promtail's stages doing the same work. Its relabel rules see the target's glob, not each
/// file's path, so the namespace and pod come from a `regex` stage on `filename` instead.
fn promtail_stages() -> String {
    let regex = r#"- regex:
    source: filename
    expression: '.*/pods/(?P<namespace>[^_]+)_(?P<pod>[^_]+)_.*'
- labels: {namespace: "", pod: ""}
"#;
    indented(&(regex.to_string() + PIPELINE), 6)
}

/// One CRI file of JSON app lines (the tag opens the `msg` value); every 50th entry is an error
/// followed by a two-line stack trace, which `multiline` joins to it.
fn write_json_file(dir: &Path, bytes: u64) -> Result<u64, String> {
    let path = pod_log(dir, 0);
    let mut w = LogWriter::create(&path, Format::Cri).map_err(|e| e.to_string())?;
    let (mut written, mut seq) = (0u64, 0u64);
    while written < bytes {
        let level = if seq % 50 == 0 {
            "error"
        } else if seq % 7 == 0 {
            "warn"
        } else {
            "info"
        };
        let l = format!(
            r#"{{"msg":"{}","level":"{level}","ctx":{{"trace_id":"{:016x}","span":{}}},"caller":"server/handler.go:{}"}}"#,
            line(0, seq),
            seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            seq % 977,
            seq % 400
        );
        written += l.len() as u64 + 36;
        w.write_line("stdout", &l).map_err(|e| e.to_string())?;
        if level == "error" {
            for frame in [
                "\tat com.example.Handler.handle(Handler.java:42)",
                "\tat com.example.Server.run(Server.java:7)",
            ] {
                written += frame.len() as u64 + 36;
                w.write_line("stdout", frame).map_err(|e| e.to_string())?;
            }
        }
        seq += 1;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(seq)
}

/// The same JSON file read twice from its beginning: with no stages, then with relabel rules, json
/// parsing, labels, structured metadata, output and multiline on. Both rows are reported; the stages
/// row's `× bound` column is its CPU per GiB as a multiple of the plain row's (marked "plain"). With
/// `PROMTAIL_BIN`, Promtail reads it a third time with its own stages doing the same work (its
/// column: the same multiple of shipper's plain path).
pub fn stages(ctx: &Ctx, peers: &[Peer]) -> Result<Vec<Outcome>, String> {
    let bin = &peers[0].bin;
    let dir = ctx.dir("stages")?;
    let n = write_json_file(&dir, if ctx.quick { 64 << 20 } else { 1 << 30 })?;
    let mut out = Vec::new();
    for (agent_name, with_stages) in [("shipper (plain)", false), ("shipper (stages)", true)] {
        let _ = std::fs::remove_file(dir.join("positions.json"));
        let loki = Receiver::start_tally([(0, n)], false);
        let port = agent::free_port()?;
        let targets = [agent::Target {
            glob: &pods_glob(&dir),
            format: "cri",
            job: "bench",
        }];
        let config = agent::write_config(&dir, &loki.url(), port, &targets, "1s")?;
        if with_stages {
            let yaml = std::fs::read_to_string(&config).map_err(|e| e.to_string())? + &shipper_stages();
            std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
        }
        let a = Agent::start(bin, &config, port)?;
        let t0 = Instant::now();
        let account = wait_all(&loki, &[(0, n)], Duration::from_secs(600))?;
        let o = finish(a, agent_name, "stages", &dir, 1, &account, t0.elapsed().as_secs_f64())?;
        out.push(o);
    }
    if let Some(promtail) = peers.iter().find(|p| p.kind == super::peers::Kind::Promtail) {
        let _ = std::fs::remove_file(dir.join("promtail-positions.yaml"));
        let loki = Receiver::start_tally([(0, n)], false);
        let a = super::peers::start_promtail(
            &promtail.bin,
            &dir,
            &pods_glob(&dir),
            &loki.url(),
            "1s",
            &promtail_stages(),
        )?;
        let t0 = Instant::now();
        let account = wait_all(&loki, &[(0, n)], Duration::from_secs(600))?;
        out.push(finish(
            a,
            "promtail (stages)",
            "stages",
            &dir,
            1,
            &account,
            t0.elapsed().as_secs_f64(),
        )?);
    }
    if let [plain, staged, rest @ ..] = &mut out[..] {
        staged.plain_cpu_s_per_gib = Some(plain.cpu_s_per_gib);
        for peer in rest {
            peer.plain_cpu_s_per_gib = Some(plain.cpu_s_per_gib);
        }
        eprintln!(
            "stages: {:.0} MiB/s with stages, {:.0} MiB/s plain: {:.0}% of the plain path",
            staged.mib_per_s,
            plain.mib_per_s,
            100.0 * staged.mib_per_s / plain.mib_per_s
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Promtail config of the stages row is one Promtail accepts, stage for stage: read by
    /// `shipper convert` (which lowers Promtail's stages one by one and reports what it does not
    /// know), every stage comes through, in order, after `cri`.
    #[test]
    fn promtail_stages_config_is_read_stage_for_stage() {
        let yaml = super::super::peers::promtail_config(
            Path::new("/tmp/b"),
            Path::new("/tmp/b/pods/*/*/*.log"),
            "http://127.0.0.1:1/loki/api/v1/push",
            9,
            "1s",
            &promtail_stages(),
        );
        let out = shipper::convert::convert(
            shipper::convert::Source::Promtail,
            shipper::convert::Target::Config,
            &yaml,
            "promtail.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let converted: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out.yaml).unwrap();
        let stages = &converted["targets"][0]["pipeline_stages"];
        let names: Vec<String> = stages
            .as_sequence()
            .unwrap_or_else(|| panic!("no stages in\n{}", out.yaml))
            .iter()
            .filter_map(|s| s.as_mapping()?.keys().next()?.as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            names,
            [
                "regex",
                "labels",
                "multiline",
                "json",
                "labels",
                "structured_metadata",
                "output"
            ],
            "{}",
            out.yaml
        );
    }
}
