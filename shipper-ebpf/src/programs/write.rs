//! Writes: `write_enter` notes which fd a thread writes to; `write_exit`, once the write has landed,
//! resolves that fd to the file's (dev, inode) and, when the file is watched, puts one event on the
//! ring buffer — at most one per file until userspace has taken it, so a file written a million times
//! a second costs userspace one wakeup per read round. "Taken" without a syscall per event: `PENDING`
//! holds when each file's last event was put on the ring, `TAKEN` the time of the newest event
//! userspace has taken (one map update per drain of the ring).

use super::{arg, count, key_of_fd, EVENTS, WATCHED};
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::{Array, HashMap};
use aya_ebpf::programs::TracePointContext;
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

/// On `sys_enter_write`, `_writev` and `_pwrite64`, whose first argument is the fd.
#[tracepoint]
pub fn write_enter(ctx: TracePointContext) -> u32 {
    if let Some(fd) = arg(&ctx, 0) {
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
    let Some(key) = key_of_fd(fd) else {
        count(stats::UNRESOLVED);
        return 0;
    };
    // SAFETY: a plain lookup in our own map.
    if unsafe { WATCHED.get(&key) }.is_none() {
        return 0;
    }
    count(stats::WATCHED_WRITES);
    let taken = TAKEN.get(0).copied().unwrap_or(0);
    // SAFETY: a plain lookup in our own map; the value is copied out.
    if unsafe { PENDING.get(&key) }.is_some_and(|&put| put > taken) {
        // Userspace has not taken this file's event yet: it will read this write too.
        return 0;
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
    0
}
