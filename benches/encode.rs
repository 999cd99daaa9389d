//! Throughput of the encode stage: a 1 MiB batch (~5,000 realistic lines of ~200 bytes over four
//! streams) encoded as Loki's `PushRequest` protobuf, with and without the snappy compression the push
//! body gets. Throughput counts line bytes.
//!
//! Run: `cargo bench -p shipper --bench encode`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::batch::{encode, encode_snappy, BatchEntry, StreamBatch};

mod common;
use common::{app_line, Rng};

/// Line bytes in the batch: the default `batch_size`.
const BATCH: usize = 1 << 20;

/// Four streams (two pods, stdout and stderr) sharing `BATCH` line bytes, stdout getting most lines;
/// timestamps advance by a few microseconds per line, as on a busy node.
fn batch() -> (Vec<StreamBatch>, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut streams: Vec<StreamBatch> = ["api-7d9f8c6b5d-x2k4q", "worker-5c8d7f9b4-m7n2p"]
        .iter()
        .flat_map(|pod| {
            let app = pod.split('-').next().unwrap_or(pod);
            ["stdout", "stderr"].map(|stream| StreamBatch {
                labels: Arc::from(format!(
                    "{{app=\"{app}\", container=\"{app}\", filename=\"/var/log/pods/prod_{pod}_0f3c2a91/{app}/0.log\", \
                     namespace=\"prod\", pod=\"{pod}\", stream=\"{stream}\"}}"
                )),
                entries: Vec::new(),
            })
        })
        .collect();
    let mut ts: i64 = 1_764_000_000_000_000_000;
    let mut bytes = 0;
    let mut i = 0;
    while bytes < BATCH {
        let line = app_line(&mut rng, i);
        bytes += line.len();
        ts += 1_000 + rng.below(20_000) as i64;
        let stream = 2 * rng.below(2) + usize::from(rng.below(8) == 0);
        streams[stream].entries.push(BatchEntry {
            ts_ns: ts,
            line: Bytes::from(line),
            metadata: Bytes::new(),
        });
        i += 1;
    }
    (streams, bytes)
}

fn bench(c: &mut Criterion) {
    let (streams, line_bytes) = batch();
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
