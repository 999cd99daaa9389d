//! Reading the ring buffer: each record becomes a `WatchEvent` for the reader. After each drain the
//! time of the newest write event taken goes into `TAKEN` (one map update), so those files' next
//! writes report again; directory events name their entries by the watched directories' paths.

use super::{lock, Paths};
use crate::metrics::Metrics;
use crate::watch::WatchEvent;
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use crossbeam_channel::Sender;
use shipper_ebpf::{
    stats, FileKey, EVENT_CREATED, EVENT_DIR_CHANGED, EVENT_MOVED, EVENT_REMOVED, EVENT_WRITTEN, NAME_LEN,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;

/// A ring buffer record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// The file's key, and when the event was put on the ring.
    Written(FileKey, u64),
    /// kind, (dir, name), (dir2, name2)
    Dir(u32, FileKey, Vec<u8>, FileKey, Vec<u8>),
}

/// How often the lost-event counters are read while no event comes.
const LOST_CHECK: Duration = Duration::from_secs(5);

/// The longest wait for events before looking at the stop flag (the thread is not joined: this
/// only bounds how long it outlives its watcher). Each such wake costs an idle node CPU.
const STOP_CHECK: Duration = Duration::from_secs(2);

/// Takes events off the ring buffer (woken through `AsyncFd`) and tells the reader what changed.
pub(super) struct EventLoop {
    pub taken: Array<MapData, u64>,
    pub stats: PerCpuArray<MapData, u64>,
    pub paths: Paths,
    pub events: Sender<WatchEvent>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    /// The shortest time between two drains of the ring buffer (`tail::sweep_gap`).
    pub gap: Duration,
}

impl EventLoop {
    pub fn run(self, ring: RingBuf<MapData>) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "eBPF event thread cannot start; checking files at tail.rescan_interval");
                let _ = self.events.send(WatchEvent::Overflow);
                return;
            }
        };
        rt.block_on(self.serve(ring));
    }

    async fn serve(mut self, ring: RingBuf<MapData>) {
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the AsyncFd
        // (which owns the ring) is dropped; as_raw_fd always returns that same fd.
        let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, Interest::READABLE) };
        let mut ring = match registered {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot wait on the BPF ring buffer; checking files at tail.rescan_interval");
                let _ = self.events.send(WatchEvent::Overflow);
                return;
            }
        };
        let mut lost = 0;
        let mut last_drain = Instant::now();
        let mut last_count = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let woken = tokio::time::timeout(STOP_CHECK, ring.readable_mut()).await;
            let drained = matches!(woken, Ok(Ok(_)));
            if let Ok(Ok(mut guard)) = woken {
                // At most one drain per `gap` (the reader's sweep gap, `tail::sweep_gap`): until a
                // file's event is taken, the kernel drops its further writes' events, so a busy
                // file costs one event per drain, not per write.
                if let Some(wait) = self.gap.checked_sub(last_drain.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                last_drain = Instant::now();
                let mut taken = Vec::new();
                let mut newest = 0;
                while let Some(item) = guard.get_inner_mut().next() {
                    if let Some(record) = parse(&item) {
                        if let Record::Written(_, ts) = record {
                            newest = newest.max(ts);
                        }
                        taken.push(record);
                    }
                }
                guard.clear_ready();
                // Before the reader is told: a write after this point reports again, one before it
                // is read when the reader reads the file for this event.
                if newest > 0 {
                    let _ = self.taken.set(0, newest, 0);
                }
                if !self.deliver(taken) {
                    return;
                }
            }
            // Events that did not fit (on the ring, or in flight) were lost: rescan, check every file.
            // Looked at after each drain (a full ring wakes us), else every LOST_CHECK: reading the
            // per-CPU counters at every stop check cost an idle node more than the events did.
            if !drained && last_count.elapsed() < LOST_CHECK {
                continue;
            }
            last_count = Instant::now();
            let now_lost = self.count(stats::RING_FULL) + self.count(stats::DIR_LOST);
            if now_lost > lost {
                lost = now_lost;
                self.metrics.ebpf_ring_full.inc();
                tracing::warn!("BPF events were lost (ring buffer full); rescanning and checking every file");
                if self.events.send(WatchEvent::Overflow).is_err() {
                    return;
                }
            }
        }
    }

    /// Passes events on; false when the reader is gone.
    fn deliver(&mut self, taken: Vec<Record>) -> bool {
        for record in taken {
            self.metrics.ebpf_events.inc();
            for ev in self.translate(record) {
                if self.events.send(ev).is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn translate(&mut self, record: Record) -> Vec<WatchEvent> {
        let (kind, dir, name, dir2, name2) = match record {
            Record::Written(key, _) => {
                let (dev, ino) = super::user_dev_ino(key);
                return vec![WatchEvent::FileWritten { dev, ino }];
            }
            Record::Dir(kind, dir, name, dir2, name2) => (kind, dir, name, dir2, name2),
        };
        let paths = lock(&self.paths);
        let dir_path = paths.get(&dir).cloned();
        let entry = |dir: Option<&PathBuf>, name: &[u8]| {
            dir.filter(|_| !name.is_empty())
                .map(|d| d.join(OsStr::from_bytes(name)))
        };
        let from = entry(dir_path.as_ref(), &name);
        let dir2_path = paths.get(&dir2).cloned();
        let to = entry(dir2_path.as_ref(), &name2);
        drop(paths);
        match (kind, from, to) {
            (EVENT_CREATED, Some(p), _) => vec![WatchEvent::Created(p)],
            (EVENT_REMOVED, Some(p), _) => vec![WatchEvent::Removed(p)],
            // mkdir / rmdir: what is below the new (or removed) directory needs a look.
            (EVENT_DIR_CHANGED, Some(sub), _) => vec![WatchEvent::DirChanged(sub)],
            (EVENT_MOVED, from, to) => {
                let mut out = Vec::new();
                // A directory moved in: what is below it may be tailed.
                if let Some(t) = to.as_ref().filter(|t| t.is_dir()) {
                    out.push(WatchEvent::DirChanged(t.clone()));
                    out.extend(from.clone().map(WatchEvent::DirChanged));
                }
                match (from, to) {
                    (Some(from), to) => out.push(WatchEvent::Moved { from, to }),
                    (None, Some(to)) => out.push(WatchEvent::Created(to)),
                    (None, None) => {}
                }
                out
            }
            // A name too long for the record, or a directory we no longer watch.
            (_, _, _) => dir_path.map(WatchEvent::DirChanged).into_iter().collect(),
        }
    }

    fn count(&self, index: u32) -> u64 {
        self.stats.get(&index, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

/// Decodes a record: `Event` or `DirEvent` (shipper-ebpf), told apart by the kind they start with.
pub(super) fn parse(bytes: &[u8]) -> Option<Record> {
    let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let key_at = |at: usize| Some(FileKey::new(u32_at(at)?, u64_at(at + 8)?));
    let name_at = |at: usize| {
        let raw = bytes.get(at..at + NAME_LEN)?;
        Some(raw[..raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN)].to_vec())
    };
    match u32_at(0)? {
        EVENT_WRITTEN => Some(Record::Written(key_at(8)?, u64_at(24)?)),
        kind => Some(Record::Dir(
            kind,
            key_at(8)?,
            name_at(40)?,
            key_at(24)?,
            name_at(40 + NAME_LEN)?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipper_ebpf::{DirEvent, Event};

    fn bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is a plain repr(C) record of integers and byte arrays; reading its bytes is sound.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
    }

    #[test]
    fn records_decode_as_the_programs_lay_them_out() {
        let key = FileKey::new(8 << 20 | 1, 42);
        let written = Event {
            kind: EVENT_WRITTEN,
            _pad: 0,
            key,
            ts: 77,
        };
        assert_eq!(parse(&bytes(&written)), Some(Record::Written(key, 77)));
        let mut dir = DirEvent {
            kind: EVENT_MOVED,
            _pad: 0,
            dir: key,
            dir2: FileKey::new(3, 7),
            name: [0; NAME_LEN],
            name2: [b'x'; NAME_LEN],
        };
        dir.name[..5].copy_from_slice(b"0.log");
        assert_eq!(
            parse(&bytes(&dir)),
            Some(Record::Dir(
                EVENT_MOVED,
                key,
                b"0.log".to_vec(),
                FileKey::new(3, 7),
                vec![b'x'; NAME_LEN]
            ))
        );
        assert_eq!(
            parse(&bytes(&dir)[..100]),
            None,
            "a short record is refused, not misread"
        );
    }
}
