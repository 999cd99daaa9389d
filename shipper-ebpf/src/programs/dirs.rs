//! Directory changes: creates (open with O_CREAT, creat, link, symlink), unlinks, renames, mkdir and
//! rmdir in watched directories. On entry a program keeps the syscall's path arguments in `DIR_OPS`;
//! `dir_exit`, once the syscall succeeded, finds the directory each path names and, when it is
//! watched, puts the event on the ring. Looking at exit, not entry, closes a race: a directory
//! userspace starts watching while a create in it is under way either is watched when the syscall
//! returns (an event), or was not yet, and then the entry exists before userspace lists the directory.
//!
//! The directory of a path: a bare name is in the syscall's dirfd (or the current directory); an
//! absolute path's directory is looked up by the hash of its text in `DIR_PATHS`, where userspace
//! files every watched directory. Anything else (relative paths with slashes, `..`) is counted in
//! `DIR_UNRESOLVED` and left to userspace's periodic rescan.

use super::{arg, count, key_of_dirfd, EVENTS, WATCHED};
use aya_ebpf::cty::c_void;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_loop, bpf_probe_read_user, bpf_probe_read_user_str_bytes};
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::{HashMap, PerCpuArray};
use aya_ebpf::programs::TracePointContext;
use shipper_ebpf::{
    path_hash_step, stats, DirEvent, FileKey, EVENT_CREATED, EVENT_DIR_CHANGED, EVENT_MOVED, EVENT_REMOVED, NAME_LEN,
    PATH_HASH_START,
};

/// Watched directories by `path_hash` of their path.
#[map]
static DIR_PATHS: HashMap<u64, FileKey> = HashMap::with_max_entries(1 << 16, 0);

/// The path arguments of each thread inside a directory-changing syscall, until it returns (one entry
/// per thread at most: a thread's next syscall replaces it). Not LRU: were it ever full, the loss is
/// counted (`DIR_LOST`) and userspace rescans, instead of an entry being silently pushed out.
#[map]
static DIR_OPS: HashMap<u64, Op> = HashMap::with_max_entries(8192, 0);

/// A directory-changing syscall in flight: its kind and the path arguments it named.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Op {
    kind: u32,
    /// Bit 0: `a` is set; bit 1: `b` is (a rename's new name).
    has: u32,
    a: PathArg,
    b: PathArg,
}

/// The longest path read; longer ones are left to the rescan.
const PATH_LEN: usize = 512;

#[repr(C)]
pub struct Scratch {
    path: [u8; PATH_LEN],
    event: DirEvent,
}

/// Room to build an event (too big for the BPF stack).
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

const AT_FDCWD: u64 = -100i64 as u64;
const O_CREAT: u64 = 0o100;
const AT_REMOVEDIR: u64 = 0x200;

/// Where a path argument is: (dirfd, pointer to the path text).
type PathArg = (u64, u64);

/// The watched directory `path` (relative to `dfd`) is in, with its last component copied to `name`.
fn locate((dfd, path): PathArg, buf: &mut [u8; PATH_LEN], name: &mut [u8; NAME_LEN]) -> Option<FileKey> {
    name[0] = 0;
    // SAFETY: the helper copies at most buf.len() bytes from the user address and fails on a fault.
    let len = unsafe { bpf_probe_read_user_str_bytes(path as *const u8, buf) }
        .ok()?
        .len();
    if len == 0 || len >= PATH_LEN - 1 {
        count(stats::DIR_UNRESOLVED);
        return None;
    }
    // One pass over the text for the last slash and the hash of what is before it, in bpf_loop: a
    // plain loop would have the verifier walk every path through every byte.
    let mut scan = Scan {
        len: len as u64,
        hash: PATH_HASH_START,
        dir_hash: PATH_HASH_START,
        slash: u64::MAX,
    };
    // SAFETY: bpf_loop calls `scan_byte` with indices below PATH_LEN and a pointer to `scan`, which
    // outlives the call; the callback reads the path through this CPU's scratch slot.
    unsafe {
        bpf_loop(
            PATH_LEN as u32,
            scan_byte as *mut c_void,
            &mut scan as *mut Scan as *mut c_void,
            0,
        )
    };
    let (dir_hash, slash) = (scan.dir_hash, (scan.slash != u64::MAX).then_some(scan.slash as usize));
    let start = match slash {
        Some(i) => i + 1,
        None => 0,
    };
    if start >= len {
        // A trailing slash ("dir/"): only directories are named so; the parent's rescan finds it.
        count(stats::DIR_UNRESOLVED);
        return None;
    }
    // SAFETY: as above; reads the last component into `name`.
    unsafe { bpf_probe_read_user_str_bytes((path as *const u8).wrapping_add(start), name) }.ok()?;
    let key = match slash {
        None => key_of_dirfd(dfd)?,
        Some(_) if buf[0] == b'/' => {
            // SAFETY: a plain lookup in our own map; the value is copied out.
            return unsafe { DIR_PATHS.get(&dir_hash) }.copied();
        }
        Some(_) => {
            count(stats::DIR_UNRESOLVED);
            return None;
        }
    };
    // SAFETY: a plain lookup in our own map.
    unsafe { WATCHED.get(&key) }.map(|_| key)
}

/// What `scan_byte` carries from byte to byte.
#[repr(C)]
struct Scan {
    len: u64,
    hash: u64,
    /// The hash of the text before the last slash so far.
    dir_hash: u64,
    /// Where that slash is; u64::MAX before the first.
    slash: u64,
}

/// One step of the path scan (a `bpf_loop` callback): 1 stops the loop.
#[inline(never)]
extern "C" fn scan_byte(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Scan` that `locate` passes to bpf_loop.
    let scan = unsafe { &mut *(ctx as *mut Scan) };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    if index >= scan.len || index >= PATH_LEN as u64 {
        return 1;
    }
    // SAFETY: our own per-CPU slot; the index is below PATH_LEN.
    let c = unsafe { (*scratch).path[index as usize] };
    if c == b'/' {
        scan.dir_hash = scan.hash;
        scan.slash = index;
    }
    scan.hash = path_hash_step(scan.hash, c);
    0
}

/// Keeps the path arguments of a directory-changing syscall until it returns.
fn note(kind: u32, a: Option<PathArg>, b: Option<PathArg>) {
    let op = Op {
        kind,
        has: a.is_some() as u32 | (b.is_some() as u32) << 1,
        a: a.unwrap_or((0, 0)),
        b: b.unwrap_or((0, 0)),
    };
    if DIR_OPS.insert(&bpf_get_current_pid_tgid(), &op, 0).is_err() {
        count(stats::DIR_LOST);
    }
}

/// Reports `op` if one of its paths is in a watched directory.
fn report(op: &Op) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: our own per-CPU slot, used by one program at a time on this CPU.
    let scratch = unsafe { &mut *scratch };
    let none = FileKey::new(0, 0);
    let event = &mut scratch.event;
    event.kind = op.kind;
    event._pad = 0;
    event.dir = none;
    event.dir2 = none;
    event.name[0] = 0;
    event.name2[0] = 0;
    if op.has & 1 != 0 {
        event.dir = locate(op.a, &mut scratch.path, &mut event.name).unwrap_or(none);
    }
    if op.has & 2 != 0 {
        event.dir2 = locate(op.b, &mut scratch.path, &mut event.name2).unwrap_or(none);
    }
    if event.dir == none && event.dir2 == none {
        return;
    }
    if EVENTS.output::<DirEvent>(event, 0).is_ok() {
        count(stats::DIR_EVENTS);
    } else {
        count(stats::RING_FULL);
    }
}

fn path(ctx: &TracePointContext, dfd: Option<usize>, path: usize) -> Option<PathArg> {
    let dfd = match dfd {
        Some(n) => arg(ctx, n)?,
        None => AT_FDCWD,
    };
    Some((dfd, arg(ctx, path)?))
}

/// `creat(path, mode)`
#[tracepoint]
pub fn creat_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_CREATED, path(&ctx, None, 0), None);
    0
}

/// `open(path, flags, mode)`
#[tracepoint]
pub fn open_enter(ctx: TracePointContext) -> u32 {
    if arg(&ctx, 1).is_some_and(|flags| flags & O_CREAT != 0) {
        note(EVENT_CREATED, path(&ctx, None, 0), None);
    }
    0
}

/// `openat(dfd, path, flags, mode)`
#[tracepoint]
pub fn openat_enter(ctx: TracePointContext) -> u32 {
    if arg(&ctx, 2).is_some_and(|flags| flags & O_CREAT != 0) {
        note(EVENT_CREATED, path(&ctx, Some(0), 1), None);
    }
    0
}

/// `openat2(dfd, path, how, size)`: the flags are the first field of `*how`.
#[tracepoint]
pub fn openat2_enter(ctx: TracePointContext) -> u32 {
    let Some(how) = arg(&ctx, 2) else {
        return 0;
    };
    // SAFETY: a checked read of the caller's `struct open_how`, whose first field is the u64 flags.
    let flags = unsafe { bpf_probe_read_user(how as *const u64) }.unwrap_or(0);
    if flags & O_CREAT != 0 {
        note(EVENT_CREATED, path(&ctx, Some(0), 1), None);
    }
    0
}

/// `mkdir(path, mode)`, `rmdir(path)`
#[tracepoint]
pub fn mkdir_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_DIR_CHANGED, path(&ctx, None, 0), None);
    0
}

/// `mkdirat(dfd, path, mode)`
#[tracepoint]
pub fn mkdirat_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_DIR_CHANGED, path(&ctx, Some(0), 1), None);
    0
}

/// `unlink(path)`
#[tracepoint]
pub fn unlink_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_REMOVED, path(&ctx, None, 0), None);
    0
}

/// `unlinkat(dfd, path, flags)`: AT_REMOVEDIR makes it an rmdir.
#[tracepoint]
pub fn unlinkat_enter(ctx: TracePointContext) -> u32 {
    let kind = match arg(&ctx, 2) {
        Some(flags) if flags & AT_REMOVEDIR != 0 => EVENT_DIR_CHANGED,
        _ => EVENT_REMOVED,
    };
    note(kind, path(&ctx, Some(0), 1), None);
    0
}

/// `rename(old, new)`
#[tracepoint]
pub fn rename_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_MOVED, path(&ctx, None, 0), path(&ctx, None, 1));
    0
}

/// `renameat(olddfd, old, newdfd, new)`, `renameat2(…, flags)`
#[tracepoint]
pub fn renameat_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_MOVED, path(&ctx, Some(0), 1), path(&ctx, Some(2), 3));
    0
}

/// `link(old, new)`, `symlink(target, new)`: a new name.
#[tracepoint]
pub fn link_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_CREATED, path(&ctx, None, 1), None);
    0
}

/// `linkat(olddfd, old, newdfd, new, flags)`
#[tracepoint]
pub fn linkat_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_CREATED, path(&ctx, Some(2), 3), None);
    0
}

/// `symlinkat(target, newdfd, new)`
#[tracepoint]
pub fn symlinkat_enter(ctx: TracePointContext) -> u32 {
    note(EVENT_CREATED, path(&ctx, Some(1), 2), None);
    0
}

/// On every `sys_exit_*` of the syscalls above: reports the change if the syscall succeeded.
#[tracepoint]
pub fn dir_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: a lookup in our own map; the value is copied out before the entry is removed.
    let Some(op) = (unsafe { DIR_OPS.get(&id) }).copied() else {
        return 0;
    };
    let _ = DIR_OPS.remove(&id);
    if arg(&ctx, 0).is_some_and(|ret| ret as i64 >= 0) {
        report(&op);
    }
    0
}
