//! What shipper's BPF programs and its userspace agree on: map keys, the event record, the indices of
//! the statistics array and the names of the globals the loader fills in with kernel struct offsets.
#![no_std]

/// A file or directory as the kernel names it: `dev` in the kernel's encoding
/// (`major << 20 | minor`, not userspace's `st_dev`) and the inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

impl FileKey {
    pub const fn new(dev: u32, ino: u64) -> FileKey {
        FileKey { dev, _pad: 0, ino }
    }
}

/// A watched file was written (its size may have grown): an [`Event`].
pub const EVENT_WRITTEN: u32 = 1;
/// `name` appeared in the watched directory `dir` (create, link, symlink): a [`DirEvent`].
pub const EVENT_CREATED: u32 = 2;
/// `name` was unlinked from the watched directory `dir`: a [`DirEvent`].
pub const EVENT_REMOVED: u32 = 3;
/// Renamed from (`dir`, `name`) to (`dir2`, `name2`); the side that is not a watched directory has a
/// zero key: a [`DirEvent`].
pub const EVENT_MOVED: u32 = 4;
/// A subdirectory of `dir` was made or removed (rescan it): a [`DirEvent`].
pub const EVENT_DIR_CHANGED: u32 = 5;

/// A file's write event on the ring buffer. Every record starts with its kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub _pad: u32,
    pub key: FileKey,
    /// When it was put on the ring (`bpf_ktime_get_ns`, CLOCK_MONOTONIC). Userspace writes the
    /// latest such time it has taken into the `TAKEN` array; a file whose pending event is older than
    /// that reports again.
    pub ts: u64,
}

/// Room for a name in a directory event (NAME_MAX is 255); longer names are cut and userspace
/// rescans instead.
pub const NAME_LEN: usize = 256;

/// A change in a watched directory, reported once the syscall succeeded.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DirEvent {
    pub kind: u32,
    pub _pad: u32,
    pub dir: FileKey,
    pub dir2: FileKey,
    /// NUL-terminated unless it fills the array.
    pub name: [u8; NAME_LEN],
    pub name2: [u8; NAME_LEN],
}

/// The hash by which the programs find a watched directory from the text of an absolute path:
/// FNV-1a over the directory's path without a trailing slash (`/` hashes as the empty string).
/// Userspace files each watched directory under `path_hash` of its path; the programs compute it
/// byte by byte with [`path_hash_step`].
pub const PATH_HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

pub const fn path_hash_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

pub fn path_hash(path: &[u8]) -> u64 {
    let path = match path {
        [rest @ .., b'/'] => rest,
        p => p,
    };
    path.iter().fold(PATH_HASH_START, |h, &b| path_hash_step(h, b))
}

/// Per-CPU counters in the `STATS` array.
pub mod stats {
    /// Writes to watched files seen by the programs.
    pub const WATCHED_WRITES: u32 = 0;
    /// Events put on the ring buffer.
    pub const EVENTS: u32 = 1;
    /// Events that did not fit on the ring buffer (userspace rescans when this grows).
    pub const RING_FULL: u32 = 2;
    /// Writes whose file could not be resolved (fd out of range, read fault).
    pub const UNRESOLVED: u32 = 3;
    /// Directory events put on the ring buffer.
    pub const DIR_EVENTS: u32 = 4;
    /// Paths of directory-changing syscalls whose parent could not be told from the text (relative
    /// with a slash, `.`/`..`, longer than the programs read): any process's, most not ours.
    pub const DIR_UNRESOLVED: u32 = 5;
    /// Directory events lost because too many were in flight at once (userspace rescans).
    pub const DIR_LOST: u32 = 6;
    pub const LEN: u32 = 7;
}

/// Globals the loader sets from the running kernel's BTF before loading: byte offsets of the fields
/// the programs follow from the current task to a written file's (dev, inode). No offset is compiled
/// in, so the programs run on any kernel with BTF.
pub mod offsets {
    pub const TASK_FILES: &str = "OFF_TASK_FILES";
    pub const FILES_FDT: &str = "OFF_FILES_FDT";
    pub const FDT_MAX_FDS: &str = "OFF_FDT_MAX_FDS";
    pub const FDT_FD: &str = "OFF_FDT_FD";
    pub const FILE_INODE: &str = "OFF_FILE_INODE";
    pub const INODE_INO: &str = "OFF_INODE_INO";
    pub const INODE_SB: &str = "OFF_INODE_SB";
    pub const SB_DEV: &str = "OFF_SB_DEV";
    /// task_struct.fs
    pub const TASK_FS: &str = "OFF_TASK_FS";
    /// fs_struct.pwd + path.dentry: the current directory's dentry.
    pub const FS_PWD_DENTRY: &str = "OFF_FS_PWD_DENTRY";
    /// file.f_path + path.dentry
    pub const FILE_DENTRY: &str = "OFF_FILE_DENTRY";
    /// dentry.d_inode
    pub const DENTRY_INODE: &str = "OFF_DENTRY_INODE";
    /// io_kiocb.file: the file an io_uring request works on.
    pub const KIOCB_FILE: &str = "OFF_KIOCB_FILE";
    /// io_kiocb.opcode
    pub const KIOCB_OPCODE: &str = "OFF_KIOCB_OPCODE";
    /// Where `io_uring:io_uring_complete` records hold the request pointer and its result (from the
    /// tracepoint's format file).
    pub const TP_URING_REQ: &str = "OFF_TP_URING_REQ";
    pub const TP_URING_RES: &str = "OFF_TP_URING_RES";
    /// Bit n set: io_uring opcode n writes to its file (`IORING_OP_WRITE`, `_WRITEV`, `_WRITE_FIXED`,
    /// `_WRITEV_FIXED`, as the kernel's BTF numbers them).
    pub const URING_WRITE_OPS: &str = "URING_WRITE_OPS";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_does_not_change_the_hash() {
        assert_eq!(path_hash(b"/var/log/pods/"), path_hash(b"/var/log/pods"));
        assert_eq!(path_hash(b"/"), path_hash(b""));
        assert_ne!(path_hash(b"/var/log/pods"), path_hash(b"/var/log/pod"));
    }
}
