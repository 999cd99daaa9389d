//! Writes: `write_enter` notes which fd a thread writes to; `write_exit`, once the write has landed,
//! resolves that fd to the file's (dev, inode) and, when the file is watched, puts one event on the
//! ring buffer — at most one per file until userspace has taken it (`PENDING`), so a file written a
//! million times a second costs userspace one wakeup per read round.

use super::{arg, count, key_of_fd, EVENTS, WATCHED};
use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TracePointContext;
use shipper_ebpf::{stats, Event, FileKey, EVENT_WRITTEN};

/// Files with an event on the ring that userspace has not taken yet.
#[map]
static PENDING: HashMap<FileKey, u8> = HashMap::with_max_entries(1 << 17, 0);

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
    if PENDING.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        // Userspace has not taken the previous event of this file yet: it will read this write too.
        return 0;
    }
    let event = Event {
        kind: EVENT_WRITTEN,
        _pad: 0,
        key,
    };
    if EVENTS.output::<Event>(&event, 0).is_ok() {
        count(stats::EVENTS);
    } else {
        let _ = PENDING.remove(&key);
        count(stats::RING_FULL);
    }
    0
}
