//! watch: tells the reader which files grew and which directories changed, so it reads without polling.
//!
//! Implementations sit behind one interface: eBPF (fexit or syscall tracepoints for writes, syscall
//! tracepoints for directory changes, filtered in the kernel by a map of watched files and directories), inotify (one watch per directory, not per file) and plain polling. The reader also re-checks every file at `poll_interval`
//! when the watcher polls, and at `rescan_interval` otherwise, as a safety net.

mod btf;
mod ebpf;
mod inotify;

use crate::config::{EbpfWriteHook, WatchMode};
use crate::metrics::Metrics;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A file was written to or truncated.
    FileChanged(PathBuf),
    /// The file with this `st_dev` and inode was written to (watchers that see writes per file).
    FileWritten { dev: u64, ino: u64 },
    /// A file appeared (created, or moved in from an unwatched place).
    Created(PathBuf),
    /// An entry was renamed; `to` is None when it left the watched directories. Rotation by rename
    /// shows up here, so a file that lived under a tailed name only briefly is still found.
    Moved { from: PathBuf, to: Option<PathBuf> },
    /// A file was removed (its open descriptor, if we hold one, still reads).
    Removed(PathBuf),
    /// Something changed in a watched directory that needs a rescan (a new subdirectory, the
    /// directory itself went away).
    DirChanged(PathBuf),
    /// Events were lost (queue overflow): rescan and check every file.
    Overflow,
    /// The pod metadata cache changed: relabel files, maybe rescan (see `PodCache::take_changes`).
    Metadata,
}

pub trait Watcher: Send {
    /// Reports changes of this directory and the files in it.
    fn watch_dir(&mut self, dir: &Path);
    fn unwatch_dir(&mut self, dir: &Path);
    /// Reports writes to this file, for watchers that see writes per file (eBPF); the others see
    /// them through the file's directory.
    fn watch_file(&mut self, _path: &Path, _meta: &std::fs::Metadata) {}
    fn unwatch_file(&mut self, _dev: u64, _ino: u64) {}
    /// "inotify", "poll", …; exported as `shipper_watcher_mode`.
    fn mode(&self) -> &'static str;
    /// True when no events come and the reader must check files on its own at `poll_interval`.
    fn polls(&self) -> bool;
    /// False once a directory or file could not be watched (limits reached): its changes come only
    /// from the safety net, which then keeps to `tail.rescan_interval`.
    fn complete(&self) -> bool {
        true
    }
}

/// Polling: no events, the reader checks every file at `poll_interval`.
pub struct PollWatcher;

impl Watcher for PollWatcher {
    fn watch_dir(&mut self, _: &Path) {}
    fn unwatch_dir(&mut self, _: &Path) {}
    fn mode(&self) -> &'static str {
        "poll"
    }
    fn polls(&self) -> bool {
        true
    }

    fn complete(&self) -> bool {
        false
    }
}

/// Starts the best watcher `mode` allows — `auto` tries eBPF, then inotify, then polling — logging the
/// choice and why a better one was not used. `watch: ebpf` that cannot load is an error. `gap`: the
/// shortest time between two drains of eBPF events (`tail::sweep_gap`).
pub fn start(
    mode: WatchMode,
    hook: EbpfWriteHook,
    events: Sender<WatchEvent>,
    metrics: Arc<Metrics>,
    gap: std::time::Duration,
) -> Result<Box<dyn Watcher>, String> {
    match mode {
        WatchMode::Poll => {
            tracing::info!(watcher = "poll", "file change detection: polling (as configured)");
            return Ok(Box::new(PollWatcher));
        }
        WatchMode::Ebpf => {
            let w = ebpf::EbpfWatcher::start(hook, events, metrics, gap).map_err(|e| {
                format!("tail.watch: ebpf: {e}; run as root (or with CAP_BPF and CAP_PERFMON) or set tail.watch: auto")
            })?;
            return Ok(Box::new(w));
        }
        WatchMode::Auto => match ebpf::EbpfWatcher::start(hook, events.clone(), metrics, gap) {
            Ok(w) => return Ok(Box::new(w)),
            Err(e) => tracing::info!(error = %e, "eBPF file events are not available here; trying inotify"),
        },
        WatchMode::Inotify => {}
    }
    match inotify::InotifyWatcher::start(events) {
        Ok(w) => {
            tracing::info!(
                watcher = "inotify",
                "file change detection: inotify, one watch per directory"
            );
            Ok(Box::new(w))
        }
        Err(e) => {
            tracing::warn!(watcher = "poll", error = %e,
                "inotify cannot be used; falling back to polling (raise fs.inotify.max_user_instances?)");
            Ok(Box::new(PollWatcher))
        }
    }
}
