//! Shared by the benches: a deterministic generator of realistic application log lines, so every
//! run works on the same bytes.

#![allow(dead_code)]

use bytes::Bytes;
use shipper::batch::{BatchEntry, StreamBatch};
use std::sync::Arc;

/// Deterministic xorshift so every run parses the same bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One application log line: a mix of plain text, logfmt and JSON (whose quotes docker escapes),
/// mostly 60–250 bytes, as seen on a typical node.
pub fn app_line(rng: &mut Rng, i: usize) -> String {
    const WORDS: [&str; 12] = [
        "request",
        "completed",
        "user",
        "cache",
        "miss",
        "upstream",
        "timeout",
        "retrying",
        "connection",
        "established",
        "GET",
        "/api/v1/items",
    ];
    let words: Vec<&str> = (0..3 + rng.below(20)).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let text = words.join(" ");
    match rng.below(10) {
        0..=4 => format!(
            "I1124 10:00:00.{:06} {:>5} server.go:{}] {text}",
            i % 1_000_000,
            i % 99_991,
            rng.below(900)
        ),
        5..=7 => format!(
            "level=info ts=2026-11-24T10:00:00Z caller=handler.go:{} msg=\"{text}\" duration_ms={}",
            rng.below(500),
            rng.below(10_000)
        ),
        _ => format!(
            "{{\"level\":\"info\",\"ts\":\"2026-11-24T10:00:00.{:09}Z\",\"msg\":\"{text}\",\"trace_id\":\"{:016x}\"}}",
            i % 1_000_000_000,
            rng.next()
        ),
    }
}

/// Line bytes in the batch: the default `batch_size`.
pub const BATCH: usize = 1 << 20;

/// Four streams (two pods, stdout and stderr) sharing `BATCH` line bytes, stdout getting most lines;
/// timestamps advance by a few microseconds per line, as on a busy node.
pub fn push_batch() -> (Vec<StreamBatch>, usize) {
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
