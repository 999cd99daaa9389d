//! Throughput of the ring: a producer thread (the reader) sends chunks of ~256 KiB of entries into a
//! ring of 64 chunks, the bench thread (the batcher) receives them, walks their entries and drops them.
//!
//! As in the agent, each chunk's lines are slices of its own read buffer: the producer builds every
//! chunk's `Vec<Entry>` (one allocation, one refcount increment per line) and the consumer frees it.
//! The buffers come from a pool twice the ring's capacity, so the two threads never touch the same
//! buffer's refcount at once. Throughput counts line bytes.
//!
//! Run: `cargo bench -p shipper --bench ring`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::labels::StreamLabels;
use shipper::parse::{Entry, StreamKind};
use shipper::ring::{ring, Chunk, RingReceiver, RingSender};

mod common;
use common::Rng;

/// Bytes of one read, hence of one chunk's lines (plus their `\n`).
const CHUNK: usize = 256 << 10;
/// The default `tail.ring_capacity`.
const CAPACITY: usize = 64;
/// Distinct read buffers the chunks are cut from.
const POOL: usize = 2 * CAPACITY;
/// Files the chunks are spread over (one label set each).
const FILES: usize = 16;
/// Chunks sent per iteration: 64 MiB of reads.
const CHUNKS: u64 = 256;

/// ~`CHUNK` bytes of `\n`-terminated lines of 60–350 bytes (content does not matter here, sizes do).
fn read_buffer() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(CHUNK);
    let mut i = 0;
    loop {
        let mut line = format!(
            "level=info ts=2026-11-24T10:00:00Z caller=handler.go:{} msg=\"",
            i % 500
        );
        let len = 60 + rng.below(291);
        while line.len() < len - 1 {
            line.push_str(["request ", "completed ", "upstream ", "GET /api/v1/items "][rng.below(4)]);
        }
        line.truncate(len - 1);
        line.push('"');
        if out.len() + line.len() + 1 > CHUNK {
            return out;
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        i += 1;
    }
}

/// The entries of one read: every line of `buf` (without its `\n`), sliced, not copied.
fn entries_of(buf: &Bytes) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let n = entries.len() as i64;
            entries.push(Entry {
                ts_ns: 1_764_000_000_000_000_000 + n * 1_000,
                line: buf.slice(start..i),
                stream: if n % 8 == 0 {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                },
                offset: start as u64,
                extra: None,
            });
            start = i + 1;
        }
    }
    entries
}

fn labels(file: usize) -> Arc<StreamLabels> {
    let pod = format!("api-7d9f8c6b5d-{file:05}");
    let labels: BTreeMap<String, String> = [
        ("app", "api".to_string()),
        ("container", "api".to_string()),
        ("filename", format!("/var/log/pods/prod_{pod}_0f3c2a91/api/0.log")),
        ("namespace", "prod".to_string()),
        ("pod", pod),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Arc::new(StreamLabels::new(&labels))
}

/// Sends `n` chunks, as the reader does after each read, then closes the ring.
fn produce(tx: RingSender, pool: &[Vec<Entry>], labels: &[Arc<StreamLabels>], chunk_bytes: u64, n: u64) {
    for i in 0..n {
        let file = i as usize % FILES;
        let chunk = Chunk {
            file: file as u64,
            labels: labels[file].clone(),
            entries: pool[i as usize % POOL].clone(),
            commit_offset: (i / FILES as u64 + 1) * chunk_bytes,
            clients: None,
        };
        if tx.send(vec![chunk]).is_err() {
            return;
        }
    }
}

/// Receives until the ring is closed, touching every entry as the batcher does; returns the line bytes.
fn consume(rx: RingReceiver) -> u64 {
    let mut bytes = 0;
    while let Some(bundle) = rx.recv() {
        for chunk in bundle {
            bytes += chunk.entries.iter().map(|e| e.line.len() as u64).sum::<u64>();
            black_box(chunk);
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let buf = read_buffer();
    let pool: Vec<Vec<Entry>> = (0..POOL).map(|_| entries_of(&Bytes::copy_from_slice(&buf))).collect();
    let labels: Vec<Arc<StreamLabels>> = (0..FILES).map(labels).collect();
    let line_bytes: u64 = pool[0].iter().map(|e| e.line.len() as u64).sum();
    println!(
        "ring: chunks of {} entries, {line_bytes} line bytes ({} read bytes), capacity {CAPACITY}, {CHUNKS} chunks per iteration",
        pool[0].len(),
        buf.len()
    );

    let mut group = c.benchmark_group("ring");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(line_bytes * CHUNKS));
    group.bench_function("spsc_256k_chunks", |b| {
        b.iter_custom(|iters| {
            let n = iters * CHUNKS;
            let (tx, rx) = ring(CAPACITY);
            let start = Instant::now();
            let moved = thread::scope(|s| {
                s.spawn(|| produce(tx, &pool, &labels, buf.len() as u64, n));
                consume(rx)
            });
            let elapsed = start.elapsed();
            assert_eq!(moved, n * line_bytes);
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
