//! Snappy encoders side by side on the push body of `benches/encode` (a 1 MiB batch of realistic
//! lines as Loki's protobuf): `snap` as the agent ships it, `snap` with the buffers kept (what the
//! batcher does), Google's C++ libsnappy (Debian's, through the `snappy` binding crate), and the
//! pure-Rust `xsnappy`: does another encoder lower the in-process bound, half of which is
//! snappy? Every output is checked to decompress to the same protobuf before timing.
//! Throughput counts line bytes, as in `benches/encode`.
//!
//! Run: `cargo bench -p shipper --bench snappy --features snappy-alternatives` (libsnappy-dev
//! installed: `cargo xtask setup` does it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::batch::{encode, BodyEncoder};

mod common;
use common::push_batch;

fn bench(c: &mut Criterion) {
    let (streams, line_bytes) = push_batch();
    let raw = encode(&streams);
    let unsnap = |body: &[u8]| snap::raw::Decoder::new().decompress_vec(body).expect("valid snappy");
    let mut xs_out = vec![0u8; xsnappy::max_encode_len(raw.len())];
    let xs_len = xsnappy::encode(&mut xs_out, &raw);
    let mut encoder = BodyEncoder::default();
    for (name, body) in [
        ("snap", snap::raw::Encoder::new().compress_vec(&raw).expect("compress")),
        ("snap, kept buffers", encoder.body(&streams).to_vec()),
        ("libsnappy", snappy::compress(&raw)),
        ("xsnappy", xs_out[..xs_len].to_vec()),
    ] {
        assert_eq!(unsnap(&body), raw, "{name} does not round-trip");
        println!("snappy: {name}: {} -> {} bytes", raw.len(), body.len());
    }

    let mut group = c.benchmark_group("snappy");
    group.sample_size(50);
    group.throughput(Throughput::Bytes(line_bytes as u64));
    group.bench_function("snap", |b| {
        b.iter(|| snap::raw::Encoder::new().compress_vec(black_box(&raw)))
    });
    let mut enc = snap::raw::Encoder::new();
    let mut out = vec![0u8; snap::raw::max_compress_len(raw.len())];
    group.bench_function("snap_kept_buffers", |b| {
        b.iter(|| enc.compress(black_box(&raw), &mut out))
    });
    group.bench_function("libsnappy", |b| b.iter(|| snappy::compress(black_box(&raw))));
    group.bench_function("xsnappy", |b| b.iter(|| xsnappy::encode(&mut xs_out, black_box(&raw))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
