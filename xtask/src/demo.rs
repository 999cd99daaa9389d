//! `cargo xtask demo`: the whole pipeline on a laptop, no cluster and no Loki needed.
//!
//! Writes a pod-like log tree (`pods/<namespace>_<pod>_<uid>/<container>/0.log` in CRI format, with
//! long lines split into partials and kubelet-style rotation, plus docker json-file containers),
//! runs the release `shipper` binary on it against a Loki-compatible receiver on loopback (real HTTP,
//! protobuf + snappy), shows progress, and verifies every line arrived intact.

use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter, Receiver};
use std::path::Path;
use std::process::{Command, Stdio};
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
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "shipper"]))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let bin = root.join("target/release/shipper");
    let dir = tempfile::Builder::new()
        .prefix("shipper-demo-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let base = dir.path();
    let loki = Receiver::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = base.join("shipper.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  http_listen: 127.0.0.1:{port}\n  log_level: warn\npositions:\n  filename: {pos}\nclient:\n  url: {url}\n  batch_wait: 200ms\ntail:\n  start_at: beginning\ntargets:\n  - paths: [{pods}/*/*/*.log]\n    labels: {{job: demo}}\n    format: cri\n  - paths: [{docker}/*/*-json.log]\n    labels: {{job: demo-docker}}\n    format: docker\n",
            pos = base.join("positions.json").display(),
            url = loki.url(),
            pods = base.join("pods").display(),
            docker = base.join("containers").display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let log = base.join("shipper.log");
    let mut agent = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
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
    let cpu_s = cpu_seconds(agent.id());
    let _ = Command::new("kill").args(["-TERM", &agent.id().to_string()]).status();
    let status = agent.wait().map_err(|e| e.to_string())?;

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
    let mib = (dir_size(&base.join("pods")) + dir_size(&base.join("containers"))) as f64 / (1 << 20) as f64;
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

/// User + system CPU seconds of a process so far (from /proc/<pid>/stat, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes of every file below `dir` (the log files written, rotated ones included).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
