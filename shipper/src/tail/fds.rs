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
        let target = need.min(hard);
        if let Err(e) = Resource::NOFILE.set(target, hard) {
            tracing::warn!(error = %e, soft, "cannot raise the file descriptor limit (RLIMIT_NOFILE)");
        }
    }
    let soft = Resource::NOFILE.get().map_or(soft, |(s, _)| s);
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
