//! Tagged lines: every line written by a test names its file and sequence number, so what
//! arrives at the receiver can be accounted for exactly (see [`Account`](crate::Account)).
//!
//! A tagged line is `f=<file id, 4+ digits> s=<seq, 10+ digits> <payload>`, for example
//! `f=0007 s=0000000123 level=info caller=server.go:88 msg="request served" …`. The payload is
//! deterministic in (file id, seq) and looks like real application output: logfmt, JSON,
//! access-log lines and prose, with an occasional non-ASCII word.

/// A tagged line whose payload is exactly `payload_len` bytes (the line is the tag, a space
/// and the payload; without payload, just the tag).
pub fn tag_line(file_id: u32, seq: u64, payload_len: usize) -> String {
    let mut line = format!("f={file_id:04} s={seq:010}");
    if payload_len > 0 {
        line.push(' ');
        line.push_str(&payload(file_id, seq, payload_len));
    }
    line
}

/// Reads the (file id, seq) tag at the start of `line`; `None` if it has none.
pub fn parse_tag(line: &str) -> Option<(u32, u64)> {
    let rest = line.strip_prefix("f=")?;
    let (file, rest) = rest.split_once(" s=")?;
    let end = rest.find(' ').unwrap_or(rest.len());
    let seq = &rest[..end];
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(file) || !digits(seq) {
        return None;
    }
    Some((file.parse().ok()?, seq.parse().ok()?))
}

/// A length in `min..=max` that varies deterministically with `seq`, for payloads of
/// realistic variety: `tag_line(f, s, varied_len(s, 20, 300))`.
pub fn varied_len(seq: u64, min: usize, max: usize) -> usize {
    if max <= min {
        return min;
    }
    min + (mix(seq ^ 0x5eed) % (max - min + 1) as u64) as usize
}

/// A deterministic payload of exactly `len` bytes (valid UTF-8, no newline).
pub fn payload(file_id: u32, seq: u64, len: usize) -> String {
    let mut rng = Rng(mix((u64::from(file_id) << 40) ^ seq));
    let mut s = match rng.below(4) {
        0 => format!(
            "level={} caller={}:{} msg=\"{}\" request_id={:08x} duration_ms={}",
            rng.pick(LEVELS),
            rng.pick(FILES),
            rng.below(900) + 10,
            rng.pick(MESSAGES),
            rng.next() as u32,
            rng.below(2000)
        ),
        1 => format!(
            "{{\"level\":\"{}\",\"msg\":\"{}\",\"user\":\"{}\",\"attempt\":{},\"ok\":{}}}",
            rng.pick(LEVELS),
            rng.pick(MESSAGES),
            rng.pick(USERS),
            rng.below(5) + 1,
            rng.below(2) == 0
        ),
        2 => format!(
            "10.{}.{}.{} - {} \"{} /api/v1/{}/{} HTTP/1.1\" {} {} \"{}\"",
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.pick(USERS),
            rng.pick(&["GET", "POST", "PUT", "DELETE"]),
            rng.pick(&["orders", "items", "users", "carts"]),
            rng.below(100_000),
            rng.pick(&["200", "201", "204", "404", "500"]),
            rng.below(50_000),
            rng.pick(&["curl/8.5.0", "Go-http-client/1.1", "Mozilla/5.0"])
        ),
        _ => String::from(rng.pick(MESSAGES)),
    };
    while s.len() < len {
        s.push(' ');
        s.push_str(if rng.below(16) == 0 {
            rng.pick(UNICODE)
        } else {
            rng.pick(WORDS)
        });
    }
    let mut cut = len;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    while s.len() < len {
        s.push('.');
    }
    s
}

const LEVELS: &[&str] = &["info", "info", "info", "debug", "warn", "error"];
const FILES: &[&str] = &["server.go", "handler.go", "db.go", "cache.go", "main.go"];
const USERS: &[&str] = &["alice", "bob", "carol", "dave", "-"];
const MESSAGES: &[&str] = &[
    "request served",
    "cache miss",
    "connection pool exhausted, waiting",
    "retrying upstream call",
    "user logged in",
    "slow query detected",
    "config reloaded",
];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "key=value",
    "id=42",
    "latency=3ms",
    "{\"k\":1}",
    "path=/var/log",
    "quote\"d",
    "back\\slash",
];
const UNICODE: &[&str] = &["naïve", "Grüße", "日本語", "café", "→", "🦀"];

/// splitmix64: a fast, well-mixed hash of a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trips_with_exact_length() {
        for seq in [0, 1, 123, 9_999_999_999, 12_345_678_901] {
            for len in [0, 1, 5, 40, 333, 20_000] {
                let line = tag_line(7, seq, len);
                assert_eq!(parse_tag(&line), Some((7, seq)), "{line}");
                let payload_len = line.splitn(3, ' ').nth(2).map_or(0, str::len);
                assert_eq!(payload_len, len);
                assert!(!line.contains('\n'));
            }
        }
        assert!(tag_line(7, 123, 10).starts_with("f=0007 s=0000000123 "));
        assert_eq!(tag_line(12345, 1, 0), "f=12345 s=0000000001");
    }

    #[test]
    fn payloads_are_deterministic_and_varied() {
        assert_eq!(payload(1, 2, 100), payload(1, 2, 100));
        let distinct: std::collections::HashSet<_> = (0..50).map(|s| payload(1, s, 60)).collect();
        assert!(distinct.len() > 40);
        let lens: std::collections::HashSet<_> = (0..50).map(|s| varied_len(s, 10, 200)).collect();
        assert!(lens.len() > 20 && lens.iter().all(|l| (10..=200).contains(l)));
    }

    #[test]
    fn parse_tag_rejects_other_lines() {
        for bad in ["", "hello", "f=1", "f= s=1", "f=1 s=", "f=x s=1", "s=1 f=1", "f=1 s=2x"] {
            assert_eq!(parse_tag(bad), None, "{bad}");
        }
        assert_eq!(parse_tag("f=1 s=2"), Some((1, 2)));
    }
}
