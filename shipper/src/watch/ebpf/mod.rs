//! eBPF watcher: BPF programs on the write syscalls' tracepoints follow each write to its file's
//! (dev, inode) and, for files in the `WATCHED` map, put one event on a ring buffer until userspace
//! takes it. Writes to other files never reach userspace. Directory changes (create, rename, unlink)
//! come from inotify watching directories only — one watch per directory, no per-write events.

use super::inotify::InotifyWatcher;
use super::{btf::Btf, WatchEvent, Watcher};
use crate::metrics::Metrics;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader, Pod};
use crossbeam_channel::Sender;
use shipper_ebpf::{offsets, stats, Event, FileKey, EVENT_WRITTEN};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::Interest;

/// The programs, built by build.rs from `shipper-ebpf`; empty in a build without the `ebpf` feature
/// (xtask's own build, which must work before `cargo xtask setup` installed the BPF toolchain).
#[cfg(feature = "ebpf")]
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shipper-ebpf"));
#[cfg(not(feature = "ebpf"))]
static PROGRAMS: &[u8] = &[];

/// Which program goes on which tracepoints: entry notes the fd, exit (after the write) reports.
const ATTACH: &[(&str, &[&str])] = &[
    (
        "write_enter",
        &["sys_enter_write", "sys_enter_writev", "sys_enter_pwrite64"],
    ),
    (
        "write_exit",
        &["sys_exit_write", "sys_exit_writev", "sys_exit_pwrite64"],
    ),
];

/// The shortest time between two drains of the ring buffer.
const DRAIN_GAP: Duration = Duration::from_millis(5);

/// `FileKey` as a map key and value for aya.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Key(FileKey);

// SAFETY: FileKey is repr(C), Copy, made of integers with explicit padding fields: every bit pattern
// is valid and it holds no pointers.
unsafe impl Pod for Key {}

type Paths = Arc<Mutex<HashMap<FileKey, PathBuf>>>;

pub struct EbpfWatcher {
    /// Keeps the programs loaded and attached.
    _bpf: Ebpf,
    watched: BpfHashMap<MapData, Key, u8>,
    paths: Paths,
    dirs: InotifyWatcher,
    stop: Arc<AtomicBool>,
}

/// A file's key as the kernel sees it, from userspace's `st_dev` and inode: the kernel encodes a
/// device number as `major << 20 | minor`.
fn kernel_key(st_dev: u64, ino: u64) -> FileKey {
    FileKey::new((libc::major(st_dev) << 20) | libc::minor(st_dev), ino)
}

impl EbpfWatcher {
    pub fn start(events: Sender<WatchEvent>, metrics: Arc<Metrics>) -> Result<EbpfWatcher, String> {
        if PROGRAMS.is_empty() {
            return Err("this binary was built without its BPF programs (cargo feature `ebpf` off)".into());
        }
        // Loading parses the kernel's BTF (tens of MiB, briefly): on a thread of its own, whose
        // allocator pages go back when it ends instead of lingering in the agent's heaps.
        let bpf = std::thread::scope(|s| s.spawn(load).join())
            .map_err(|_| "the BPF loader thread panicked".to_string())??;
        Self::with_programs(bpf, events, metrics)
    }

    /// Takes the maps of the loaded programs and starts reading their events.
    fn with_programs(mut bpf: Ebpf, events: Sender<WatchEvent>, metrics: Arc<Metrics>) -> Result<EbpfWatcher, String> {
        let mut take = |name: &str| bpf.take_map(name).ok_or_else(|| format!("BPF map {name} missing"));
        let watched = BpfHashMap::try_from(take("WATCHED")?).map_err(|e| e.to_string())?;
        let pending: BpfHashMap<MapData, Key, u8> =
            BpfHashMap::try_from(take("PENDING")?).map_err(|e| e.to_string())?;
        let ring = RingBuf::try_from(take("EVENTS")?).map_err(|e| e.to_string())?;
        let stats: PerCpuArray<MapData, u64> = PerCpuArray::try_from(take("STATS")?).map_err(|e| e.to_string())?;
        let dirs =
            InotifyWatcher::start_dirs_only(events.clone()).map_err(|e| format!("inotify for directories: {e}"))?;
        let paths = Paths::default();
        let stop = Arc::new(AtomicBool::new(false));
        let events_loop = EventLoop {
            pending,
            stats,
            paths: paths.clone(),
            events,
            metrics,
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("shipper-ebpf".into())
            .spawn(move || events_loop.run(ring))
            .map_err(|e| e.to_string())?;
        Ok(EbpfWatcher {
            _bpf: bpf,
            watched,
            paths,
            dirs,
            stop,
        })
    }
}

/// Computes the offsets, loads the programs and attaches them.
fn load() -> Result<Ebpf, String> {
    // Offsets first, and the parsed BTF dropped before aya parses it again for the loader.
    let values = {
        let btf = Btf::kernel()?;
        let fields = [
            (offsets::TASK_FILES, "task_struct", "files"),
            (offsets::FILES_FDT, "files_struct", "fdt"),
            (offsets::FDT_MAX_FDS, "fdtable", "max_fds"),
            (offsets::FDT_FD, "fdtable", "fd"),
            (offsets::FILE_INODE, "file", "f_inode"),
            (offsets::INODE_INO, "inode", "i_ino"),
            (offsets::INODE_SB, "inode", "i_sb"),
            (offsets::SB_DEV, "super_block", "s_dev"),
        ];
        let mut values = Vec::new();
        for (global, ty, field) in fields {
            values.push((global, btf.offset(ty, field)?));
        }
        values
    };
    let mut loader = EbpfLoader::new();
    for (global, value) in &values {
        loader.override_global(global, value, true);
    }
    ensure_tracefs()?;
    let mut bpf = loader
        .load(PROGRAMS)
        .map_err(|e| format!("loading the BPF programs failed: {e} (needs CAP_BPF and CAP_PERFMON, or root)"))?;
    for (name, points) in ATTACH {
        let program: &mut TracePoint = bpf
            .program_mut(name)
            .ok_or_else(|| format!("BPF program {name} missing from the object"))?
            .try_into()
            .map_err(|e| format!("BPF program {name}: {e}"))?;
        program
            .load()
            .map_err(|e| format!("the kernel refused BPF program {name}: {e}"))?;
        for point in *points {
            program
                .attach("syscalls", point)
                .map_err(|e| format!("attaching {name} to syscalls/{point}: {e}"))?;
        }
    }
    Ok(bpf)
}

/// Where tracefs is looked for (aya attaches tracepoints through it).
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Tracepoints are attached through tracefs, which a fresh host or a container may not have mounted:
/// mount it at its usual place when neither place has it.
fn ensure_tracefs() -> Result<(), String> {
    let mounted = |dir: &str| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if TRACEFS.iter().any(|dir| mounted(dir)) {
        return Ok(());
    }
    let (source, target, fstype) = (c"nodev", c"/sys/kernel/tracing", c"tracefs");
    // SAFETY: mount(2) with NUL-terminated constant strings and no data argument; it changes no memory
    // of ours.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 || !mounted(TRACEFS[0]) {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({e}); mount it \
             (`mount -t tracefs nodev /sys/kernel/tracing`) or mount the host's /sys/kernel/tracing into the container"
        ));
    }
    tracing::info!("mounted tracefs at /sys/kernel/tracing (the BPF programs attach to tracepoints through it)");
    Ok(())
}

impl Drop for EbpfWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watcher for EbpfWatcher {
    fn watch_dir(&mut self, dir: &Path) {
        self.dirs.watch_dir(dir);
    }

    fn unwatch_dir(&mut self, dir: &Path) {
        self.dirs.unwatch_dir(dir);
    }

    fn watch_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let key = kernel_key(meta.dev(), meta.ino());
        if let Err(e) = self.watched.insert(Key(key), 1, 0) {
            tracing::warn!(file = %path.display(), error = %e,
                "cannot add a file to the BPF watch map; it is still checked at tail.rescan_interval");
            return;
        }
        lock(&self.paths).insert(key, path.to_path_buf());
    }

    fn unwatch_file(&mut self, dev: u64, ino: u64) {
        let key = kernel_key(dev, ino);
        let _ = self.watched.remove(&Key(key));
        lock(&self.paths).remove(&key);
    }

    fn mode(&self) -> &'static str {
        "ebpf"
    }

    fn polls(&self) -> bool {
        false
    }
}

fn lock(paths: &Paths) -> std::sync::MutexGuard<'_, HashMap<FileKey, PathBuf>> {
    paths.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes events off the ring buffer (woken through `AsyncFd`), clears each file's pending mark so its
/// next write reports again, and tells the reader which file changed.
struct EventLoop {
    pending: BpfHashMap<MapData, Key, u8>,
    stats: PerCpuArray<MapData, u64>,
    paths: Paths,
    events: Sender<WatchEvent>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl EventLoop {
    fn run(self, ring: RingBuf<MapData>) {
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
        let mut ring_full = 0;
        let mut last_drain = std::time::Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if let Ok(Ok(mut guard)) = tokio::time::timeout(Duration::from_millis(500), ring.readable_mut()).await {
                // At most one drain per DRAIN_GAP: until a file's event is taken, the kernel drops
                // its further writes' events, so a busy file costs one event per drain, not per write.
                if let Some(wait) = DRAIN_GAP.checked_sub(last_drain.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                last_drain = std::time::Instant::now();
                let mut taken = Vec::new();
                while let Some(item) = guard.get_inner_mut().next() {
                    if let Some(ev) = parse(&item) {
                        taken.push(ev);
                    }
                }
                guard.clear_ready();
                if !self.deliver(taken) {
                    return;
                }
            }
            // Events that did not fit on the ring were lost: rescan and check every file.
            let full = self.count(stats::RING_FULL);
            if full > ring_full {
                ring_full = full;
                self.metrics.ebpf_ring_full.inc();
                tracing::warn!("the BPF ring buffer was full; rescanning and checking every file");
                if self.events.send(WatchEvent::Overflow).is_err() {
                    return;
                }
            }
        }
    }

    /// Passes events on; false when the reader is gone.
    fn deliver(&mut self, taken: Vec<Event>) -> bool {
        for ev in taken {
            let _ = self.pending.remove(&Key(ev.key));
            self.metrics.ebpf_events.inc();
            if ev.kind != EVENT_WRITTEN {
                continue;
            }
            let path = lock(&self.paths).get(&ev.key).cloned();
            if let Some(path) = path {
                if self.events.send(WatchEvent::FileChanged(path)).is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn count(&self, index: u32) -> u64 {
        self.stats.get(&index, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

fn parse(bytes: &[u8]) -> Option<Event> {
    let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    Some(Event {
        key: FileKey::new(u32_at(0)?, u64_at(8)?),
        kind: u32_at(16)?,
        _pad: 0,
    })
}
