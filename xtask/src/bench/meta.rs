//! What a bench run ran on: the date (UTC), the machine, the commit, shipper's version and each
//! peer's, so a published result says where its figures come from.

use super::peers::{Kind, Peer, PEER_VARS};
use serde::{Deserialize, Serialize};
use std::process::Command;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunMeta {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    pub quick: bool,
    pub wall_seconds: f64,
    pub machine: Machine,
    /// `git rev-parse HEAD`, with `-dirty` when the tree had changes.
    pub commit: String,
    pub shipper_version: String,
    /// Every peer the harness knows, measured or not.
    pub peers: Vec<PeerRun>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PeerRun {
    /// As the report's rows name it (`promtail`, `fluent-bit`, …).
    pub name: String,
    /// The variable that names its binary.
    pub env: String,
    /// The first line of its version output; `None` when the variable was not set.
    pub version: Option<String>,
}

/// The first line a command prints (stdout, else stderr), trimmed; "unknown" when it cannot run.
fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .and_then(|o| {
            let out = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&out)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: (kib / (1u64 << 20) as f64 * 10.0).round() / 10.0,
        kernel: first_line(Command::new("uname").arg("-r")),
        cpu,
    }
}

/// The commit measured (read when the run starts: the tree may move while it runs).
pub fn commit() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let head = first_line(Command::new("git").current_dir(&root).args(["rev-parse", "HEAD"]));
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

/// The run's metadata; `peers` are the agents that ran (shipper first).
pub fn collect(peers: &[Peer], quick: bool, wall_seconds: f64, commit: String) -> Result<RunMeta, String> {
    let shipper = peers.first().ok_or("no shipper binary")?;
    let date = first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let peers = PEER_VARS
        .iter()
        .map(|(var, kind)| {
            let ran = peers.iter().find(|p| p.kind == *kind);
            PeerRun {
                name: Peer::name_of(*kind).into(),
                env: (*var).into(),
                version: ran.map(|p| {
                    // Promtail's flag package takes `-version`; the others `--version`.
                    let flag = if p.kind == Kind::Promtail {
                        "-version"
                    } else {
                        "--version"
                    };
                    first_line(Command::new(&p.bin).arg(flag))
                }),
            }
        })
        .collect();
    Ok(RunMeta {
        date,
        quick,
        wall_seconds,
        machine: machine(),
        commit,
        shipper_version: first_line(Command::new(&shipper.bin).arg("--version")),
        peers,
    })
}
