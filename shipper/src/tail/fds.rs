//! File descriptors: each tailed file holds one. The agent raises its soft `RLIMIT_NOFILE` to what
//! `tail.max_open_files` needs, and where the hard limit is lower it tails fewer files at once (and
//! says so) rather than fail opens — or its own sockets — with EMFILE.

use rlimit::Resource;

/// Descriptors kept for everything but tailed files: sockets, the positions file, io_uring, BPF maps,
/// inotify, directory listings.
pub const RESERVED: u64 = 256;

/// How many files may be open at once given the descriptor limits, raising the soft limit as far as
/// the hard one allows.
pub fn fit_open_files(wanted: usize) -> usize {
    let need = wanted as u64 + RESERVED;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return wanted;
    };
    if soft < need {
        // With CAP_SYS_RESOURCE (root on a node) the hard limit can be raised too, up to fs.nr_open.
        let raised = hard < need && Resource::NOFILE.set(need.min(nr_open()), need.min(nr_open())).is_ok();
        if !raised {
            if let Err(e) = Resource::NOFILE.set(need.min(hard), hard) {
                tracing::warn!(error = %e, soft, "cannot raise the file descriptor limit (RLIMIT_NOFILE)");
            }
        }
    }
    let soft = Resource::NOFILE.get().map_or(soft, |(s, _)| s);
    tracing::debug!(nofile_limit = soft, "file descriptor limit");
    if soft >= need {
        return wanted;
    }
    let fitting = soft.saturating_sub(RESERVED).max(1) as usize;
    tracing::warn!(
        max_open_files = wanted,
        nofile_limit = soft,
        tailing_at_most = fitting,
        "the file descriptor limit is below tail.max_open_files + {RESERVED}: at most {fitting} files are tailed at once, the others wait (raise LimitNOFILE or `ulimit -n`, or lower tail.max_open_files)"
    );
    fitting
}

/// The kernel's ceiling for RLIMIT_NOFILE (`fs.nr_open`, 1048576 by default).
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}
