//! tail: the reader thread. It keeps the set of tailed files in step with the targets (rotation,
//! truncation, deletion, inode reuse), reads what the watcher says grew, parses it, and sends chunks
//! into the ring. When the ring is full (Loki down or slow) reading pauses and the files are the
//! buffer, but the reader keeps watching: new and rotated files are still opened, so a rotated file
//! compressed or deleted during an outage stays readable through its descriptor (up to
//! `tail.max_held_bytes`).

mod fds;
mod file;
mod gzipped;
mod held;
mod import;
mod io;
mod net;
mod order;
mod park;
mod read;
mod reload;
mod rotated;
mod scan;
mod stages;
mod throttle;

pub use fds::fit_open_files;
pub use import::import_positions;
pub use io::{Io, ReadReq};
pub use read::sweep_gap;
pub use reload::Reconfig;
pub use throttle::PAUSE_REASONS;

use crate::checkpoint::{SavedFile, Tracker};
use crate::config::{StartAt, TailConfig};
use crate::discover::Targets;
use crate::metrics::Metrics;
use crate::ring::{Bundle, FileId, RingSender};
use crate::watch::{WatchEvent, Watcher};
use crate::{IdMap, IdSet};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use file::TailedFile;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a rotated or deleted file is still read after it went away: writers (containerd, dockerd)
/// may append to the old descriptor for a moment after the rename.
const GONE_GRACE: Duration = Duration::from_secs(1);

/// Longer than an event can take to reach the reader: unread data in a file an event named more
/// recently, or a file born more recently, is not a miss of the events.
pub(super) const EVENT_LATENCY: Duration = Duration::from_secs(1);

/// The longest the reader sleeps without looking at the stop flag (bounds shutdown latency).
const STOP_CHECK: Duration = Duration::from_millis(500);

pub struct Reader {
    cfg: TailConfig,
    targets: Targets,
    external_labels: BTreeMap<String, String>,
    io: Io,
    watcher: Box<dyn Watcher>,
    events: Receiver<WatchEvent>,
    ring: RingSender,
    /// Chunks were sent since the batcher was last woken (see `ring_bell`).
    unrung: bool,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,

    files: IdMap<FileId, TailedFile>,
    by_path: HashMap<PathBuf, FileId>,
    by_inode: IdMap<(u64, u64), FileId>,
    watched_dirs: BTreeSet<PathBuf>,
    ready: IdSet<FileId>,
    /// Files no longer reached through their path (rotated, deleted), read until drained.
    gone: IdSet<FileId>,
    /// When the checkpoint lag of all files was last summed.
    lag_summed: Instant,
    /// `offset_moves` and the tracker's generation when the lag was last summed: while neither moves
    /// the lag is what it was (an idle node skips the pass over every file).
    lag_key: (u64, (u64, u64)),
    /// Times a file's read offset moved (a read returned data, a truncation was found).
    offset_moves: u64,
    next_id: FileId,
    /// Saved positions not yet matched to an open file.
    saved: Vec<SavedFile>,
    /// When the positions were last saved; None on a first start.
    saved_at: Option<SystemTime>,
    /// When the positions loaded at start were written (see `file::saved_matches`).
    saved_written: Option<SystemTime>,
    /// A writable directory of the agent's own (the positions file's) for the inflated copies of
    /// saved files kubelet compressed while we were down (see `gzipped`).
    scratch: PathBuf,
    /// Files renamed away from a tailed name and not yet looked at: current name → the tailed name
    /// they had (their lines are labelled with it).
    renamed: HashMap<PathBuf, PathBuf>,
    rescan_due: bool,
    /// Directories to rescan (what is below them), for events that name one; a full rescan covers them.
    scan_dirs: BTreeSet<PathBuf>,
    /// When a file was last opened at each tailed path (for finding files rotated away unseen).
    opened_at: HashMap<PathBuf, SystemTime>,
    /// When the targets were last scanned.
    last_look: SystemTime,
    /// Recently closed files, so a later rename of them is not news (see `rotated::Closed`).
    closed: VecDeque<rotated::Closed>,
    /// Files created since the last look, opened after renames are followed.
    created: Vec<PathBuf>,
    /// When the last read sweep started (sweeps are paced, see `read_ready`).
    last_sweep: Instant,
    /// The last sweep stopped for backpressure with files still to read: the next one starts
    /// without waiting for the sweep gap.
    sweep_cut: bool,
    /// The shortest time between sweeps (`read::sweep_gap`).
    sweep_gap: Duration,
    /// Paths we already warned about (unreadable), so a bad file is logged once, not every scan.
    warned: HashSet<PathBuf>,
    /// Bundles made while the ring was full, sent (in order) before anything is read again.
    parked: VecDeque<Bundle>,
    /// The chunks of the current read round, not yet in the ring (see `park`).
    bundle: Bundle,
    /// Line bytes in `bundle`.
    bundle_bytes: usize,
    /// The next `TailedFile::seq`.
    next_seq: u64,
    /// Files whose turn comes once an older file of their stream settles (see `order`).
    deferred: Vec<FileId>,
    /// Files the current scan could not open because `max_open_files` is reached.
    over_limit: usize,
    /// Files whose stages hold lines until a time (multiline `max_wait_time`).
    stages_due: IdMap<FileId, Instant>,
    /// Files a `limit` stage paused, until when.
    paused: IdMap<FileId, Instant>,
    /// How often files are checked and the targets rescanned (see `net`).
    net: net::Net,
    /// The periodic round of the safety net is due: the next full scan is it.
    net_due: bool,
    /// Changes the current round of the safety net found that no event reported.
    missed: usize,
    /// Files the net found unread data in, written too lately to tell yet whether an event is on
    /// its way, with when they were found: a miss unless an event names them by `EVENT_LATENCY`.
    suspects: Vec<(FileId, Instant)>,
    /// New configurations (config reload), applied between read rounds.
    reconfig: Receiver<Reconfig>,
    /// Files detached by a reload, remembered to resume them if a target finds them again.
    detached: Vec<reload::Detached>,
    /// A reload's scan is running: files of new targets start as on a first start.
    reloading: bool,
    /// Pauses for the memory budget and the read rate.
    throttle: throttle::Throttle,
}

/// Everything the reader thread needs.
pub struct ReaderParts {
    pub cfg: TailConfig,
    pub targets: Targets,
    pub external_labels: BTreeMap<String, String>,
    pub io: Io,
    pub watcher: Box<dyn Watcher>,
    pub events: Receiver<WatchEvent>,
    pub ring: RingSender,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    pub saved: Vec<SavedFile>,
    pub saved_at: Option<SystemTime>,
    /// When the loaded positions were written.
    pub saved_written: Option<SystemTime>,
    /// The positions file's directory (see `Reader::scratch`).
    pub scratch: PathBuf,
    pub reconfig: Receiver<Reconfig>,
    /// The shortest time between read sweeps: [`sweep_gap`] of the shortest `batch_wait`.
    pub sweep_gap: Duration,
}

impl Reader {
    pub fn new(p: ReaderParts) -> Self {
        p.metrics.reader_mode.get_or_create(&mode(p.io.name())).set(1);
        let net = net::Net::new(p.cfg.rescan_interval.0, p.cfg.max_rescan_interval.0);
        p.metrics.watcher_mode.get_or_create(&mode(p.watcher.mode())).set(1);
        show_limits(&p.metrics, &p.cfg);
        Reader {
            cfg: p.cfg,
            targets: p.targets,
            external_labels: p.external_labels,
            io: p.io,
            watcher: p.watcher,
            events: p.events,
            ring: p.ring,
            unrung: false,
            tracker: p.tracker,
            metrics: p.metrics,
            stop: p.stop,
            files: IdMap::default(),
            by_path: HashMap::new(),
            by_inode: IdMap::default(),
            watched_dirs: BTreeSet::new(),
            ready: IdSet::default(),
            gone: IdSet::default(),
            lag_summed: Instant::now(),
            lag_key: (u64::MAX, (0, 0)),
            offset_moves: 0,
            next_id: 1,
            saved: p.saved,
            saved_at: p.saved_at,
            saved_written: p.saved_written,
            scratch: p.scratch,
            warned: HashSet::new(),
            renamed: HashMap::new(),
            rescan_due: false,
            scan_dirs: BTreeSet::new(),
            created: Vec::new(),
            opened_at: HashMap::new(),
            last_look: SystemTime::now(),
            closed: VecDeque::new(),
            last_sweep: Instant::now(),
            sweep_cut: false,
            sweep_gap: p.sweep_gap,
            parked: VecDeque::new(),
            bundle: Vec::new(),
            bundle_bytes: 0,
            next_seq: 1,
            deferred: Vec::new(),
            over_limit: 0,
            stages_due: IdMap::default(),
            paused: IdMap::default(),
            net,
            net_due: false,
            missed: 0,
            suspects: Vec::new(),
            reconfig: p.reconfig,
            detached: Vec::new(),
            reloading: false,
            throttle: Default::default(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Runs until `stop` is set, telling `scanned` once the first scan has found and watched the files.
    /// Dropping the reader afterwards closes the ring, which lets the batcher flush and finish.
    pub fn run(mut self, scanned: tokio::sync::oneshot::Sender<()>) {
        self.rescan(true);
        let _ = scanned.send(());
        let recovered = self.recover_rotated();
        // Every file a restart must look for is in the tracker now: positions may be written.
        self.tracker.recovered();
        for id in recovered {
            self.drain(id);
        }
        self.ready.extend(self.files.keys().copied());
        let mut last_check = Instant::now();
        let mut last_rescan = Instant::now();
        while !self.stopped() {
            self.unpark();
            self.read_ready();
            self.ready.extend(self.deferred.drain(..));
            self.close_drained();
            if self.stopped() {
                break;
            }
            let check_every = if self.watcher.polls() {
                self.cfg.poll_interval.0
            } else {
                self.net.every()
            };
            // Wake at least every STOP_CHECK to notice a stop request; sooner while rotated files drain.
            let cap = if !self.gone.is_empty() {
                Duration::from_millis(250)
            } else {
                STOP_CHECK
            };
            let wait = check_every.saturating_sub(last_check.elapsed()).min(cap);
            let wait = self.stages_wait().map_or(wait, |w| w.min(wait));
            let wait = match self.hold_reading() {
                Some(hold) if !self.ready.is_empty() => hold.min(wait),
                _ => wait,
            };
            match self.wait(wait.max(Duration::from_millis(1))) {
                Ok(ev) => self.rescan_due |= self.on_event(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::warn!("the file watcher stopped; checking files at tail.poll_interval instead");
                    self.events = crossbeam_channel::never();
                    self.watcher = Box::new(crate::watch::PollWatcher);
                }
            }
            if last_check.elapsed() >= check_every {
                last_check = Instant::now();
                // Events already on their way are not misses.
                self.take_events();
                self.check_all();
            }
            if !self.suspects.is_empty() {
                self.judge_suspects();
            }
            if last_rescan.elapsed() >= self.net.every() {
                last_rescan = Instant::now();
                self.rescan_due = true;
                self.net_due = true;
            }
            self.process_events();
            self.run_due_stages();
            self.ready.extend(self.gone.iter().copied());
        }
        // The last round's bundle goes too: the batcher flushes it before the push queue closes.
        self.ring_bell();
        tracing::debug!(files = self.files.len(), "reader stopped");
    }

    /// The periodic look at every file: polling reads them all; with events it is only a safety net,
    /// so a size check (one fstat each) picks the files that changed without an event. A changed
    /// file no event had put in line for reading is a miss of the events (unless reading is held,
    /// when files wait whatever the events said).
    fn check_all(&mut self) {
        if self.watcher.polls() {
            self.ready.extend(self.files.keys().copied());
            return;
        }
        let held = self.hold_reading().is_some() || !self.parked.is_empty();
        let now = SystemTime::now();
        for f in self.files.values() {
            let meta = f.file.metadata().ok();
            let changed = meta.as_ref().is_none_or(|m| m.len() != f.framer.read_offset());
            if !changed || !self.ready.insert(f.id) {
                continue;
            }
            let waits = held
                || f.state != file::State::Active
                || self.paused.contains_key(&f.id)
                || self.deferred.contains(&f.id);
            // Named by an event lately: its latest write's event may still be on its way.
            let named_lately = f.last_event.is_some_and(|at| at.elapsed() < EVENT_LATENCY);
            // Written lately (its mtime): whether that write's event is on its way (events are
            // drained once per sweep gap) is known once EVENT_LATENCY has passed. On a node where
            // some of a thousand quiet files write every second, nearly every round would otherwise
            // find one and keep the net at rescan_interval for ever.
            let written_lately = meta
                .and_then(|m| m.modified().ok())
                .is_none_or(|at| now.duration_since(at).map_or(true, |age| age < EVENT_LATENCY));
            if waits || named_lately {
                continue;
            }
            if written_lately {
                self.suspects.push((f.id, Instant::now()));
            } else {
                self.missed += 1;
                tracing::debug!(file = %f.path.display(), "safety net: data no event reported");
            }
        }
    }

    /// Suspects whose time is up: a miss unless an event named the file after the net found it.
    /// Misses are counted, and bring the net back to `rescan_interval`, at once.
    fn judge_suspects(&mut self) {
        let mut missed = 0;
        self.suspects.retain(|&(id, found)| {
            if found.elapsed() < EVENT_LATENCY {
                return true;
            }
            if let Some(f) = self.files.get(&id).filter(|f| f.last_event.is_none_or(|at| at < found)) {
                tracing::debug!(file = %f.path.display(), "safety net: data no event reported");
                missed += 1;
            }
            false
        });
        if missed > 0 {
            self.missed += missed;
            self.end_round();
        }
    }

    /// Handles every pending watch event, then what they call for: files renamed away are looked at,
    /// and a rescan runs if one is due. Called between read rounds too, so a file that is created and
    /// rotated away while others are being read is still caught.
    pub(super) fn process_events(&mut self) {
        let looking = SystemTime::now();
        self.take_events();
        while let Ok(r) = self.reconfig.try_recv() {
            self.reconfigure(r);
        }
        self.apply_pod_changes();
        self.follow_renamed();
        for path in std::mem::take(&mut self.created) {
            if self.by_path.contains_key(&path) {
                continue;
            }
            let Some(target) = self.targets.target_of(&path) else {
                continue;
            };
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    self.scan_dirs.insert(path);
                }
                Ok(_) => {
                    self.open(&path, target, false);
                }
                Err(_) => {}
            }
        }
        if std::mem::take(&mut self.rescan_due) {
            self.rescan(false);
        } else if !self.scan_dirs.is_empty() {
            self.rescan_dirs();
        }
        // Events report renames and creates: once all of them are followed, nothing renamed or created
        // before `looking` is unknown to us (a polling watcher reports none: only full scans count).
        let settled = self.renamed.is_empty() && self.created.is_empty() && !self.rescan_due;
        if settled && self.scan_dirs.is_empty() && !self.watcher.polls() {
            self.tracker.looked(looking);
        }
    }

    /// Handles every watch event already queued.
    fn take_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.rescan_due |= self.on_event(ev);
        }
    }

    /// Handles one watch event; true when a rescan is needed.
    fn on_event(&mut self, ev: WatchEvent) -> bool {
        match ev {
            WatchEvent::FileChanged(path) | WatchEvent::Removed(path) => {
                if let Some(&id) = self.by_path.get(&path) {
                    self.evented(id);
                }
                false
            }
            WatchEvent::FileWritten { dev, ino } => {
                if let Some(&id) = self.by_inode.get(&(dev, ino)) {
                    self.evented(id);
                }
                false
            }
            WatchEvent::Created(path) => {
                // Opened after the renames of this batch are followed: an older file rotated away
                // must be read before its successor.
                self.created.push(path);
                false
            }
            WatchEvent::Moved { from, to } => {
                if self.watched_dirs.contains(&from) {
                    // A watched directory moved away: what was tailed below it is gone from there.
                    self.scan_dirs.insert(from.clone());
                }
                // Follow a file that left a tailed name through further renames (docker's `.1` → `.2`
                // shift) until `follow_renamed` looks at it.
                let origin = self.renamed.remove(&from).or_else(|| {
                    let tailed = self.by_path.contains_key(&from) || self.targets.target_of(&from).is_some();
                    tailed.then_some(from)
                });
                match (origin, to) {
                    (Some(origin), Some(to)) if self.targets.target_of(&to).is_none() => {
                        self.renamed.insert(to, origin);
                        false
                    }
                    // Onto another tailed name, or out of the watched directories: the scan sorts it
                    // out by inode; the open descriptor keeps what we already tail.
                    (Some(_), _) => true,
                    (None, Some(to)) => self.targets.target_of(&to).is_some(),
                    (None, None) => false,
                }
            }
            WatchEvent::DirChanged(dir) => {
                self.scan_dirs.insert(dir);
                false
            }
            // Handled in `process_events`, which looks at the cache's changes every time.
            WatchEvent::Metadata => false,
            WatchEvent::Overflow => {
                tracing::warn!("file events were lost (inotify queue overflow); rescanning and checking every file");
                self.ready.extend(self.files.keys().copied());
                true
            }
        }
    }

    /// An event named file `id`: it is read in the next sweep.
    fn evented(&mut self, id: FileId) {
        self.ready.insert(id);
        if let Some(f) = self.files.get_mut(&id) {
            f.last_event = Some(Instant::now());
        }
    }

    /// Where a file seen for the first time starts.
    fn start_offset(&self, initial: bool, path: &std::path::Path, meta: &std::fs::Metadata) -> u64 {
        if !initial {
            // It appeared while we run: everything in it is new.
            return 0;
        }
        let by_config = match self.cfg.start_at {
            StartAt::Beginning if self.untouched_for_long(path, meta) => meta.len(),
            StartAt::Beginning => 0,
            StartAt::End => meta.len(),
        };
        if self.reloading {
            // A target added by a config reload: as on a first start.
            return by_config;
        }
        match self.saved_at {
            // First start: the user's choice.
            None => by_config,
            // Restart: a file written since the positions were saved appeared (or changed) while we were
            // down; read all of it rather than lose its lines.
            Some(saved_at) => match meta.modified() {
                Ok(m) if m >= saved_at => 0,
                _ => by_config,
            },
        }
    }

    /// `tail.start_at_max_age`: nobody wrote the file for longer than that (logged once per file).
    fn untouched_for_long(&self, path: &std::path::Path, meta: &std::fs::Metadata) -> bool {
        let max_age = self.cfg.start_at_max_age.0;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok());
        let old = !max_age.is_zero() && age.is_some_and(|a| a > max_age);
        if old {
            tracing::info!(file = %path.display(), age_seconds = age.unwrap_or_default().as_secs(),
                "file not written for longer than tail.start_at_max_age: tailing it from its end (its lines are taken as shipped before; raise start_at_max_age or set it to 0 to read such files from their start)");
        }
        old
    }
}

fn mode(name: &str) -> crate::metrics::ModeLabel {
    crate::metrics::ModeLabel { mode: name.to_string() }
}

/// The memory and held-file limits in force, for alerts and dashboards to compare the use with.
fn show_limits(metrics: &Metrics, cfg: &TailConfig) {
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    metrics.buffered_limit_bytes.set(bytes(cfg.max_buffered_bytes.0));
    metrics.held_limit_bytes.set(bytes(cfg.max_held_bytes.0));
}
