//! Throughput of the read path: 64 MiB of page-cache-warm log files read in 256 KiB reads through
//! `Io::read_all`, with io_uring and with pread. Two shapes:
//!
//! - `one_file`: one 64 MiB file, one read per submission (a single busy container);
//! - `16_files`: sixteen 4 MiB files, one read of each per submission (many containers at once,
//!   where io_uring does the 16 reads with one system call).
//!
//! The read buffers are cleared after every read, so memory stays flat and the numbers measure the
//! kernel copy plus the syscall cost, not allocation. The files live in a temporary directory under
//! the system temp dir (set `TMPDIR` to move it) and are read once before measuring.
//!
//! Run: `cargo bench -p shipper --bench read`.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::config::IoMode;
use shipper::tail::{Io, ReadReq};

/// Bytes read per iteration, in both shapes.
const TOTAL: usize = 64 << 20;
/// Bytes of one read (the reader's read size).
const READ: usize = 256 << 10;
/// Files read together in the `16_files` shape.
const FILES: usize = 16;

/// Writes `len` bytes of CRI-looking log lines to `path` and reads them back once, so the page cache
/// holds the file before measuring.
fn write_file(path: &Path, len: usize) -> File {
    let mut data = Vec::with_capacity(len + 256);
    let mut i = 0u64;
    while data.len() < len {
        let line = format!(
            "2026-11-24T10:00:{:02}.{:09}Z stdout F level=info caller=handler.go:{} msg=\"request completed\" \
             duration_ms={} trace_id={:016x}\n",
            (i / 1000) % 60,
            (i * 7919) % 1_000_000_000,
            i % 500,
            i % 10_000,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        data.extend_from_slice(line.as_bytes());
        i += 1;
    }
    data.truncate(len);
    let mut f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(&data)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    drop(f);
    let back = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(back.len(), len);
    File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Reads `[0, len)` of every file in `fds`, `READ` bytes of each per `read_all` call.
fn read_files(io: &mut Io, fds: &[RawFd], bufs: &mut [BytesMut], len: usize) {
    for offset in (0..len).step_by(READ) {
        let mut reqs: Vec<ReadReq<'_>> = fds
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&fd, buf)| {
                buf.clear();
                ReadReq::new(fd, offset as u64, buf, READ)
            })
            .collect();
        io.read_all(&mut reqs);
        for r in &reqs {
            assert!(
                matches!(r.result, Ok(n) if n == READ),
                "short or failed read at {offset}: {:?}",
                r.result
            );
        }
        black_box(&reqs);
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("shipper-bench-read-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let one = write_file(&dir.path().join("one.log"), TOTAL);
    let many: Vec<File> = (0..FILES)
        .map(|i| write_file(&dir.path().join(format!("f{i:02}.log")), TOTAL / FILES))
        .collect();
    let many_fds: Vec<RawFd> = many.iter().map(|f| f.as_raw_fd()).collect();
    let mut bufs: Vec<BytesMut> = (0..FILES).map(|_| BytesMut::with_capacity(READ)).collect();

    let mut group = c.benchmark_group("read");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(TOTAL as u64));
    for mode in [IoMode::Uring, IoMode::Pread] {
        let mut io = Io::new(mode);
        if mode == IoMode::Uring && io.name() != "io_uring" {
            println!("read: io_uring cannot be set up here; skipping the io_uring cases");
            continue;
        }
        let name = io.name();
        group.bench_function(format!("{name}/one_file"), |b| {
            b.iter(|| read_files(&mut io, &[one.as_raw_fd()], &mut bufs[..1], TOTAL))
        });
        group.bench_function(format!("{name}/16_files"), |b| {
            b.iter(|| read_files(&mut io, &many_fds, &mut bufs, TOTAL / FILES))
        });
        assert!(
            mode == IoMode::Pread || io.name() == "io_uring",
            "io_uring failed during the bench and fell back to pread"
        );
    }
    group.finish();
    assert!(bufs.iter().all(|b| b.capacity() <= 2 * READ), "read buffers grew");
}

criterion_group!(benches, bench);
criterion_main!(benches);
