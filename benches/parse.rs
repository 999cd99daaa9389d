//! Throughput of the parse stage: ~16 MiB of realistic container logs through `Framer` and
//! `FileParser`, fed in 256 KiB reads as the reader does, entries dropped after each batch as
//! if shipped.
//!
//! Run: `cargo bench -p shipper --bench parse`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::parse::{Entry, FileParser, Format, Framer, ParseStats};

mod common;
use common::{app_line, Rng};

const TOTAL: usize = 16 << 20;
const READ: usize = 256 << 10;
const MAX_LINE: usize = 256 << 10;

fn timestamp(i: usize) -> String {
    format!(
        "2026-11-24T10:{:02}:{:02}.{:09}Z",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        (i * 7919) % 1_000_000_000
    )
}

fn cri_file() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(TOTAL + 4096);
    let mut i = 0;
    while out.len() < TOTAL {
        let stream = if rng.below(8) == 0 { "stderr" } else { "stdout" };
        out.push_str(&format!("{} {stream} F {}\n", timestamp(i), app_line(&mut rng, i)));
        i += 1;
    }
    out.into_bytes()
}

fn docker_file() -> Vec<u8> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = String::with_capacity(TOTAL + 4096);
    let mut i = 0;
    while out.len() < TOTAL {
        let stream = if rng.below(8) == 0 { "stderr" } else { "stdout" };
        let log = serde_json::to_string(&(app_line(&mut rng, i) + "\n")).unwrap_or_default();
        out.push_str(&format!(
            "{{\"log\":{log},\"stream\":\"{stream}\",\"time\":\"{}\"}}\n",
            timestamp(i)
        ));
        i += 1;
    }
    out.into_bytes()
}

/// Parses `file` as the reader would and returns the number of entries.
fn parse_all(file: &[u8], format: Format) -> usize {
    let mut framer = Framer::new(0, MAX_LINE + 64);
    let mut parser = FileParser::new(format, MAX_LINE);
    let mut stats = ParseStats::default();
    let mut out: Vec<Entry> = Vec::with_capacity(4096);
    let mut entries = 0;
    for read in file.chunks(READ) {
        framer.buf_mut().extend_from_slice(read);
        if let Some(records) = framer.take_records(&mut stats) {
            black_box(parser.push(records, 0, &mut out, &mut stats));
            entries += out.len();
            out.clear();
        }
    }
    assert_eq!(stats, ParseStats::default(), "bench input must parse cleanly");
    entries
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.sample_size(20);
    for (name, file, format) in [
        ("cri", cri_file(), Format::Cri),
        ("docker", docker_file(), Format::Docker),
    ] {
        group.throughput(Throughput::Bytes(file.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_all(black_box(&file), format)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
