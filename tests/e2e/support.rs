//! Running the agent binary in tests: config, start, stop, kill, metrics, logs.

use shipper_testkit::Receiver;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shipper");

/// A test's scratch directory, its receiver, and where the agent keeps positions.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub loki: Receiver,
}

impl Env {
    pub fn new() -> Env {
        Env::with_receiver(Receiver::start())
    }

    /// An env around a receiver started by the test (e.g. [`Receiver::start_tls`]).
    pub fn with_receiver(loki: Receiver) -> Env {
        // Under target/ rather than /tmp: a disk filesystem like the nodes', where inodes get reused.
        Env::at(Path::new(env!("CARGO_TARGET_TMPDIR")), loki)
    }

    /// An env whose files are under `base` (a test whose measure depends on the paths' length
    /// picks a base that does not depend on where the repository is checked out).
    pub fn in_dir(base: &Path) -> Env {
        Env::at(base, Receiver::start())
    }

    fn at(base: &Path, loki: Receiver) -> Env {
        Env {
            dir: tempfile::tempdir_in(base).expect("temp dir"),
            loki,
        }
    }

    /// The logs of every agent started with this env's config so far, in start order.
    pub fn agent_logs(&self) -> Vec<String> {
        let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_prefix("agent-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        logs.sort();
        logs.into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        p
    }

    /// A config tailing `glob` (relative to the scratch dir); `extra` YAML is appended at top level
    /// (e.g. a `tail:` section) and may override sections it names.
    ///
    /// Test what users run: every setting that decides what survives a crash, a restart or an
    /// outage keeps its default here (`positions.sync_period`, `shutdown_timeout`, `client.timeout`,
    /// `client.backoff.max_retries`, `tail.start_at`, `tail.rescan_interval`); only a test about
    /// one of them sets it. What the client section shortens only decides how soon lines arrive
    /// (`batch_wait`, and the backoff's periods, which with the default of retrying forever decide
    /// when, not whether, a batch is stored), and the log level how much the agent says.
    pub fn config(&self, glob: &str, extra: &str) -> PathBuf {
        let client_extra = if extra.contains("client:") { "" } else { CLIENT };
        let yaml = format!(
            "server:\n  http_listen: 127.0.0.1:{port}\n  log_level: debug\npositions:\n  filename: {pos}\n{client}targets:\n  - paths: [{glob}]\n    labels: {{job: test}}\n{extra}",
            port = shipper_testkit::prom::free_port(),
            pos = self.dir.path().join("positions.json").display(),
            client = client_extra.replace("URL", &self.loki.url()),
            glob = self.dir.path().join(glob).display(),
        );
        let p = self.dir.path().join("shipper.yaml");
        std::fs::write(&p, yaml).expect("write config");
        p
    }
}

impl Drop for Env {
    /// A failed test keeps its scratch directory (every agent's log, the positions, the files) and
    /// says where.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!(
                "the failed test's files and agent logs are kept in {}",
                dir.keep().display()
            );
        }
    }
}

pub const CLIENT: &str =
    "client:\n  url: URL\n  batch_wait: 100ms\n  batch_size: 256KiB\n  backoff:\n    min_period: 100ms\n    max_period: 1s\n";

pub struct Agent {
    child: Child,
    log: PathBuf,
    http: String,
}

impl Agent {
    pub fn start(config: &Path) -> Agent {
        Agent::start_via(config, &[])
    }

    /// Starts the agent without waiting until it is ready (to kill it while it is starting).
    pub fn spawn(config: &Path) -> Agent {
        Agent::spawn_via(config, &[])
    }

    /// Starts the agent through `wrapper` (e.g. `setpriv` with capabilities dropped).
    pub fn start_via(config: &Path, wrapper: &[&str]) -> Agent {
        let agent = Agent::spawn_via(config, wrapper);
        agent.wait_ready();
        agent
    }

    fn spawn_via(config: &Path, wrapper: &[&str]) -> Agent {
        let text = std::fs::read_to_string(config).expect("config");
        let http = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("http_listen: "))
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let dir = config.parent().expect("config dir");
        // Each run's log is kept (a crash loop's killed agents too), numbered in start order.
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("agent-{n}.log"));
        let mut cmd = match wrapper {
            [] => Command::new(BIN),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(config)
            // The config's server.log_level decides (tests change it by reloading).
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start shipper");
        Agent { child, log, http }
    }

    /// Whether `/ready` answers 200 now.
    pub fn is_ready(&self) -> bool {
        shipper_testkit::client::get(&format!("{}/ready", self.http)).is_ok_and(|r| r.status == 200)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.is_ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent not ready after 20 s; its log:\n{}", self.log());
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the agent's log, for a failure message, and where the whole log is kept: a
    /// copy outside the scratch directory (which is deleted when the test fails).
    pub fn log_tail(&self) -> String {
        let kept = std::env::temp_dir().join(format!(
            "shipper-e2e-{}-{}",
            std::process::id(),
            self.log.file_name().and_then(|n| n.to_str()).unwrap_or("agent")
        ));
        let where_ = match std::fs::copy(&self.log, &kept) {
            Ok(_) => format!("whole log kept in {}", kept.display()),
            Err(e) => format!("could not keep the whole log: {e}"),
        };
        format!("{where_}; last lines:\n{}", tail(&self.log(), 60))
    }

    /// `POST /reload`: the status and the body of the answer.
    pub fn post_reload(&self) -> (u16, String) {
        let r = shipper_testkit::client::post(&format!("{}/reload", self.http), &[], b"").expect("POST /reload");
        (r.status, r.text())
    }

    /// Sends SIGHUP (reload the config).
    pub fn sighup(&self) {
        let sent = Command::new("kill").args(["-HUP", &self.pid().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGHUP");
    }

    pub fn metrics(&self) -> String {
        shipper_testkit::client::get(&format!("{}/metrics", self.http))
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// The value of one metric series (a line starting with `series `), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    /// SIGTERM and wait; the agent flushes and writes positions.
    pub fn stop(mut self) -> ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGTERM");
        let status = self.child.wait().expect("wait for shipper");
        assert!(
            status.success(),
            "shipper exited with {status}; its log:\n{}",
            self.log()
        );
        status
    }

    /// SIGKILL: no flush, no final positions.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        shipper_testkit::proc::peak_rss(self.pid() as u32)
    }

    /// Asserts the peak resident memory so far is under `mib` MiB and reports it (for README's
    /// reliability table); returns it in MiB.
    #[track_caller]
    pub fn assert_peak_rss_below(&self, mib: u64, scenario: &str) -> u64 {
        let peak = self.peak_rss() >> 20;
        eprintln!("peak RSS ({scenario}): {peak} MiB (bound {mib} MiB)");
        assert!(peak < mib, "{scenario}: peak RSS {peak} MiB, bound {mib} MiB");
        peak
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        shipper_testkit::proc::process_cpu_seconds(self.pid() as u32)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `series` in Prometheus text (0 when absent).
pub fn metric_value(text: &str, series: &str) -> f64 {
    shipper_testkit::prom::series(text, series).unwrap_or(0.0)
}

/// Waits until the receiver holds at least `n` entries; on timeout fails with the agent's log.
pub fn wait_entries(env: &Env, agent: &Agent, n: usize, secs: u64) {
    if !env.loki.wait_for_entries(n, Duration::from_secs(secs)) {
        panic!(
            "receiver has {} of {n} entries after {secs} s; agent log: {}",
            env.loki.entry_count(),
            agent.log_tail()
        );
    }
}

/// The lines of the receiver's stream `labels` (`{a="b", c="d"}`, names sorted), in order; fails
/// naming the streams it holds when it has not that one.
pub fn stream_lines(env: &Env, labels: &str) -> Vec<String> {
    let streams = env.loki.streams();
    let entries = streams
        .get(labels)
        .unwrap_or_else(|| panic!("no {labels} in {:?}", streams.keys()));
    entries.iter().map(|e| e.line.clone()).collect()
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Asserts an exact account (nothing lost, nothing duplicated); on failure shows the agent's log.
pub fn assert_exact_or_log(account: &shipper_testkit::Account, agent: &Agent) {
    if !account.is_exact() || account.out_of_order() > 0 {
        panic!(
            "line accounting is not exact and in order: {account}\nagent log:\n{}",
            agent.log()
        );
    }
}

/// Appends tagged lines `range` of file `f` (stdout, realistic lengths) and flushes.
pub fn write_tagged(w: &mut shipper_testkit::LogWriter, f: u32, range: std::ops::Range<u64>) {
    for i in range {
        w.write_line(
            "stdout",
            &shipper_testkit::tag_line(f, i, shipper_testkit::varied_len(i, 50, 300)),
        )
        .expect("write log line");
    }
    w.flush().expect("flush log");
}

/// Waits until every tagged line `0..n` of each `(file, n)` has arrived (duplicates do not count
/// towards it, unlike `wait_entries`); returns the account. On timeout fails with the agent's log.
pub fn wait_all(env: &Env, agent: &Agent, expected: &[(u32, u64)], secs: u64) -> shipper_testkit::Account {
    let total: u64 = expected.iter().map(|e| e.1).sum();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let complete = env.loki.entry_count() as u64 >= total;
        if complete || Instant::now() >= deadline {
            let account = shipper_testkit::Account::from_streams(&env.loki.streams(), expected.iter().copied());
            if account.lost() == 0 {
                return account;
            }
            if Instant::now() >= deadline {
                panic!(
                    "lines missing after {secs} s: {account}\nagent log: {}",
                    agent.log_tail()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until `agent`'s metric `series` reaches `at_least` and returns it; after `secs` fails with the
/// agent's log.
pub fn wait_metric(agent: &Agent, series: &str, at_least: f64, secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = agent.metric(series);
        if v >= at_least {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {v}, not >= {at_least}, after {secs} s; agent log tail:\n{}",
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub const CAP_DAC_OVERRIDE: u64 = 1 << 1;
pub const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
pub const CAP_SYS_ADMIN: u64 = 1 << 21;
pub const CAP_BPF: u64 = 1 << 39;

/// Whether this process holds any of `caps` (bits of `CapEff`). Outside CI a test that needs them
/// skips itself, saying why (`false`); CI runs as root, so there a missing capability is a failure.
pub fn has_any_cap(caps: u64, test: &str, why: &str) -> bool {
    if effective_caps() & caps != 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root: {test} must run there ({why})"
    );
    eprintln!("skipping {test}: {why}");
    false
}

/// This process's effective capabilities (`CapEff` of /proc/self/status) as a bit set.
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The agent's positions file as `shipper positions` prints it (Null when there is none yet or it
/// cannot be read).
pub fn saved_positions(env: &Env) -> serde_json::Value {
    positions_at(&env.dir.path().join("positions.json"))
}

/// A positions file as `shipper positions` prints it (Null when it cannot be read).
pub fn positions_at(file: &Path) -> serde_json::Value {
    let o = Command::new(BIN)
        .arg("positions")
        .arg(file)
        .output()
        .expect("run shipper positions");
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// The files of the agent's positions file (empty when there is none yet).
pub fn saved_files(env: &Env) -> Vec<serde_json::Value> {
    saved_positions(env)["files"].as_array().cloned().unwrap_or_default()
}

/// The highest saved offset of the file(s) tailed at `path`, 0 when none is saved.
pub fn saved_offset(env: &Env, path: &Path) -> u64 {
    saved_files(env)
        .iter()
        .filter(|f| f["path"].as_str() == path.to_str())
        .filter_map(|f| f["offset"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Deletes the file `w` writes and creates a new one at its path that gets its inode number if the
/// filesystem hands it out again (ext4 usually does for a number just freed): see
/// [`create_reusing_inode`]. Returns a writer of the new file.
pub fn replace_reusing_inode(w: shipper_testkit::LogWriter) -> shipper_testkit::LogWriter {
    use std::os::unix::fs::MetadataExt;
    let (path, format) = (w.path().to_path_buf(), w.format());
    let ino = std::fs::metadata(&path).expect("stat").ino();
    let mut w = w;
    w.delete().expect("delete file");
    drop(w);
    create_reusing_inode(&path, ino);
    shipper_testkit::LogWriter::create(&path, format).expect("open the new file")
}

/// Creates an empty file at `path` (which must not exist) with inode number `ino` if the filesystem
/// hands it out (a number just freed): tries up to 200 new files next to it (named `reuse-N`,
/// outside any `*.log` glob). Says so and makes a plain new file when it does not.
pub fn create_reusing_inode(path: &Path, ino: u64) {
    use std::os::unix::fs::MetadataExt;
    let mut spare = Vec::new();
    let mut reused = false;
    for n in 0..200 {
        let p = path.with_file_name(format!("reuse-{n}"));
        std::fs::write(&p, b"").expect("create file");
        if std::fs::metadata(&p).expect("stat").ino() == ino {
            std::fs::rename(&p, path).expect("rename into place");
            reused = true;
            break;
        }
        spare.push(p);
    }
    for p in spare {
        std::fs::remove_file(p).expect("remove spare file");
    }
    if !reused {
        std::fs::write(path, b"").expect("create file");
        eprintln!("note: the filesystem did not reuse the inode; testing a plain replacement");
    }
}
