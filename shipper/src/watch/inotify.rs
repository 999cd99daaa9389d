//! inotify watcher: one watch per directory (never one per file, so the per-user watch limit is spent
//! on directories only); a thread turns kernel events into `WatchEvent`s.

use super::{WatchEvent, Watcher};
use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The shortest time between two reads of the inotify queue.
const READ_GAP: std::time::Duration = std::time::Duration::from_millis(5);

type DirMap = Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>;

pub struct InotifyWatcher {
    watches: Watches,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    by_wd: DirMap,
    warned_limit: bool,
}

impl InotifyWatcher {
    /// Reports directory changes and writes to the files in them.
    pub fn start(events: Sender<WatchEvent>) -> std::io::Result<Self> {
        let mut inotify = Inotify::init()?;
        let watches = inotify.watches();
        let by_wd: DirMap = Arc::default();
        let map = by_wd.clone();
        std::thread::Builder::new()
            .name("shipper-inotify".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut last_read = std::time::Instant::now();
                loop {
                    // At most one read per READ_GAP, so events of busy files pile up and fold.
                    if let Some(wait) = READ_GAP.checked_sub(last_read.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    let evs = match inotify.read_events_blocking(&mut buf) {
                        Ok(evs) => evs,
                        Err(e) => {
                            tracing::error!(error = %e, "inotify read failed; the reader falls back to periodic checks");
                            let _ = events.send(WatchEvent::Overflow);
                            return;
                        }
                    };
                    last_read = std::time::Instant::now();
                    let mut out = translate(evs, &map);
                    // A busy file shows up once per read, not once per write.
                    let mut seen = std::collections::HashSet::new();
                    out.retain(|ev| match ev {
                        WatchEvent::FileChanged(p) => seen.insert(p.clone()),
                        _ => true,
                    });
                    for ev in out {
                        // The reader is gone: nothing left to wake.
                        if events.send(ev).is_err() {
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

/// Turns a read's worth of kernel events into watch events, pairing MOVED_FROM/MOVED_TO into renames.
fn translate<'a>(evs: impl Iterator<Item = inotify::Event<&'a std::ffi::OsStr>>, map: &DirMap) -> Vec<WatchEvent> {
    // A rename is two events (MOVED_FROM, MOVED_TO) paired by a cookie, usually adjacent.
    let mut moved_from: Option<(u32, PathBuf)> = None;
    let mut out = Vec::new();
    for ev in evs {
        if ev.mask.contains(EventMask::Q_OVERFLOW) {
            out.push(WatchEvent::Overflow);
            continue;
        }
        let dirs = map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(dir) = dirs.get(&ev.wd).cloned() else {
            continue;
        };
        drop(dirs);
        let path = ev.name.map(|n| dir.join(n));
        let is_dir = ev.mask.contains(EventMask::ISDIR);
        if ev.mask.contains(EventMask::MOVED_TO) {
            if let (Some(to), Some((cookie, from))) = (&path, moved_from.take()) {
                if cookie == ev.cookie {
                    out.push(WatchEvent::Moved {
                        from,
                        to: Some(to.clone()),
                    });
                } else {
                    out.push(WatchEvent::Moved { from, to: None });
                    out.push(WatchEvent::Created(to.clone()));
                }
            } else if let Some(to) = &path {
                out.push(WatchEvent::Created(to.clone()));
            }
            if let (true, Some(to)) = (is_dir, path) {
                out.push(WatchEvent::DirChanged(to));
            }
            continue;
        }
        if let Some((_, from)) = moved_from.take() {
            out.push(WatchEvent::Moved { from, to: None });
        }
        let ev_out = match path {
            _ if ev.mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) => WatchEvent::DirChanged(dir),
            // A subdirectory created, removed or moved away: what is below it needs a look.
            Some(p) if is_dir => WatchEvent::DirChanged(p),
            Some(p) if ev.mask.contains(EventMask::MOVED_FROM) => {
                moved_from = Some((ev.cookie, p));
                continue;
            }
            Some(p) if ev.mask.contains(EventMask::CREATE) => WatchEvent::Created(p),
            Some(p) if ev.mask.contains(EventMask::DELETE) => WatchEvent::Removed(p),
            Some(p) => WatchEvent::FileChanged(p),
            None => continue,
        };
        out.push(ev_out);
    }
    if let Some((_, from)) = moved_from.take() {
        out.push(WatchEvent::Moved { from, to: None });
    }
    out
}

impl Watcher for InotifyWatcher {
    fn watch_dir(&mut self, dir: &Path) {
        if self.by_path.contains_key(dir) {
            return;
        }
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR
            | WatchMask::MODIFY;
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
            self.by_wd.lock().unwrap_or_else(|p| p.into_inner()).remove(&wd);
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

    fn complete(&self) -> bool {
        // Set at the first watch that could not be added, and kept.
        !self.warned_limit
    }
}
