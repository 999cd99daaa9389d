//! The cluster's daemons: started detached (`setsid`), each with its log under `logs/` and its pid and
//! command line under `run/`, so `down`, `status` and `restart` find exactly what `up` started.

use super::Layout;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pid_file(l: &Layout, name: &str) -> PathBuf {
    l.run.join(format!("{name}.pid"))
}

fn argv_file(l: &Layout, name: &str) -> PathBuf {
    l.run.join(format!("{name}.argv"))
}

pub fn log_file(l: &Layout, name: &str) -> PathBuf {
    l.logs.join(format!("{name}.log"))
}

/// The pid of `name` if the process `up` started is alive (a reused pid running something else is not).
pub fn running(l: &Layout, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(l, name)).ok()?.trim().parse().ok()?;
    let argv = std::fs::read_to_string(argv_file(l, name)).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = argv.lines().next()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie is gone for our purposes.
    let zombie = stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'));
    (!zombie && cmdline.split(|b| *b == 0).next() == Some(first.as_bytes())).then_some(pid)
}

/// Starts `argv` detached unless it runs already; its output is appended to `logs/<name>.log`.
pub fn start(l: &Layout, name: &str, argv: &[String]) -> Result<u32, String> {
    if let Some(pid) = running(l, name) {
        return Ok(pid);
    }
    for dir in [&l.run, &l.logs] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = log_file(l, name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new("setsid")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {name} ({}): {e}", argv[0]))?;
    let pid = child.id();
    std::fs::write(pid_file(l, name), pid.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(argv_file(l, name), argv.join("\n")).map_err(|e| e.to_string())?;
    settle(l, name, child, &log_path)?;
    Ok(pid)
}

/// Waits until `setsid` has become the daemon and the daemon has lived a moment (bad flags fail by
/// then). The child's own exit status tells an early death from a slow start: on a loaded machine
/// `setsid` may not have exec'd yet when it is first looked at. The error carries the log's last
/// lines, so a failure on a machine nobody can log into says why.
fn settle(l: &Layout, name: &str, mut child: std::process::Child, log_path: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut alive_since: Option<Instant> = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited at once ({status}); the end of {}:\n{}",
                log_path.display(),
                log_tail(log_path, 30)
            ));
        }
        if running(l, name).is_some() {
            let since = *alive_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(300) {
                return Ok(());
            }
        } else if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("{name} has not started after 30 s: see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of a log (what a failed start printed).
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `name` again with the command line `up` gave it (used by tests: the API server restarted).
pub fn restart(l: &Layout, name: &str) -> Result<u32, String> {
    let argv = std::fs::read_to_string(argv_file(l, name))
        .map_err(|e| format!("{name} was never started by `cluster up` ({e})"))?;
    let argv: Vec<String> = argv.lines().map(str::to_owned).collect();
    stop(l, name);
    start(l, name, &argv)
}

/// SIGTERM, then SIGKILL after 10 s. True if it was running.
pub fn stop(l: &Layout, name: &str) -> bool {
    let Some(pid) = running(l, name) else {
        let _ = std::fs::remove_file(pid_file(l, name));
        return false;
    };
    signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(l, name).is_some() {
        if Instant::now() > deadline {
            signal(pid, "KILL");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(pid_file(l, name));
    true
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Polls `ready` every 250 ms until it holds; the error names what was awaited and the log to read.
pub fn wait_for(what: &str, log: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > timeout {
            return Err(format!(
                "{what} not ready after {}s; the end of {log}:\n{}",
                timeout.as_secs(),
                log_tail(Path::new(log), 30)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("{what} ready ({:.1}s)", start.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &Path) -> Layout {
        Layout {
            state: dir.to_path_buf(),
            run: dir.join("run"),
            pki: dir.join("pki"),
            logs: dir.join("logs"),
            node_name: "test".into(),
            node_ip: "192.0.2.1".into(),
        }
    }

    #[test]
    fn a_daemon_that_dies_at_once_is_reported_with_what_it_printed() {
        let dir = std::env::temp_dir().join(format!("procs-test-{}", std::process::id()));
        let l = layout(&dir);
        let argv = ["sh", "-c", "echo cannot bind the socket >&2; exit 3"].map(String::from);
        let err = start(&l, "dies", &argv).unwrap_err();
        assert!(
            err.contains("exited at once") && err.contains("cannot bind the socket"),
            "{err}"
        );

        let argv = ["sleep", "30"].map(String::from);
        let pid = start(&l, "lives", &argv).unwrap();
        assert_eq!(running(&l, "lives"), Some(pid));
        assert!(stop(&l, "lives"));
        assert_eq!(running(&l, "lives"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
