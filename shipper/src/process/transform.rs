//! Stages that rewrite or thin the line: `pack` (labels and line into one JSON line),
//! `decolorize` (ANSI colour codes out), `sampling` (keep a share of the lines), as Promtail's
//! stages of those names do.

use super::{LabelOp, Line};
use crate::labels::StreamLabels;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of `pack`: `{"app":"api","_entry":"the line"}` becomes the line, the packed labels
/// leave the stream (so fewer streams), and LogQL's `| unpack` restores them at query time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PackConfig {
    /// Labels (or extracted values) put into the JSON; labels among them are removed.
    pub labels: Vec<String>,
    /// The line's timestamp becomes the time it was packed (default true, as Promtail: lines of
    /// several streams become one stream, whose entries Loki wants in order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_timestamp: Option<bool>,
}

/// Settings of `sampling`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// The share of lines kept, 0 to 1 (`0.1`: one line in ten, at random).
    pub rate: f64,
    /// The `reason` of `shipper_pipeline_dropped_lines_total` (default `sampling_stage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

/// `decolorize` has no settings (`- decolorize: {}`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecolorizeConfig {}

pub struct Pack {
    names: Vec<String>,
    ingest_timestamp: bool,
}

impl Pack {
    pub fn new(c: &PackConfig, key: &str) -> Result<Pack, String> {
        if c.labels.is_empty() {
            return Err(format!("{key}.labels: name the labels to pack into the line"));
        }
        let mut names = c.labels.clone();
        names.sort();
        names.dedup();
        Ok(Pack {
            names,
            ingest_timestamp: c.ingest_timestamp.unwrap_or(true),
        })
    }

    /// Packs the line: each named value found (extracted first, else the label), sorted by name,
    /// then `_entry`. Labels packed are removed from the line's stream.
    pub fn apply(&self, line: &mut Line, base: Option<&StreamLabels>, now_ns: i64) {
        let mut out = String::with_capacity(line.line.len() + 32 * self.names.len() + 12);
        out.push('{');
        let mut packed_labels = Vec::new();
        for name in &self.names {
            let value = match line.extracted.get(name) {
                Some(v) => Some(v),
                None => line.label(base, name),
            };
            let Some(value) = value else { continue };
            push_json_str(&mut out, name);
            out.push(':');
            push_json_str(&mut out, value);
            out.push(',');
            if line.label(base, name).is_some() {
                packed_labels.push(name.clone());
            }
        }
        out.push_str("\"_entry\":");
        push_json_str(&mut out, line.text());
        out.push('}');
        line.line = Bytes::from(out);
        if !packed_labels.is_empty() {
            line.changes().labels.push(LabelOp::Drop(Arc::from(packed_labels)));
        }
        if self.ingest_timestamp {
            line.ts_ns = now_ns;
        }
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // A string always serializes.
    if let Ok(j) = serde_json::to_string(s) {
        out.push_str(&j);
    }
}

/// `sampling`: a line is kept when a random draw falls under the rate.
pub struct Sampling {
    /// Kept when the draw (53 random bits) is below this.
    below: u64,
    pub reason: String,
}

impl Sampling {
    pub fn new(c: &SamplingConfig, key: &str) -> Result<Sampling, String> {
        if !(0.0..=1.0).contains(&c.rate) {
            return Err(format!("{key}.rate: {} is not a share of lines: give 0 to 1", c.rate));
        }
        Ok(Sampling {
            below: (c.rate * (1u64 << 53) as f64) as u64,
            reason: c
                .drop_counter_reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "sampling_stage".into()),
        })
    }

    /// Whether to keep a line, drawing from `rng` (xorshift64*, per file).
    pub fn keep(&self, rng: &mut u64) -> bool {
        let mut x = *rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) < self.below
    }
}

/// The starting state of a file's sampling draws: random, and never 0 (xorshift would stay at 0).
pub fn draw_state() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
}

/// The line without ANSI escape sequences (colours, cursor moves, titles); `None` when it has
/// none. Removed: CSI sequences (`ESC [` … final byte, and the one-byte CSI U+009B), OSC
/// sequences (`ESC ]` … BEL or `ESC \`), and other two-byte `ESC x` escapes.
pub fn decolorize(line: &str) -> Option<String> {
    let b = line.as_bytes();
    const ESC: u8 = 0x1b;
    let csi1 = |i: usize| b.get(i) == Some(&0xc2) && b.get(i + 1) == Some(&0x9b);
    if !b.iter().enumerate().any(|(i, &c)| c == ESC || csi1(i)) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let csi_at = match b[i] {
            ESC if b.get(i + 1) == Some(&b'[') => i + 2,
            _ if csi1(i) => i + 2,
            ESC if b.get(i + 1) == Some(&b']') => {
                // OSC: up to BEL or ESC \ (or the end of the line).
                i += 2;
                while i < b.len() && b[i] != 0x07 && !(b[i] == ESC && b.get(i + 1) == Some(&b'\\')) {
                    i += 1;
                }
                i += if b.get(i) == Some(&ESC) { 2 } else { 1 };
                continue;
            }
            ESC => {
                // ESC x, or ESC with intermediates (0x20-0x2f) then one more byte: `ESC ( B`.
                i += 1;
                while b.get(i).is_some_and(|c| (0x20..=0x2f).contains(c)) {
                    i += 1;
                }
                if b.get(i).is_some_and(|c| (0x30..=0x7e).contains(c)) {
                    i += 1;
                }
                continue;
            }
            c => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        // CSI: parameters and intermediates (0x20-0x3f), then a final byte (0x40-0x7e). Anything
        // else ends it unfinished and is kept.
        i = csi_at;
        while b.get(i).is_some_and(|c| (0x20..=0x3f).contains(c)) {
            i += 1;
        }
        if b.get(i).is_some_and(|c| (0x40..=0x7e).contains(c)) {
            i += 1;
        }
    }
    // Only whole ASCII sequences were removed, so the rest is still UTF-8.
    Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
