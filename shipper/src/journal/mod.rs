//! journal: the systemd journal as a source, beside the files (`journal:` in the config).
//!
//! The journal is read through a `journalctl --output=export --follow` subprocess, as Vector's
//! journald source does: no libsystemd to link against (or to match versions with), no `unsafe`,
//! and journalctl already knows every journal file layout, compression and rotation. Its output is
//! parsed by [`export`] and turned into lines by `lines.rs`; chunks go into the same ring as the
//! files' lines, so batching, retries and backpressure are the files' (a slow Loki fills the ring,
//! this thread stops reading, journalctl blocks on its pipe, and the journal is the buffer).
//!
//! Where to resume is a journal cursor, saved in the positions file with the same at-least-once rule
//! as file offsets (see `cursor.rs`): at start journalctl is told `--after-cursor` the saved one, or,
//! on a first start, `--since` now minus `max_age`. If journalctl dies it is started again after a
//! backoff, after the last cursor read (what was read is in the ring or in batches already).

mod cursor;
pub mod export;
mod lines;
mod stages;

pub use cursor::JournalCursors;
pub use lines::DROP_REASONS;

use crate::checkpoint::{FileIdentity, Tracker};
use crate::config::{Config, JournalConfig};
use crate::labels::StreamLabels;
use crate::metrics::Metrics;
use crate::parse::{Entry, ParseStats};
use crate::ring::{Chunk, FileId, RingSender};
use crossbeam_channel::SendTimeoutError;
use export::{ExportParser, Parsed};
use lines::Converter;
use stages::JournalStages;
use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The journal's id in the checkpoint [`Tracker`]; the reader numbers files from 1 upwards.
pub const JOURNAL_ID: FileId = u64::MAX;

/// The journal's entry in the checkpoint tracker (not a file: never in the positions' `files`).
pub(crate) fn identity() -> FileIdentity {
    FileIdentity {
        path: "journal".into(),
        dev: 0,
        ino: 0,
        fp_len: 0,
        fp: 0,
    }
}

/// Entries per chunk at most; a chunk is otherwise whatever one read of journalctl's output held.
const CHUNK_ENTRIES: usize = 512;
/// One read of journalctl's output (a pipe holds 64 KiB).
const READ_SIZE: usize = 64 * 1024;
/// How often a thread waiting on journalctl or on a full ring looks at the stop flag (and the
/// journal thread at the multiline blocks due).
const TICK: Duration = Duration::from_millis(100);
/// Backoff between journalctl restarts: doubling from the first to the last while it keeps dying
/// without output.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// What the agent hands the journal thread.
pub struct JournalParts {
    /// The ring the file reader fills too (this sender is dropped when the thread ends).
    pub ring: RingSender,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
    /// Set at shutdown: journalctl is killed and the thread ends, closing its side of the ring.
    pub stop: Arc<AtomicBool>,
    /// The cursor of the positions file (None: first start, or no journal before).
    pub saved_cursor: Option<String>,
}

/// The running journal thread.
pub struct JournalHandle {
    /// What the positions writer asks for the cursor to save.
    pub cursors: Arc<JournalCursors>,
    pub thread: JoinHandle<()>,
}

/// Starts reading the journal when the config has a `journal:` section. Err: journalctl cannot be
/// started at all (a setup problem, worded for the user).
pub fn start(cfg: &Config, parts: JournalParts) -> Result<Option<JournalHandle>, String> {
    let Some(jcfg) = cfg.journal.clone() else {
        return Ok(None);
    };
    let mut base = cfg.client.external_labels.clone();
    base.extend(jcfg.labels.clone());
    let converter = Converter::new(
        base,
        &jcfg.fields,
        cfg.label_limits.clone(),
        cfg.tail.max_line_size.0 as usize,
        jcfg.format,
    );
    let stages = jcfg
        .compile_stages(&cfg.label_limits, cfg.tail.max_line_size.0 as usize)?
        .map(JournalStages::new);
    let cursors = Arc::new(JournalCursors::new(parts.saved_cursor.clone()));
    parts.tracker.open_cursor_source(JOURNAL_ID, identity());
    let now = unix_now();
    let since = now.saturating_sub(jcfg.max_age.0.as_secs());
    let pump = Pump {
        parser: ExportParser::new(cfg.tail.max_line_size.0 as usize + 4, converter.wanted_fields()),
        labels: Arc::new(StreamLabels::new(converter.base())),
        converter,
        stages,
        last_cursor: parts.saved_cursor.clone(),
        count: 0,
        commit: 0,
        read_cursors: VecDeque::new(),
        cursors: cursors.clone(),
        parts,
    };
    match &pump.last_cursor {
        Some(c) => tracing::info!(cursor = %c, "journal: resuming after the saved cursor"),
        None => tracing::info!(max_age = %jcfg.max_age, since_unix = since,
            "journal: no saved cursor (first start): reading entries newer than max_age"),
    }
    let child = spawn(&jcfg, &pump, since)?;
    let thread = std::thread::Builder::new()
        .name("shipper-journal".into())
        .spawn(move || supervise(jcfg, pump, since, child))
        .map_err(|e| format!("cannot start the journal thread: {e}"))?;
    Ok(Some(JournalHandle { cursors, thread }))
}

fn unix_now() -> u64 {
    (crate::unix_now_ns() / 1_000_000_000) as u64
}

/// Starts journalctl after the last cursor read (or `--since` on a first start).
fn spawn(cfg: &JournalConfig, pump: &Pump, since: u64) -> Result<Child, String> {
    let mut cmd = Command::new(&cfg.journalctl_path);
    cmd.args([
        "--output=export",
        "--follow",
        "--no-tail",
        "--all",
        "--quiet",
        "--no-pager",
    ]);
    // Fewer fields through the pipe; the cursor and timestamps are always written.
    if let Some(wanted) = pump.converter.wanted_fields() {
        let fields: Vec<String> = wanted.into_iter().filter(|f| !f.starts_with("__")).collect();
        cmd.arg(format!("--output-fields={}", fields.join(",")));
    }
    if let Some(dir) = &cfg.path {
        let mut arg = std::ffi::OsString::from("--directory=");
        arg.push(dir);
        cmd.arg(arg);
    }
    match &pump.last_cursor {
        Some(c) => cmd.arg(format!("--after-cursor={c}")),
        None => cmd.arg(format!("--since=@{since}")),
    };
    cmd.args(cfg.match_args());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    tracing::debug!(command = ?cmd, "journal: starting journalctl");
    cmd.spawn().map_err(|e| {
        format!(
            "journal.journalctl_path: cannot run `{}` ({e}): install systemd's journalctl or set journal.journalctl_path",
            cfg.journalctl_path.display()
        )
    })
}

/// The journal thread: runs journalctl, restarts it when it dies, kills it at shutdown.
fn supervise(cfg: JournalConfig, mut pump: Pump, since: u64, first: Child) {
    // The reader thread owns the pump (and its parts) while journalctl runs.
    let stop = pump.parts.stop.clone();
    let mut child = Some(first);
    let mut backoff = BACKOFF.0;
    loop {
        let mut proc = match child.take().map_or_else(|| spawn(&cfg, &pump, since), Ok) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "journal: cannot restart journalctl");
                if !pause(&stop, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        let (Some(stdout), stderr) = (proc.stdout.take(), proc.stderr.take()) else {
            let _ = proc.kill();
            let _ = proc.wait();
            tracing::error!("journal: journalctl's output is not a pipe; not reading the journal");
            return;
        };
        if let Some(err) = stderr {
            log_stderr(err);
        }
        let before = pump.count;
        let reader = std::thread::Builder::new()
            .name("shipper-journal-read".into())
            .spawn(move || {
                pump.read(stdout);
                pump
            });
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let _ = proc.kill();
                let _ = proc.wait();
                tracing::error!(error = %e, "journal: cannot start the thread reading journalctl; not reading the journal");
                return;
            }
        };
        let status = wait_or_stop(&mut proc, &stop);
        pump = match reader.join() {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("journal: the thread reading journalctl panicked; not reading the journal");
                return;
            }
        };
        if stop.load(Ordering::Relaxed) {
            tracing::info!(entries = pump.count, "journal: stopped");
            return;
        }
        pump.parts.metrics.journal_restarts.inc();
        backoff = if pump.count > before {
            BACKOFF.0
        } else {
            (backoff * 2).min(BACKOFF.1)
        };
        tracing::warn!(status = ?status, entries_read = pump.count - before, restart_in = ?backoff,
            cursor = pump.last_cursor.as_deref().unwrap_or(""),
            "journal: journalctl exited; restarting it after the last cursor read (see its messages above)");
        if !pause(&stop, backoff) {
            return;
        }
    }
}

/// Waits for journalctl to exit; at shutdown kills it. None: killed for the shutdown.
fn wait_or_stop(proc: &mut Child, stop: &AtomicBool) -> Option<std::process::ExitStatus> {
    loop {
        if stop.load(Ordering::Relaxed) {
            let _ = proc.kill();
            let _ = proc.wait();
            return None;
        }
        match proc.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(TICK),
            Err(e) => {
                tracing::warn!(error = %e, "journal: cannot wait for journalctl; stopping it");
                let _ = proc.kill();
                return proc.wait().ok();
            }
        }
    }
}

/// Sleeps `d` unless the agent stops first; false: stopping.
fn pause(stop: &AtomicBool, d: Duration) -> bool {
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let t = left.min(TICK);
        std::thread::sleep(t);
        left -= t;
    }
    !stop.load(Ordering::Relaxed)
}

/// journalctl's own messages (permissions, missing directory …) go to our log, one event a line.
fn log_stderr(err: ChildStderr) {
    let spawned = std::thread::Builder::new()
        .name("shipper-journal-err".into())
        .spawn(move || {
            for line in std::io::BufReader::new(err).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line);
                if !line.trim().is_empty() {
                    tracing::warn!(message = %line.trim_end(), "journal: journalctl says");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "journal: cannot start the thread logging journalctl's errors");
    }
}

/// Reads journalctl's output into `tx` until it ends (or the journal thread stops taking it).
fn read_pipe(mut out: ChildStdout, tx: &crossbeam_channel::Sender<Vec<u8>>) {
    loop {
        let mut buf = vec![0u8; READ_SIZE];
        match out.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.send(buf).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "journal: cannot read journalctl's output");
                return;
            }
        }
    }
}

/// journalctl's output → chunks in the ring. Survives journalctl restarts (moved in and out of the
/// thread reading each journalctl), so the entry count stays monotonic.
struct Pump {
    parser: ExportParser,
    converter: Converter,
    /// `journal.pipeline_stages`, compiled (None: there are none).
    stages: Option<JournalStages>,
    labels: Arc<StreamLabels>,
    /// Cursor of the last entry read: where a restarted journalctl starts.
    last_cursor: Option<String>,
    /// Entries read so far (the journal's "offset" in the tracker).
    count: u64,
    /// The commit position of the last chunk sent: `count` then, or below an entry the stages
    /// still hold (a multiline block in progress).
    commit: u64,
    /// With stages that may hold entries: (count, cursor) of each entry read after `commit`, so the
    /// cursor of the entry just before a held one is known.
    read_cursors: VecDeque<(u64, String)>,
    cursors: Arc<JournalCursors>,
    parts: JournalParts,
}

impl Pump {
    /// Reads one journalctl's output to its end (or until the agent stops). While journalctl is
    /// quiet, multiline blocks whose `max_wait_time` passed are still sent on: the pipe is read by
    /// a thread of its own, and this one waits for its reads at most until the next block is due.
    fn read(&mut self, out: ChildStdout) {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
        let piped = std::thread::Builder::new()
            .name("shipper-journal-pipe".into())
            .spawn(move || read_pipe(out, &tx));
        if let Err(e) = piped {
            tracing::error!(error = %e, "journal: cannot start the thread reading journalctl's output");
            return;
        }
        loop {
            let wait = (self.stages.as_ref())
                .and_then(JournalStages::deadline)
                .map_or(TICK, |d| {
                    d.saturating_duration_since(std::time::Instant::now()).min(TICK)
                });
            match rx.recv_timeout(wait) {
                Ok(buf) => {
                    self.parser.feed(&buf);
                    if !self.ship_parsed() {
                        return;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if self.parts.stop.load(Ordering::Relaxed) || !self.flush_stages(false) {
                break;
            }
        }
        if self.parts.stop.load(Ordering::Relaxed) {
            // What the stages hold goes on if the ring still takes it; if not, the cursor saved is
            // before it and a restart reads it again.
            self.flush_stages(true);
            return;
        }
        if self.parser.finish() {
            tracing::debug!("journal: journalctl ended inside an entry; it is read again after the last cursor");
        }
    }

    /// Sends on the multiline blocks that are due (`all`: every one); false: the agent is stopping.
    fn flush_stages(&mut self, all: bool) -> bool {
        let due = (self.stages.as_ref())
            .is_some_and(|st| st.deadline().is_some_and(|d| all || d <= std::time::Instant::now()));
        if !due {
            return true;
        }
        let entries = match self.stages.as_mut() {
            Some(st) => st.flush(all, &self.parts.metrics),
            None => return true,
        };
        self.send_staged(entries, None)
    }

    /// Turns every complete entry into lines and sends them in chunks; false: the agent is stopping.
    fn ship_parsed(&mut self) -> bool {
        let now_ns = crate::unix_now_ns();
        let mut stats = ParseStats::default();
        let mut entries = Vec::new();
        let mut chunk_cursor = None;
        let mut ok = true;
        while let Some(p) = self.parser.next() {
            let e = match p {
                Parsed::Entry(e) => e,
                Parsed::Bad(why) => {
                    self.drop_entry(lines::BAD_FORMAT, why);
                    continue;
                }
            };
            self.count += 1;
            if let Some(c) = e.get("__CURSOR") {
                let c = String::from_utf8_lossy(&c.value).into_owned();
                if self.stages.as_ref().is_some_and(JournalStages::holds) {
                    self.read_cursors.push_back((self.count, c.clone()));
                }
                chunk_cursor = Some(c);
            }
            match self.converter.convert(&e, self.count, now_ns, &mut stats) {
                Ok(entry) => entries.push(entry),
                Err(reason) => self.drop_entry(reason, "entry without MESSAGE"),
            }
            if entries.len() >= CHUNK_ENTRIES {
                ok = self.send(std::mem::take(&mut entries), chunk_cursor.take());
                if !ok {
                    break;
                }
            }
        }
        if ok && (!entries.is_empty() || chunk_cursor.is_some()) {
            ok = self.send(entries, chunk_cursor);
        }
        let m = &self.parts.metrics;
        m.add_parse_stats(&stats);
        m.add_label_fits(std::mem::take(&mut self.converter.fitted));
        ok
    }

    /// Counts (and logs) an entry that is not shipped. An entry without MESSAGE is ordinary journal
    /// content (some services log only fields), so it is logged at debug level only.
    fn drop_entry(&self, reason: &'static str, why: &str) {
        self.parts
            .metrics
            .journal_dropped
            .get_or_create(&Metrics::reason(reason))
            .inc();
        let after_cursor = self.last_cursor.as_deref().unwrap_or("");
        if reason == lines::NO_MESSAGE {
            tracing::debug!(reason, after_cursor, "journal: entry without MESSAGE not shipped");
        } else {
            tracing::warn!(
                reason,
                detail = why,
                after_cursor,
                "journal: entry not shipped (counted in shipper_journal_dropped_entries_total)"
            );
        }
    }

    /// Sends the entries read (up to entry `self.count`, the last with `cursor`) through the stages
    /// and on to the ring. False: the agent is stopping.
    fn send(&mut self, entries: Vec<(Entry, Arc<StreamLabels>)>, cursor: Option<String>) -> bool {
        let entries: Vec<Entry> = match self.stages.as_mut() {
            Some(st) => st.run(entries, &self.parts.metrics),
            None => entries.into_iter().map(|(e, _)| e).collect(),
        };
        self.send_staged(entries, cursor)
    }

    /// Sends a chunk of entries out of the stages, with its commit position: entry `self.count`, or
    /// the entry before the first one the stages still hold. Blocks while the ring is full
    /// (backpressure). False: the agent is stopping (the chunk is dropped unacknowledged: read again
    /// at next start).
    fn send_staged(&mut self, entries: Vec<Entry>, cursor: Option<String>) -> bool {
        let held = self.stages.as_ref().and_then(JournalStages::oldest_offset);
        let commit = held.map_or(self.count, |first| self.count.min(first - 1));
        let commit_cursor = if self.stages.as_ref().is_some_and(JournalStages::holds) {
            // The cursor of entry `commit` (the entries before it are forgotten).
            let mut at = None;
            while self.read_cursors.front().is_some_and(|(n, _)| *n <= commit) {
                at = self.read_cursors.pop_front().filter(|(n, _)| *n == commit);
            }
            at.map(|(_, c)| c)
        } else {
            cursor.clone()
        };
        if let Some(c) = cursor {
            self.last_cursor = Some(c);
        }
        if entries.is_empty() && commit <= self.commit {
            return true;
        }
        if let Some(c) = commit_cursor.filter(|_| commit > self.commit) {
            self.cursors.push(commit, c);
        }
        self.commit = self.commit.max(commit);
        let n = entries.len() as u64;
        let mut bundle = vec![Chunk {
            file: JOURNAL_ID,
            labels: self.labels.clone(),
            entries,
            commit_offset: self.commit,
            clients: None,
        }];
        loop {
            match self.parts.ring.send_timeout(bundle, TICK) {
                Ok(()) => {
                    self.parts.metrics.journal_entries.inc_by(n);
                    return true;
                }
                Err(SendTimeoutError::Timeout(b)) if !self.parts.stop.load(Ordering::Relaxed) => bundle = b,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests;
