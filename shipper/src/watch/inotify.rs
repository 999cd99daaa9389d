//! inotify watcher: one watch per directory (never one per file, so the per-user watch limit is spent
//! on directories only); a thread turns kernel events into `WatchEvent`s.

use super::{WatchEvent, Watcher};
use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type DirMap = Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>;

pub struct InotifyWatcher {
    watches: Watches,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    by_wd: DirMap,
    warned_limit: bool,
}

impl InotifyWatcher {
    pub fn start(events: Sender<WatchEvent>) -> std::io::Result<Self> {
        let mut inotify = Inotify::init()?;
        let watches = inotify.watches();
        let by_wd: DirMap = Arc::default();
        let map = by_wd.clone();
        std::thread::Builder::new()
            .name("shipper-inotify".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let evs = match inotify.read_events_blocking(&mut buf) {
                        Ok(evs) => evs,
                        Err(e) => {
                            tracing::error!(error = %e, "inotify read failed; the reader falls back to periodic checks");
                            let _ = events.send(WatchEvent::Overflow);
                            return;
                        }
                    };
                    for ev in evs {
                        let out = if ev.mask.contains(EventMask::Q_OVERFLOW) {
                            WatchEvent::Overflow
                        } else {
                            let dirs = map.lock().unwrap_or_else(|p| p.into_inner());
                            let Some(dir) = dirs.get(&ev.wd).cloned() else { continue };
                            drop(dirs);
                            let dir_change = EventMask::CREATE
                                | EventMask::MOVED_FROM
                                | EventMask::MOVED_TO
                                | EventMask::DELETE
                                | EventMask::DELETE_SELF
                                | EventMask::MOVE_SELF;
                            match ev.name {
                                Some(name) if !ev.mask.intersects(dir_change) => {
                                    WatchEvent::FileChanged(dir.join(name))
                                }
                                _ => WatchEvent::DirChanged(dir),
                            }
                        };
                        // The reader is gone: nothing left to wake.
                        if events.send(out).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(InotifyWatcher {
            watches,
            by_path: HashMap::new(),
            by_wd,
            warned_limit: false,
        })
    }
}

impl Watcher for InotifyWatcher {
    fn watch_dir(&mut self, dir: &Path) {
        if self.by_path.contains_key(dir) {
            return;
        }
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        match self.watches.add(dir, mask) {
            Ok(wd) => {
                self.by_wd
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(wd.clone(), dir.to_path_buf());
                self.by_path.insert(dir.to_path_buf(), wd);
            }
            Err(e) => {
                if !self.warned_limit {
                    self.warned_limit = true;
                    tracing::warn!(dir = %dir.display(), error = %e,
                        "cannot watch a directory with inotify; its files are checked at tail.rescan_interval instead (raise fs.inotify.max_user_watches?)");
                }
            }
        }
    }

    fn unwatch_dir(&mut self, dir: &Path) {
        if let Some(wd) = self.by_path.remove(dir) {
            self.by_wd
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&wd);
            // Fails when the directory is already gone (the kernel removed the watch): fine.
            let _ = self.watches.remove(wd);
        }
    }

    fn mode(&self) -> &'static str {
        "inotify"
    }

    fn polls(&self) -> bool {
        false
    }
}
