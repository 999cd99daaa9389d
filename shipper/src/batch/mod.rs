//! batch: groups entries from the ring into per-stream batches, sent when they reach `batch_size` bytes
//! or their oldest entry has waited `batch_wait`.
//!
//! A batch remembers, per file, the highest commit offset it carries; the checkpoint advances a file only
//! when every batch up to that offset was acknowledged.

mod encode;
mod labels;

pub use encode::{encode, encode_snappy, metadata_fields};
pub use labels::{render as render_labels, StreamLabels};

use crate::checkpoint::Tracker;
use crate::metrics::Metrics;
use crate::ring::{Chunk, FileId};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Overhead counted per entry besides its line, so batches of tiny lines are bounded too.
const ENTRY_OVERHEAD: usize = 16;

/// The entries of one stream in a batch, in order.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub labels: Arc<str>,
    pub entries: Vec<(i64, Bytes)>,
    /// Structured metadata of every entry, already encoded (see `encode::metadata_fields`).
    pub metadata: Bytes,
}

/// A batch of entries on their way to Loki.
#[derive(Debug, Default)]
pub struct Batch {
    pub seq: u64,
    pub streams: Vec<StreamBatch>,
    index: HashMap<Arc<str>, usize>,
    /// Bytes counted against `batch_size`: line bytes plus a small per-entry overhead.
    pub size: usize,
    pub entries: usize,
    pub line_bytes: usize,
    /// Highest commit offset per file in this batch.
    pub offsets: Vec<(FileId, u64)>,
    oldest: Option<Instant>,
}

impl Batch {
    pub fn new(seq: u64) -> Self {
        Batch {
            seq,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0 && self.offsets.is_empty()
    }

    /// Adds one chunk; its entries keep their order within their stream.
    pub fn add(&mut self, chunk: Chunk) {
        self.oldest.get_or_insert_with(Instant::now);
        for e in chunk.entries {
            let labels = chunk.labels.for_kind(e.stream);
            let i = match self.index.get(labels) {
                Some(&i) => i,
                None => {
                    self.streams.push(StreamBatch {
                        labels: labels.clone(),
                        entries: Vec::new(),
                        metadata: chunk.labels.metadata().clone(),
                    });
                    self.index.insert(labels.clone(), self.streams.len() - 1);
                    self.streams.len() - 1
                }
            };
            self.size += e.line.len() + ENTRY_OVERHEAD;
            self.line_bytes += e.line.len();
            self.entries += 1;
            self.streams[i].entries.push((e.ts_ns, e.line));
        }
        match self.offsets.iter_mut().find(|(f, _)| *f == chunk.file) {
            Some((_, off)) => *off = (*off).max(chunk.commit_offset),
            None => self.offsets.push((chunk.file, chunk.commit_offset)),
        }
    }

    /// Splits the entries in two halves of about equal size (for a 413 answer). Offsets stay with the
    /// caller, who acknowledges the original batch once both halves are stored.
    pub fn split_entries(&self) -> Option<(Vec<StreamBatch>, Vec<StreamBatch>)> {
        split_streams(&self.streams)
    }

    fn age(&self) -> Option<Duration> {
        self.oldest.map(|t| t.elapsed())
    }
}

/// Splits streams in two halves by entry count; None when there is only one entry.
pub fn split_streams(streams: &[StreamBatch]) -> Option<(Vec<StreamBatch>, Vec<StreamBatch>)> {
    let total: usize = streams.iter().map(|s| s.entries.len()).sum();
    if total < 2 {
        return None;
    }
    let mut left = Vec::new();
    let mut right = Vec::new();
    let mut seen = 0;
    for s in streams {
        let n = s.entries.len();
        let take = (total / 2).saturating_sub(seen).min(n);
        if take > 0 {
            left.push(StreamBatch {
                labels: s.labels.clone(),
                entries: s.entries[..take].to_vec(),
                metadata: s.metadata.clone(),
            });
        }
        if take < n {
            right.push(StreamBatch {
                labels: s.labels.clone(),
                entries: s.entries[take..].to_vec(),
                metadata: s.metadata.clone(),
            });
        }
        seen += n;
    }
    Some((left, right))
}

/// A batch and its compressed body, ready to push.
pub struct ReadyBatch {
    pub batch: Batch,
    pub body: Bytes,
}

pub struct BatcherConfig {
    pub batch_size: usize,
    pub batch_wait: Duration,
}

/// The batcher thread: ring → batches → encoded bodies → push queue. Returns when the ring is closed
/// (all readers gone), after flushing what it holds. Blocks on a full push queue (backpressure).
pub fn run_batcher(
    rx: Receiver<Chunk>,
    tx: tokio::sync::mpsc::Sender<ReadyBatch>,
    cfg: BatcherConfig,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
) {
    let mut seq = 0u64;
    let mut batch = Batch::new(seq);
    loop {
        let wait = match batch.age() {
            Some(age) => cfg.batch_wait.saturating_sub(age),
            None => Duration::from_secs(3600),
        };
        let closed = match rx.recv_timeout(wait) {
            Ok(chunk) => {
                batch.add(chunk);
                metrics.ring_chunks.set(rx.len() as i64);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = batch.size >= cfg.batch_size || batch.age().is_some_and(|a| a >= cfg.batch_wait);
        if (due || closed) && !batch.is_empty() {
            seq += 1;
            let full = std::mem::replace(&mut batch, Batch::new(seq));
            tracker.register(full.seq, &full.offsets);
            let body = encode_snappy(&full.streams);
            if tx.blocking_send(ReadyBatch { batch: full, body }).is_err() {
                tracing::warn!("push side stopped; the batcher stops too (unsent lines are read again after restart)");
                return;
            }
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Entry, StreamKind};
    use std::collections::BTreeMap;

    fn chunk(file: FileId, lines: &[&str], kind: StreamKind, off: u64) -> Chunk {
        let mut l = BTreeMap::new();
        l.insert("filename".to_string(), format!("/f{file}"));
        Chunk {
            file,
            labels: Arc::new(StreamLabels::new(&l)),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, s)| Entry {
                    ts_ns: i as i64,
                    line: Bytes::copy_from_slice(s.as_bytes()),
                    stream: kind,
                })
                .collect(),
            commit_offset: off,
        }
    }

    #[test]
    fn groups_by_stream_and_tracks_offsets() {
        let mut b = Batch::new(1);
        b.add(chunk(1, &["a", "b"], StreamKind::Stdout, 10));
        b.add(chunk(1, &["c"], StreamKind::Stderr, 20));
        b.add(chunk(2, &["d"], StreamKind::Stdout, 5));
        assert_eq!(b.streams.len(), 3);
        assert_eq!(b.entries, 4);
        assert_eq!(b.offsets, vec![(1, 20), (2, 5)]);
        let (l, r) = b.split_entries().unwrap();
        let n = |v: &Vec<StreamBatch>| v.iter().map(|s| s.entries.len()).sum::<usize>();
        assert_eq!((n(&l), n(&r)), (2, 2));
        assert_eq!(&*l[0].labels, &*b.streams[0].labels);
    }
}
