//! The read path: io_uring (one submission reads from many files at once) with a `pread` fallback for
//! kernels or sandboxes (seccomp, `io_uring_disabled`) where a ring cannot be set up.
//!
//! Reads land in the spare capacity of each file's `BytesMut`, so the bytes are never copied before
//! the lines are sliced out of them.

use crate::config::IoMode;
use bytes::BytesMut;
use io_uring::{opcode, types, IoUring};
use std::io;
use std::os::fd::RawFd;

/// Entries of the submission queue: the most reads in flight at once.
const RING_ENTRIES: u32 = 64;

/// One read to do: `len` bytes from `fd` at `offset`, appended to `buf`.
pub struct ReadReq<'a> {
    pub fd: RawFd,
    pub offset: u64,
    pub buf: &'a mut BytesMut,
    pub len: usize,
    pub result: io::Result<usize>,
}

impl<'a> ReadReq<'a> {
    pub fn new(fd: RawFd, offset: u64, buf: &'a mut BytesMut, len: usize) -> Self {
        ReadReq {
            fd,
            offset,
            buf,
            len,
            result: Ok(0),
        }
    }
}

pub enum Io {
    Uring(Box<IoUring>),
    Pread,
}

impl Io {
    /// Sets up the read path `mode` asks for; `auto` tries io_uring and falls back to pread, saying why.
    pub fn new(mode: IoMode) -> Io {
        if mode == IoMode::Pread {
            tracing::info!(reader = "pread", "file reads: pread (as configured)");
            return Io::Pread;
        }
        match IoUring::new(RING_ENTRIES) {
            Ok(ring) => {
                tracing::info!(reader = "io_uring", "file reads: io_uring");
                Io::Uring(Box::new(ring))
            }
            Err(e) => {
                tracing::warn!(reader = "pread", error = %e,
                    "io_uring cannot be set up (seccomp profile, kernel.io_uring_disabled or an old kernel); file reads fall back to pread");
                Io::Pread
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Io::Uring(_) => "io_uring",
            Io::Pread => "pread",
        }
    }

    /// Does every read in `reqs`, setting each `result`.
    pub fn read_all(&mut self, reqs: &mut [ReadReq<'_>]) {
        for r in reqs.iter_mut() {
            r.buf.reserve(r.len);
        }
        if let Io::Uring(ring) = self {
            for group in reqs.chunks_mut(RING_ENTRIES as usize) {
                if let Err(e) = uring_read(ring, group) {
                    tracing::error!(error = %e, "io_uring failed; file reads fall back to pread");
                    // The ring may still hold queued entries that point into our buffers: never enter it
                    // again and never close it, so the kernel cannot touch that memory.
                    if let Io::Uring(ring) = std::mem::replace(self, Io::Pread) {
                        Box::leak(ring);
                    }
                    break;
                }
            }
        }
        if let Io::Pread = self {
            for r in reqs.iter_mut() {
                r.result = pread(r);
            }
        }
    }
}

fn pread(r: &mut ReadReq<'_>) -> io::Result<usize> {
    let spare = r.buf.spare_capacity_mut();
    let len = r.len.min(spare.len());
    loop {
        // SAFETY: `spare` is writable memory of at least `len` bytes owned by `r.buf`, which we borrow
        // mutably for the whole call; pread writes at most `len` bytes into it.
        let n = unsafe { libc::pread(r.fd, spare.as_mut_ptr().cast(), len, r.offset as libc::off_t) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel initialised exactly `n <= len <= spare capacity` bytes after the end.
            unsafe { r.buf.set_len(r.buf.len() + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn uring_read(ring: &mut IoUring, reqs: &mut [ReadReq<'_>]) -> io::Result<()> {
    for (i, r) in reqs.iter_mut().enumerate() {
        let spare = r.buf.spare_capacity_mut();
        let len = r.len.min(spare.len()).min(u32::MAX as usize) as u32;
        let sqe = opcode::Read::new(types::Fd(r.fd), spare.as_mut_ptr().cast(), len)
            .offset(r.offset)
            .build()
            .user_data(i as u64);
        // SAFETY: the buffer (spare capacity of `r.buf`) stays valid and unmoved until its completion is
        // reaped below: we hold `&mut` on every buffer for this whole function and return only after
        // all submitted reads completed (or, on error, the ring is leaked so it is never entered again).
        // The queue has room: at most RING_ENTRIES requests per call and every earlier one was reaped.
        unsafe { ring.submission().push(&sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
    }
    let mut pending = reqs.len();
    while pending > 0 {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)) => continue,
            Err(e) => return Err(e),
        }
        for cqe in ring.completion() {
            let Some(r) = reqs.get_mut(cqe.user_data() as usize) else {
                continue;
            };
            pending -= 1;
            let res = cqe.result();
            r.result = if res >= 0 {
                let n = (res as usize).min(r.buf.capacity() - r.buf.len());
                // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it (never more
                // than the length we asked for, which fits in that capacity).
                unsafe { r.buf.set_len(r.buf.len() + n) };
                Ok(n)
            } else {
                Err(io::Error::from_raw_os_error(-res))
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    fn check(mode: IoMode) {
        let mut files = Vec::new();
        for i in 0..100u8 {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&vec![i; 1000 + i as usize]).unwrap();
            files.push(f);
        }
        let mut io = Io::new(mode);
        let mut bufs: Vec<BytesMut> = (0..100).map(|_| BytesMut::from(&b"head"[..])).collect();
        let mut reqs: Vec<ReadReq> = files
            .iter()
            .zip(bufs.iter_mut())
            .map(|(f, b)| ReadReq::new(f.as_raw_fd(), 10, b, 4096))
            .collect();
        io.read_all(&mut reqs);
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(*r.result.as_ref().unwrap(), 990 + i, "{}", io.name());
        }
        drop(reqs);
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(&b[..4], b"head");
            assert!(b[4..].iter().all(|&x| x == i as u8));
            assert_eq!(b.len(), 4 + 990 + i);
        }
        let mut bad = BytesMut::new();
        let mut reqs = [ReadReq::new(-1, 0, &mut bad, 10)];
        io.read_all(&mut reqs);
        assert!(reqs[0].result.is_err());
    }

    #[test]
    fn pread_reads_many_files() {
        check(IoMode::Pread);
    }

    #[test]
    fn uring_reads_many_files() {
        let io = Io::new(IoMode::Uring);
        if matches!(io, Io::Pread) {
            assert!(
                std::env::var_os("CI").is_none(),
                "io_uring must work in CI (kernel allows it)"
            );
            eprintln!("skipping: io_uring not available here");
            return;
        }
        check(IoMode::Uring);
    }
}
