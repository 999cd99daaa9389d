//! Writes, from the best hook the kernel allows (userspace ranks them and proves the one it keeps):
//! - fexit on `vfs_write` / `vfs_writev`: one program per write, the file comes as an argument;
//! - syscall tracepoints: `write_enter` (and `copy_enter`, for the syscalls that copy from one fd
//!   to another) notes which fd a thread writes to; `write_exit`, once the write has landed,
//!   resolves that fd to the file's (dev, inode).
//!
//! `sendfile`, `copy_file_range` and `splice` do not pass through `vfs_write`: their tracepoints are
//! attached with either hook. Nor do io_uring writes: `uring_complete`, on the kernel's
//! `io_uring:io_uring_complete` tracepoint, reports the file of each write request that wrote.
//!
//! Either way, when the file is watched, `report` puts one event on the ring buffer — at most one per file until userspace has taken it, so a file written a million times
//! a second costs userspace one wakeup per read round. "Taken" without a syscall per event: `PENDING`
//! holds when each file's last event was put on the ring, `TAKEN` the time of the newest event
//! userspace has taken (one map update per drain of the ring).

use super::{
    arg, count, field, global, inode_key, key_of_fd, EVENTS, OFF_FILE_INODE, OFF_KIOCB_FILE, OFF_KIOCB_OPCODE,
    OFF_TP_URING_REQ, OFF_TP_URING_RES, URING_WRITE_OPS, WATCHED,
};
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use aya_ebpf::macros::{fexit, map, tracepoint};
use aya_ebpf::maps::{Array, HashMap};
use aya_ebpf::programs::{FExitContext, TracePointContext};
use shipper_ebpf::{stats, Event, FileKey, EVENT_WRITTEN};

/// When each watched file's last event was put on the ring.
#[map]
static PENDING: HashMap<FileKey, u64> = HashMap::with_max_entries(1 << 17, 0);

/// The time of the newest event userspace has taken off the ring (index 0).
#[map]
static TAKEN: Array<u64> = Array::with_max_entries(1, 0);

/// The fd each thread is writing to, between syscall entry and exit.
#[map]
static WRITING: HashMap<u64, u64> = HashMap::with_max_entries(1 << 14, 0);

/// On `sys_enter_write`, `_writev`, `_pwrite64`, `_pwritev`, `_pwritev2` and `_sendfile64`, whose
/// first argument is the fd written to.
#[tracepoint]
pub fn write_enter(ctx: TracePointContext) -> u32 {
    writing(&ctx, 0)
}

/// On `sys_enter_copy_file_range` and `_splice`, whose third argument is the fd written to.
#[tracepoint]
pub fn copy_enter(ctx: TracePointContext) -> u32 {
    writing(&ctx, 2)
}

/// Notes that this thread writes to the fd in argument `n`, for `write_exit`.
fn writing(ctx: &TracePointContext, n: usize) -> u32 {
    if let Some(fd) = arg(ctx, n) {
        let _ = WRITING.insert(&bpf_get_current_pid_tgid(), &fd, 0);
    }
    0
}

#[tracepoint]
pub fn write_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: a plain lookup in our own map; the value is copied out before the entry is removed.
    let Some(fd) = (unsafe { WRITING.get(&id) }).copied() else {
        return 0;
    };
    let _ = WRITING.remove(&id);
    if arg(&ctx, 0).is_none_or(|ret| ret as i64 <= 0) {
        return 0;
    }
    match key_of_fd(fd) {
        Some(key) => report(key),
        None => count(stats::UNRESOLVED),
    }
    0
}

/// `vfs_write(file, buf, count, pos)` returned (its return value follows the 4 arguments).
#[fexit(function = "vfs_write")]
pub fn write_fexit(ctx: FExitContext) -> i32 {
    written(ctx.arg(0), ctx.arg::<i64>(4));
    0
}

/// `vfs_writev(file, vec, vlen, pos, flags)` returned (writev, pwritev).
#[fexit(function = "vfs_writev")]
pub fn writev_fexit(ctx: FExitContext) -> i32 {
    written(ctx.arg(0), ctx.arg::<i64>(5));
    0
}

/// An io_uring request completed (`io_uring:io_uring_complete`, where the request and its result
/// sit at offsets the loader reads from the tracepoint's format): when it was a write that wrote, its
/// file was written. Reads — the agent's own among them — are not writes, so they report nothing.
#[tracepoint]
pub fn uring_complete(ctx: TracePointContext) -> u32 {
    // SAFETY: read_at checks the reads against the record; the offsets come from its format.
    let record = unsafe {
        (
            ctx.read_at::<u64>(global(&OFF_TP_URING_REQ) as usize),
            ctx.read_at::<i32>(global(&OFF_TP_URING_RES) as usize),
        )
    };
    let (Ok(req), Ok(res)) = record else {
        return 0;
    };
    let req = req as *const u8;
    let Some(op) = field::<u8>(req, &OFF_KIOCB_OPCODE) else {
        return 0;
    };
    if op >= 64 || global(&URING_WRITE_OPS) & (1 << op) == 0 {
        return 0;
    }
    if let Some(file) = field::<*const u8>(req, &OFF_KIOCB_FILE) {
        written(file, i64::from(res));
    }
    0
}

/// A write of `ret` bytes to the `struct file *` `file` returned.
fn written(file: *const u8, ret: i64) {
    if ret <= 0 {
        return;
    }
    match field(file, &OFF_FILE_INODE).and_then(inode_key) {
        Some(key) => report(key),
        None => count(stats::UNRESOLVED),
    }
}

/// The file `key` was written: one event on the ring if it is watched and has none waiting.
fn report(key: FileKey) {
    // SAFETY: a plain lookup in our own map.
    if unsafe { WATCHED.get(&key) }.is_none() {
        return;
    }
    count(stats::WATCHED_WRITES);
    let taken = TAKEN.get(0).copied().unwrap_or(0);
    // SAFETY: a plain lookup in our own map; the value is copied out.
    if unsafe { PENDING.get(&key) }.is_some_and(|&put| put > taken) {
        // Userspace has not taken this file's event yet: it will read this write too.
        return;
    }
    // SAFETY: the helper only reads the monotonic clock.
    let ts = unsafe { bpf_ktime_get_ns() };
    let _ = PENDING.insert(&key, &ts, 0);
    let event = Event {
        kind: EVENT_WRITTEN,
        _pad: 0,
        key,
        ts,
    };
    if EVENTS.output::<Event>(&event, 0).is_ok() {
        count(stats::EVENTS);
    } else {
        let _ = PENDING.remove(&key);
        count(stats::RING_FULL);
    }
}
