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

/// A watched file was written (its size may have grown).
pub const EVENT_WRITTEN: u32 = 1;

/// One record on the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub key: FileKey,
    pub kind: u32,
    pub _pad: u32,
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
    pub const LEN: u32 = 4;
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
}
