//! The programs: `write_enter` notes which fd a thread writes to; `write_exit`, once the write has
//! landed, follows the current task's fd table to the file's (dev, inode) and, when that file is
//! watched, puts one event on the ring buffer — at most one per file until userspace has taken it
//! (`PENDING`), so a file written a million times a second costs userspace one wakeup per read round.

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel};
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::{HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TracePointContext;
use shipper_ebpf::{stats, Event, FileKey, EVENT_WRITTEN};

#[no_mangle]
static OFF_TASK_FILES: u64 = 0;
#[no_mangle]
static OFF_FILES_FDT: u64 = 0;
#[no_mangle]
static OFF_FDT_MAX_FDS: u64 = 0;
#[no_mangle]
static OFF_FDT_FD: u64 = 0;
#[no_mangle]
static OFF_FILE_INODE: u64 = 0;
#[no_mangle]
static OFF_INODE_INO: u64 = 0;
#[no_mangle]
static OFF_INODE_SB: u64 = 0;
#[no_mangle]
static OFF_SB_DEV: u64 = 0;

/// Files (and directories) userspace wants to hear about.
#[map]
static WATCHED: HashMap<FileKey, u8> = HashMap::with_max_entries(1 << 17, 0);

/// Files with an event on the ring that userspace has not taken yet.
#[map]
static PENDING: HashMap<FileKey, u8> = HashMap::with_max_entries(1 << 17, 0);

/// The fd each thread is writing to, between syscall entry and exit.
#[map]
static WRITING: HashMap<u64, u64> = HashMap::with_max_entries(1 << 14, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// Offset of `fd` in the `syscalls/sys_enter_write` (and `_writev`, `_pwrite64`) record.
const ENTER_FD: usize = 16;
/// Offset of `ret` in the `syscalls/sys_exit_*` record.
const EXIT_RET: usize = 16;

fn global(v: &'static u64) -> u64 {
    // SAFETY: reading a static of ours; volatile so the value the loader patched into .rodata is read
    // at run time instead of the compile-time zero being folded in.
    unsafe { core::ptr::read_volatile(v) }
}

fn count(index: u32) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot of our own array: no other CPU writes it, and this program is not
        // preempted by itself on this CPU.
        unsafe { *p += 1 };
    }
}

#[tracepoint]
pub fn write_enter(ctx: TracePointContext) -> u32 {
    // SAFETY: the tracepoint record of sys_enter_write/writev/pwrite64 holds the fd at ENTER_FD.
    let Ok(fd) = (unsafe { ctx.read_at::<u64>(ENTER_FD) }) else {
        return 0;
    };
    let _ = WRITING.insert(&bpf_get_current_pid_tgid(), &fd, 0);
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
    // SAFETY: the tracepoint record of sys_exit_* holds the return value at EXIT_RET.
    let ret = unsafe { ctx.read_at::<i64>(EXIT_RET) }.unwrap_or(0);
    if ret <= 0 {
        return 0;
    }
    let Some(key) = file_of(fd) else {
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
        key,
        kind: EVENT_WRITTEN,
        _pad: 0,
    };
    if EVENTS.output::<Event>(&event, 0).is_ok() {
        count(stats::EVENTS);
    } else {
        let _ = PENDING.remove(&key);
        count(stats::RING_FULL);
    }
    0
}

/// The (dev, inode) of the current task's open file `fd`, following
/// task->files->fdt->fd[fd]->f_inode->{i_ino, i_sb->s_dev} with offsets from the kernel's BTF.
fn file_of(fd: u64) -> Option<FileKey> {
    // SAFETY: the helper only returns the current task's address; it is never dereferenced directly.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: every read below goes through bpf_probe_read_kernel, which checks the address and
    // fails instead of faulting; the pointers are only used as addresses for further such reads.
    unsafe {
        let files: *const u8 = bpf_probe_read_kernel(task.add(global(&OFF_TASK_FILES) as usize) as *const _).ok()?;
        let fdt: *const u8 = bpf_probe_read_kernel(files.add(global(&OFF_FILES_FDT) as usize) as *const _).ok()?;
        let max_fds: u32 = bpf_probe_read_kernel(fdt.add(global(&OFF_FDT_MAX_FDS) as usize) as *const _).ok()?;
        if fd >= u64::from(max_fds) {
            return None;
        }
        let fds: *const *const u8 = bpf_probe_read_kernel(fdt.add(global(&OFF_FDT_FD) as usize) as *const _).ok()?;
        let file: *const u8 = bpf_probe_read_kernel(fds.add(fd as usize)).ok()?;
        if file.is_null() {
            return None;
        }
        let inode: *const u8 = bpf_probe_read_kernel(file.add(global(&OFF_FILE_INODE) as usize) as *const _).ok()?;
        let ino: u64 = bpf_probe_read_kernel(inode.add(global(&OFF_INODE_INO) as usize) as *const _).ok()?;
        let sb: *const u8 = bpf_probe_read_kernel(inode.add(global(&OFF_INODE_SB) as usize) as *const _).ok()?;
        let dev: u32 = bpf_probe_read_kernel(sb.add(global(&OFF_SB_DEV) as usize) as *const _).ok()?;
        Some(FileKey::new(dev, ino))
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: BPF programs cannot unwind or loop forever; the verifier rejects any path that could
    // reach a panic, so this is never executed.
    unsafe { core::hint::unreachable_unchecked() }
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
