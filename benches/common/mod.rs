//! Shared by the benches: a deterministic generator of realistic application log lines, so every
//! run works on the same bytes.

#![allow(dead_code)]

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
