//! watch: tells the reader which files grew and which directories changed, so it reads without polling.
//!
//! Implementations sit behind one interface: inotify (one watch per directory, not per file) and plain
//! polling. The eBPF watcher plugs in here too. The reader also re-checks every file at `poll_interval`
//! when the watcher polls, and at `rescan_interval` otherwise, as a safety net.

mod inotify;

use crate::config::WatchMode;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A file was written to or truncated.
    FileChanged(PathBuf),
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
}

pub trait Watcher: Send {
    /// Reports changes of this directory and the files in it.
    fn watch_dir(&mut self, dir: &Path);
    fn unwatch_dir(&mut self, dir: &Path);
    /// "inotify", "poll", …; exported as `shipper_watcher_mode`.
    fn mode(&self) -> &'static str;
    /// True when no events come and the reader must check files on its own at `poll_interval`.
    fn polls(&self) -> bool;
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
}

/// Starts the best watcher `mode` allows, logging the choice and why a better one was not used.
pub fn start(mode: WatchMode, events: Sender<WatchEvent>) -> Box<dyn Watcher> {
    match mode {
        WatchMode::Poll => {
            tracing::info!(watcher = "poll", "file change detection: polling (as configured)");
            Box::new(PollWatcher)
        }
        WatchMode::Auto | WatchMode::Inotify => match inotify::InotifyWatcher::start(events) {
            Ok(w) => {
                tracing::info!(
                    watcher = "inotify",
                    "file change detection: inotify, one watch per directory"
                );
                Box::new(w)
            }
            Err(e) => {
                tracing::warn!(watcher = "poll", error = %e,
                    "inotify cannot be used; falling back to polling (raise fs.inotify.max_user_instances?)");
                Box::new(PollWatcher)
            }
        },
    }
}
