//! Throughput of the encode stage: a 1 MiB batch (~5,000 realistic lines of ~200 bytes over four
//! streams) encoded as Loki's `PushRequest` protobuf, with and without the snappy compression the push
//! body gets. Throughput counts line bytes.
//!
//! Run: `cargo bench -p shipper --bench encode`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::batch::{encode, encode_snappy, BodyEncoder};

mod common;
use common::push_batch;

fn bench(c: &mut Criterion) {
    let (streams, line_bytes) = push_batch();
    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
    let raw = encode(&streams).len();
    let snappy = encode_snappy(&streams).len();
    println!(
        "encode: {entries} lines, {line_bytes} line bytes in {} streams; protobuf {raw} bytes, snappy {snappy} bytes ({:.1}x)",
        streams.len(),
        raw as f64 / snappy as f64
    );

    let mut group = c.benchmark_group("encode");
    group.sample_size(50);
    group.throughput(Throughput::Bytes(line_bytes as u64));
    group.bench_function("protobuf", |b| b.iter(|| encode(black_box(&streams))));
    group.bench_function("protobuf_snappy", |b| b.iter(|| encode_snappy(black_box(&streams))));
    // What the batcher runs: buffers kept from one batch to the next.
    let mut encoder = BodyEncoder::default();
    group.bench_function("protobuf_snappy_kept_buffers", |b| {
        b.iter(|| encoder.body(black_box(&streams)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
