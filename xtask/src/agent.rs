//! Running the release `shipper` binary for the demo and the benchmarks: build, config, start, measure
//! (CPU from /proc/<pid>/stat, peak RSS from /proc/<pid>/status), stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Builds the release binary and returns its path (under `CARGO_TARGET_DIR` when that is set).
pub fn build_release() -> Result<PathBuf, String> {
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "-p", "shipper"]))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    // Where cargo put it: CARGO_TARGET_DIR when set (relative to the workspace), else target/.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |d| root.join(d));
    Ok(target.join("release/shipper"))
}

pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// One target of a generated config: a glob, its format and a `job` label.
pub struct Target<'a> {
    pub glob: &'a Path,
    pub format: &'a str,
    pub job: &'a str,
}

/// Writes `dir/shipper.yaml` for `targets`, pushing to `url` with `batch_wait`.
pub fn write_config(
    dir: &Path,
    url: &str,
    port: u16,
    targets: &[Target<'_>],
    batch_wait: &str,
) -> Result<PathBuf, String> {
    write_config_with(dir, url, port, targets, batch_wait, "")
}

/// [`write_config`] with more `tail:` settings (`tail` holds indented YAML lines).
pub fn write_config_with(
    dir: &Path,
    url: &str,
    port: u16,
    targets: &[Target<'_>],
    batch_wait: &str,
    tail: &str,
) -> Result<PathBuf, String> {
    let mut yaml = format!(
        "server:\n  http_listen: 127.0.0.1:{port}\n  log_level: warn\npositions:\n  filename: {}\nclient:\n  url: {url}\n  batch_wait: {batch_wait}\ntail:\n  start_at: beginning\n{tail}targets:\n",
        dir.join("positions.json").display()
    );
    for t in targets {
        yaml.push_str(&format!(
            "  - paths: [{}]\n    labels: {{job: {}}}\n    format: {}\n",
            t.glob.display(),
            t.job,
            t.format
        ));
    }
    let path = dir.join("shipper.yaml");
    std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

pub struct Agent {
    child: Child,
    pub log: PathBuf,
    /// shipper's `/metrics` (None for the peers).
    pub metrics_url: Option<String>,
}

impl Agent {
    /// Starts the agent and waits until `/ready` answers 200.
    pub fn start(bin: &Path, config: &Path, port: u16) -> Result<Agent, String> {
        let dir = config.parent().ok_or("config has no directory")?;
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--config"]).arg(config);
        let mut agent = Agent::spawn(
            cmd,
            &dir.join("shipper.log"),
            &format!("http://127.0.0.1:{port}/ready"),
            true,
        )?;
        agent.metrics_url = Some(format!("http://127.0.0.1:{port}/metrics"));
        Ok(agent)
    }

    /// The value of shipper's metric `series` (a name, with its labels if any); None for a peer or
    /// when it cannot be read.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let r = shipper_testkit::client::get(self.metrics_url.as_deref()?).ok()?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Runs `cmd` with its output in `log` and waits up to 20 s until `ready` answers — with 200
    /// when `need_200`, with anything at all (the process is up) otherwise.
    pub fn spawn(mut cmd: Command, log: &Path, ready: &str, need_200: bool) -> Result<Agent, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let mut agent = Agent {
            child,
            log: log.to_path_buf(),
            metrics_url: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match shipper_testkit::client::get(ready) {
                Ok(r) if r.status == 200 || !need_200 => return Ok(agent),
                _ => {}
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                return Err(format!(
                    "{:?} exited with {status}; see {}",
                    cmd.get_program(),
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{:?} not ready after 20 s; see {}",
            cmd.get_program(),
            log.display()
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        shipper_testkit::proc::process_cpu_seconds(self.pid())
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        shipper_testkit::proc::peak_rss(self.pid())
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) -> Result<ExitStatus, String> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        self.child.wait().map_err(|e| e.to_string())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes of every file below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
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
