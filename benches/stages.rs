//! Throughput of pipeline stages on ~4 MiB of JSON app lines (the bench's `stages` scenario's kind
//! of log), in reads of 1,000 lines as the reader runs them: each stage alone, and the scenario's
//! whole pipeline (multiline, json with three values, a label, structured metadata, output).
//!
//! Run: `cargo bench -p shipper --bench stages`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shipper::labels::StreamLabels;
use shipper::parse::{Entry, StreamKind};
use shipper::process::config::StageConfig;
use shipper::process::pipeline::{FileStages, Pipeline, StageStats};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const LINES: usize = 20_000;

fn lines() -> Vec<Bytes> {
    (0..LINES)
        .map(|i| {
            let level = if i % 7 == 0 { "warn" } else { "info" };
            Bytes::from(format!(
                r#"{{"msg":"request {i} served in {} ms to client 10.0.{}.{} with status 200 and a few more words","level":"{level}","ctx":{{"trace_id":"{:016x}","span":{}}},"caller":"server/handler.go:{}"}}"#,
                i % 977,
                i % 256,
                i % 200,
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                i % 977,
                i % 400
            ))
        })
        .collect()
}

fn pipeline(yaml: &str) -> Arc<Pipeline> {
    let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).expect("stages");
    let keyed: Vec<(String, &StageConfig)> = stages.iter().enumerate().map(|(i, s)| (format!("s[{i}]"), s)).collect();
    Arc::new(
        Pipeline::new(&keyed, &Default::default(), 256 << 10, &Default::default())
            .expect("compiles")
            .expect("stages"),
    )
}

fn bench(c: &mut Criterion) {
    let input = lines();
    let bytes: usize = input.iter().map(Bytes::len).sum();
    let base = Arc::new(StreamLabels::new(&BTreeMap::from([(
        "job".to_string(),
        "bench".to_string(),
    )])));
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    let cases = [
        ("multiline", "[{multiline: {firstline: '^\\{'}}]"),
        ("json", "[{json: {expressions: {level: '', msg: '', trace: ctx.trace_id}}}]"),
        ("logfmt", "[{logfmt: {mapping: {level: ''}}}]"),
        ("regex", "[{regex: {expression: '\"level\":\"(?P<level>\\w+)\"'}}]"),
        ("json+labels", "[{json: {expressions: {level: ''}}}, {labels: {level: ''}}]"),
        ("secretfilter", "[{secretfilter: {}}]"),
        ("secretfilter-types", "[{secretfilter: {types: [aws, github, slack]}}]"),
        (
            "scenario",
            "[{multiline: {firstline: '^\\{', max_wait_time: 100ms}}, {json: {expressions: {level: '', msg: '', trace: ctx.trace_id}}}, \
             {labels: {level: ''}}, {structured_metadata: {trace_id: trace}}, {output: {source: msg}}]",
        ),
    ];
    for (name, yaml) in cases {
        let p = pipeline(yaml);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut st = FileStages::new(p.clone());
                let mut stats = StageStats::default();
                let mut offset = 0u64;
                for read in input.chunks(1_000) {
                    let mut entries: Vec<Entry> = read
                        .iter()
                        .map(|l| {
                            offset += l.len() as u64 + 1;
                            Entry {
                                ts_ns: 1_764_000_000_000_000_000,
                                line: l.clone(),
                                stream: StreamKind::Stdout,
                                offset,
                                extra: None,
                            }
                        })
                        .collect();
                    st.run(&base, &mut entries, Instant::now(), 0, &mut stats);
                    black_box(&entries);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
