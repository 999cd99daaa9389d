//! eBPF watcher: BPF programs (fexit or syscall tracepoints, see `load`) report writes to watched
//! files, and programs on syscall tracepoints changes in watched directories (create, rename, unlink, mkdir, rmdir) on a ring buffer. The kernel filters
//! by the `WATCHED` map of (dev, inode), so other files' writes never reach userspace, and a busy
//! file has at most one event waiting. No inotify: no per-user watch limit, no queue to overflow
//! silently (a full ring is counted and answered with a rescan).

mod events;
mod load;
mod probe;
mod uring;

use super::{WatchEvent, Watcher};
use crate::metrics::Metrics;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::{Ebpf, Pod};
use crossbeam_channel::Sender;
use shipper_ebpf::{path_hash, FileKey};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The programs, built by build.rs from `shipper-ebpf`; empty in a build without the `ebpf` feature
/// (xtask's own build, which must work before `cargo xtask setup` installed the BPF toolchain).
#[cfg(feature = "ebpf")]
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shipper-ebpf"));
#[cfg(not(feature = "ebpf"))]
static PROGRAMS: &[u8] = &[];

/// `FileKey` as a map key and value for aya.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Key(FileKey);

// SAFETY: FileKey is repr(C), Copy, made of integers with explicit padding fields: every bit pattern
// is valid and it holds no pointers.
unsafe impl Pod for Key {}

/// The path of every watched directory, by key: how directory events are named.
type Paths = Arc<Mutex<HashMap<FileKey, PathBuf>>>;

pub struct EbpfWatcher {
    /// Keeps the programs loaded and attached.
    _bpf: Ebpf,
    watched: BpfHashMap<MapData, Key, u8>,
    pending: BpfHashMap<MapData, Key, u64>,
    dir_paths: BpfHashMap<MapData, u64, Key>,
    paths: Paths,
    /// Watched directories: their key and the path hashes they are filed under.
    dirs: HashMap<PathBuf, (FileKey, Vec<u64>)>,
    warned_full: bool,
    stop: Arc<AtomicBool>,
}

/// A file's key as the kernel sees it, from userspace's `st_dev` and inode: the kernel encodes a
/// device number as `major << 20 | minor`.
fn kernel_key(st_dev: u64, ino: u64) -> FileKey {
    FileKey::new((libc::major(st_dev) << 20) | libc::minor(st_dev), ino)
}

/// `kernel_key` the other way: userspace's `st_dev` and the inode.
fn user_dev_ino(key: FileKey) -> (u64, u64) {
    (libc::makedev(key.dev >> 20, key.dev & 0xf_ffff), key.ino)
}

impl EbpfWatcher {
    pub fn start(
        choice: crate::config::EbpfWriteHook,
        events: Sender<WatchEvent>,
        metrics: Arc<Metrics>,
        gap: std::time::Duration,
    ) -> Result<EbpfWatcher, String> {
        if PROGRAMS.is_empty() {
            return Err("this binary was built without its BPF programs (cargo feature `ebpf` off)".into());
        }
        // Loading parses the kernel's BTF (tens of MiB, briefly): on a thread of its own, whose
        // allocator pages go back when it ends instead of lingering in the agent's heaps.
        let loaded = std::thread::scope(|s| s.spawn(|| load::load(choice)).join())
            .map_err(|_| "the BPF loader thread panicked".to_string())?;
        release_freed_memory();
        let (bpf, hook, refused) = loaded?;
        metrics
            .ebpf_write_hook
            .get_or_create(&crate::metrics::ModeLabel {
                mode: hook.name().into(),
            })
            .set(1);
        tracing::info!(
            watcher = "ebpf",
            write_hook = hook.name(),
            not_used = %refused.join("; "),
            "file change detection: eBPF (writes through {}, directory changes through syscall tracepoints)",
            hook.name()
        );
        Self::with_programs(bpf, events, metrics, gap)
    }

    /// Takes the maps of the loaded programs and starts reading their events.
    fn with_programs(
        mut bpf: Ebpf,
        events: Sender<WatchEvent>,
        metrics: Arc<Metrics>,
        gap: std::time::Duration,
    ) -> Result<EbpfWatcher, String> {
        let mut take = |name: &str| bpf.take_map(name).ok_or_else(|| format!("BPF map {name} missing"));
        let watched = BpfHashMap::try_from(take("WATCHED")?).map_err(|e| e.to_string())?;
        let dir_paths = BpfHashMap::try_from(take("DIR_PATHS")?).map_err(|e| e.to_string())?;
        let pending = BpfHashMap::try_from(take("PENDING")?).map_err(|e| e.to_string())?;
        let taken = aya::maps::Array::try_from(take("TAKEN")?).map_err(|e| e.to_string())?;
        let ring = RingBuf::try_from(take("EVENTS")?).map_err(|e| e.to_string())?;
        let stats: PerCpuArray<MapData, u64> = PerCpuArray::try_from(take("STATS")?).map_err(|e| e.to_string())?;
        let paths = Paths::default();
        let stop = Arc::new(AtomicBool::new(false));
        let events_loop = events::EventLoop {
            taken,
            stats,
            paths: paths.clone(),
            events,
            metrics,
            stop: stop.clone(),
            gap,
        };
        std::thread::Builder::new()
            .name("shipper-ebpf".into())
            .spawn(move || events_loop.run(ring))
            .map_err(|e| e.to_string())?;
        Ok(EbpfWatcher {
            _bpf: bpf,
            watched,
            pending,
            dir_paths,
            paths,
            dirs: HashMap::new(),
            warned_full: false,
            stop,
        })
    }

    fn warn_full(&mut self, path: &Path, e: impl std::fmt::Display) {
        if !std::mem::replace(&mut self.warned_full, true) {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot add to the BPF watch maps (full?); such files and directories are checked at tail.rescan_interval");
        }
    }
}

impl Drop for EbpfWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watcher for EbpfWatcher {
    fn watch_dir(&mut self, dir: &Path) {
        if self.dirs.contains_key(dir) {
            return;
        }
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        let key = kernel_key(meta.dev(), meta.ino());
        // Named before the kernel reports it: an event from it can always be translated.
        lock(&self.paths).insert(key, dir.to_path_buf());
        if let Err(e) = self.watched.insert(Key(key), 1, 0) {
            lock(&self.paths).remove(&key);
            return self.warn_full(dir, e);
        }
        // Processes name the directory by the path we were given or, through symlinks, its real one.
        let mut hashes = vec![path_hash(dir.as_os_str().as_bytes())];
        if let Ok(real) = dir.canonicalize() {
            hashes.push(path_hash(real.as_os_str().as_bytes()));
            hashes.dedup();
        }
        for &hash in &hashes {
            if let Err(e) = self.dir_paths.insert(hash, Key(key), 0) {
                self.warn_full(dir, e);
            }
        }
        self.dirs.insert(dir.to_path_buf(), (key, hashes));
    }

    fn unwatch_dir(&mut self, dir: &Path) {
        let Some((key, hashes)) = self.dirs.remove(dir) else {
            return;
        };
        let _ = self.watched.remove(&Key(key));
        for hash in hashes {
            let _ = self.dir_paths.remove(&hash);
        }
        lock(&self.paths).remove(&key);
    }

    fn watch_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let key = kernel_key(meta.dev(), meta.ino());
        if let Err(e) = self.watched.insert(Key(key), 1, 0) {
            self.warn_full(path, e);
        }
    }

    fn unwatch_file(&mut self, dev: u64, ino: u64) {
        let key = kernel_key(dev, ino);
        let _ = self.watched.remove(&Key(key));
        let _ = self.pending.remove(&Key(key));
    }

    fn mode(&self) -> &'static str {
        "ebpf"
    }

    fn polls(&self) -> bool {
        false
    }

    fn complete(&self) -> bool {
        // Set at the first watch that could not be added, and kept.
        !self.warned_full
    }
}

/// Makes the allocator give memory freed so far back to the system: loading parses the kernel's BTF
/// (tens of MiB, more than the agent uses otherwise), which mimalloc would keep for reuse.
fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers and frees nothing still in use; it only returns the
    // allocator's free pages, including those of threads that ended, to the system.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

fn lock(paths: &Paths) -> std::sync::MutexGuard<'_, HashMap<FileKey, PathBuf>> {
    paths.lock().unwrap_or_else(|p| p.into_inner())
}
