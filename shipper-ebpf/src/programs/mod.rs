//! The programs — writes on fexit or syscall tracepoints (userspace keeps the best the kernel allows)
//! and io_uring writes on their completion tracepoint, directory changes on syscall tracepoints; see `write` and `dirs` — and what they share: the maps, the kernel struct offsets the loader fills in from BTF, and
//! the walks from the current task to a file or directory's (dev, inode).

mod dirs;
mod write;

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use aya_ebpf::macros::map;
use aya_ebpf::maps::{HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TracePointContext;
use shipper_ebpf::FileKey;

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
#[no_mangle]
static OFF_TASK_FS: u64 = 0;
#[no_mangle]
static OFF_FS_PWD_DENTRY: u64 = 0;
#[no_mangle]
static OFF_FILE_DENTRY: u64 = 0;
#[no_mangle]
static OFF_DENTRY_INODE: u64 = 0;
#[no_mangle]
static OFF_KIOCB_FILE: u64 = 0;
#[no_mangle]
static OFF_KIOCB_OPCODE: u64 = 0;
#[no_mangle]
static OFF_TP_URING_REQ: u64 = 0;
#[no_mangle]
static OFF_TP_URING_RES: u64 = 0;
#[no_mangle]
static URING_WRITE_OPS: u64 = 0;

/// Files and directories userspace wants to hear about.
#[map]
static WATCHED: HashMap<FileKey, u8> = HashMap::with_max_entries(1 << 17, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(shipper_ebpf::stats::LEN, 0);

/// Offset of a syscall tracepoint record's first argument (each is 8 bytes wide) — and, in a
/// `sys_exit_*` record, of the return value.
const ARGS: usize = 16;

/// Argument `n` of a `sys_enter_*` record (or the return value of a `sys_exit_*` one for n = 0).
fn arg(ctx: &TracePointContext, n: usize) -> Option<u64> {
    // SAFETY: syscall tracepoint records hold 8-byte arguments from ARGS on; read_at checks the read.
    unsafe { ctx.read_at::<u64>(ARGS + 8 * n) }.ok()
}

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

/// Reads a kernel pointer (or number) at `base + offset`.
fn field<T>(base: *const u8, offset: &'static u64) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address and fails instead of faulting; `base` is only
    // used as an address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(global(offset) as usize) as *const T) }.ok()
}

/// The current task's open file `fd` (a `struct file *`), through task->files->fdt->fd[fd].
fn file_of(fd: u64) -> Option<*const u8> {
    // SAFETY: the helper only returns the current task's address; it is only read through `field`.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files: *const u8 = field(task, &OFF_TASK_FILES)?;
    let fdt: *const u8 = field(files, &OFF_FILES_FDT)?;
    let max_fds: u32 = field(fdt, &OFF_FDT_MAX_FDS)?;
    if fd >= u64::from(max_fds) {
        return None;
    }
    let fds: *const *const u8 = field(fdt, &OFF_FDT_FD)?;
    // SAFETY: as in `field`: a checked read of fd[fd], fd below max_fds.
    let file: *const u8 = unsafe { bpf_probe_read_kernel(fds.wrapping_add(fd as usize)) }.ok()?;
    (!file.is_null()).then_some(file)
}

/// The (dev, inode) of a `struct inode *`.
fn inode_key(inode: *const u8) -> Option<FileKey> {
    let ino: u64 = field(inode, &OFF_INODE_INO)?;
    let sb: *const u8 = field(inode, &OFF_INODE_SB)?;
    let dev: u32 = field(sb, &OFF_SB_DEV)?;
    Some(FileKey::new(dev, ino))
}

/// The (dev, inode) of the current task's open file `fd`.
fn key_of_fd(fd: u64) -> Option<FileKey> {
    inode_key(field(file_of(fd)?, &OFF_FILE_INODE)?)
}

/// The (dev, inode) of the directory a `*at` syscall's `dfd` names: the current directory for
/// AT_FDCWD, else the open directory `dfd`.
fn key_of_dirfd(dfd: u64) -> Option<FileKey> {
    const AT_FDCWD: i32 = -100;
    let dentry: *const u8 = if dfd as i32 == AT_FDCWD {
        // SAFETY: as in `file_of`.
        let task = unsafe { bpf_get_current_task() } as *const u8;
        field(field(task, &OFF_TASK_FS)?, &OFF_FS_PWD_DENTRY)?
    } else {
        field(file_of(dfd)?, &OFF_FILE_DENTRY)?
    };
    inode_key(field(dentry, &OFF_DENTRY_INODE)?)
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
