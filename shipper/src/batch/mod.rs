//! batch: groups entries from the ring into per-stream batches, sent when they reach `batch_size` bytes
//! or their oldest entry has waited `batch_wait`.
//!
//! A batch remembers, per file, the highest commit offset it carries; the checkpoint advances a file only
//! when every batch up to that offset was acknowledged.

mod encode;

pub use encode::{encode, encode_snappy, BodyEncoder};

pub use crate::labels::StreamLabels;

use crate::checkpoint::Tracker;
use crate::metrics::Metrics;
use crate::parse::Entry;
use crate::process::routes::goes_to;
use crate::ring::{Chunk, FileId, RingReceiver};
use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Overhead counted per entry besides its line, so batches of tiny lines are bounded too.
const ENTRY_OVERHEAD: usize = 16;

/// One entry of a stream: timestamp, line, and its encoded structured metadata (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub ts_ns: i64,
    pub line: Bytes,
    pub metadata: Bytes,
}

/// The entries of one stream in a batch, in order.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub labels: Arc<str>,
    pub entries: Vec<BatchEntry>,
}

/// A batch of entries on their way to one Loki endpoint, for one tenant.
#[derive(Debug, Default)]
pub struct Batch {
    pub seq: u64,
    /// `X-Scope-OrgID` set by a `tenant` stage (None: the client's `tenant_id`).
    pub tenant: Option<Arc<str>>,
    pub streams: Vec<StreamBatch>,
    /// Stream labels → their place in `streams` (looked up per entry: a fast hasher, not SipHash).
    index: crate::IdMap<Arc<str>, usize>,
    /// Bytes counted against `batch_size`: line bytes plus a small per-entry overhead.
    pub size: usize,
    pub entries: usize,
    pub line_bytes: usize,
    /// The files with lines in this batch (the checkpoint is told when it is acknowledged).
    pub files: Vec<FileId>,
    oldest: Option<Instant>,
}

impl Batch {
    pub fn new(seq: u64, tenant: Option<Arc<str>>) -> Self {
        Batch {
            seq,
            tenant,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds one entry of `file`, labelled `labels` unless a stage gave it its own. True when the
    /// batch had no line of `file` before.
    pub fn push(&mut self, file: FileId, file_labels: &StreamLabels, e: Entry) -> bool {
        self.oldest.get_or_insert_with(Instant::now);
        let (own_labels, own_metadata) = match e.extra {
            Some(x) => (x.labels, x.metadata),
            None => (None, None),
        };
        let labels = own_labels.as_ref().unwrap_or_else(|| file_labels.for_kind(e.stream));
        let metadata = own_metadata.unwrap_or_else(|| file_labels.metadata().clone());
        let i = match self.index.get(labels) {
            Some(&i) => i,
            None => {
                self.streams.push(StreamBatch {
                    labels: labels.clone(),
                    entries: Vec::new(),
                });
                self.index.insert(labels.clone(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.size += e.line.len() + ENTRY_OVERHEAD;
        self.line_bytes += e.line.len();
        self.entries += 1;
        self.streams[i].entries.push(BatchEntry {
            ts_ns: e.ts_ns,
            line: e.line,
            metadata,
        });
        let new_file = self.files.last() != Some(&file) && !self.files.contains(&file);
        if new_file {
            self.files.push(file);
        }
        new_file
    }

    /// Splits the entries in two halves of about equal size (for a 413 answer). The caller
    /// acknowledges the original batch once both halves are stored.
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
            });
        }
        if take < n {
            right.push(StreamBatch {
                labels: s.labels.clone(),
                entries: s.entries[take..].to_vec(),
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

/// One Loki endpoint as the batcher sees it: its batching and the queue to its pusher.
pub struct Endpoint {
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub tx: tokio::sync::mpsc::Sender<ReadyBatch>,
}

/// Hands the batcher new endpoints (a reload that changed the clients) and wakes it.
pub struct EndpointSwap {
    pub tx: crossbeam_channel::Sender<Vec<Endpoint>>,
    pub waker: crate::ring::RingWaker,
}

impl EndpointSwap {
    /// False: the batcher has stopped.
    pub fn send(&self, endpoints: Vec<Endpoint>) -> bool {
        let sent = self.tx.send(endpoints).is_ok();
        self.waker.wake();
        sent
    }
}

/// Which open batches `Lanes::send_due` sends.
#[derive(Clone, Copy)]
enum Due {
    /// Those at `batch_size`.
    Full,
    /// Those at `batch_size` or whose oldest line waited `batch_wait`.
    FullOrOld,
    /// Every one (the ring closed, the endpoints change).
    All,
}

/// The batches being filled for one endpoint, one per tenant.
struct Lanes {
    ep: Endpoint,
    open: Vec<Batch>,
    encoder: BodyEncoder,
}

/// The batcher thread: ring → batches (per endpoint and tenant) → encoded bodies → push queues.
/// Returns when the ring is closed (all readers gone), after flushing what it holds. Blocks on a
/// full push queue (backpressure).
///
/// An entry goes to the endpoints its chunk or its own `Extra::clients` name (bit i: the i-th of
/// `endpoints`), or to every endpoint when neither does. A file's lines may sit in several open
/// batches at once (one per endpoint and tenant); the checkpoint learns which, chunk by chunk and
/// in file order, so an offset is committed only when every batch holding a line before it was
/// acknowledged.
///
/// A config reload that changes the clients sends new endpoints on `swap`: the open batches go to
/// the old endpoints, whose pushers finish their queues and end, and new lines go to the new ones.
pub fn run_batcher(
    rx: RingReceiver,
    endpoints: Vec<Endpoint>,
    swap: Receiver<Vec<Endpoint>>,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
) {
    let mut lanes: Vec<Lanes> = endpoints.into_iter().map(Lanes::new).collect();
    let mut seq = 0u64;
    let mut touched: Vec<u64> = Vec::new();
    loop {
        // Every chunk there is, then one wait for the bell: the reader rings once per read round,
        // and wakes us only when we want what it sent (see `wanted`).
        rx.begin_take();
        let closed = loop {
            match rx.try_recv() {
                Ok(bundle) => {
                    for chunk in bundle {
                        add_chunk(chunk, &mut lanes, &mut seq, &mut touched, &tracker);
                        for lane in &mut lanes {
                            // Only full batches here: one whose batch_wait is over takes what
                            // else the ring holds first (those lines waited in the ring).
                            if !lane.send_due(Due::Full) {
                                return;
                            }
                        }
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        metrics.ring_chunks.set(rx.len() as i64);
        for lane in &mut lanes {
            if !lane.send_due(if closed { Due::All } else { Due::FullOrOld }) {
                return;
            }
        }
        if closed {
            return;
        }
        // New endpoints from a reload (rung through the ring's waker).
        while let Ok(endpoints) = swap.try_recv() {
            for lane in &mut lanes {
                if !lane.send_due(Due::All) {
                    return;
                }
            }
            lanes = endpoints.into_iter().map(Lanes::new).collect();
        }
        let wait = lanes
            .iter()
            .flat_map(|l| {
                l.open
                    .iter()
                    .filter_map(|b| b.age().map(|a| l.ep.batch_wait.saturating_sub(a)))
            })
            .min()
            .unwrap_or(Duration::from_secs(3600));
        rx.wait_for(wanted(&lanes), wait);
    }
}

/// Line bytes that make an open batch due (`batch_size`), the fewest over the open batches; 1 (any
/// chunk wakes the batcher) when an endpoint has no open batch, so its next line's batch starts
/// its `batch_wait` when the line comes, not when another endpoint's batch is due. (A line of a
/// tenant without an open batch, set by a `tenant` stage, may wait in the ring until its
/// endpoint's open batch is due: at most `batch_wait` longer.)
fn wanted(lanes: &[Lanes]) -> usize {
    let mut least = usize::MAX;
    for l in lanes {
        let most = l.open.iter().map(|b| b.size).max();
        let Some(most) = most else { return 1 };
        least = least.min(l.ep.batch_size.saturating_sub(most));
    }
    least.max(1)
}

/// Puts a chunk's entries into the open batches of the endpoints each goes to, and tells the
/// checkpoint which batches hold the file's lines up to the chunk's commit offset.
fn add_chunk(chunk: Chunk, lanes: &mut [Lanes], seq: &mut u64, touched: &mut Vec<u64>, tracker: &Tracker) {
    touched.clear();
    let Chunk {
        file,
        labels,
        mut entries,
        commit_offset: offset,
        clients,
    } = chunk;
    let n = lanes.len();
    for (i, lane) in lanes.iter_mut().enumerate() {
        let goes = |e: &Entry| goes_to(e.extra.as_ref().and_then(|x| x.clients).or(clients), i);
        // The last endpoint takes the entries, the others a copy (the lines are shared).
        let entries: Vec<Entry> = if i + 1 == n {
            std::mem::take(&mut entries).into_iter().filter(goes).collect()
        } else {
            entries.iter().filter(|e| goes(e)).cloned().collect()
        };
        for e in entries {
            let tenant = e.extra.as_ref().and_then(|x| x.tenant.clone());
            let b = match lane.open.iter().position(|b| b.tenant == tenant) {
                Some(b) => &mut lane.open[b],
                None => {
                    *seq += 1;
                    lane.open.push(Batch::new(*seq, tenant));
                    lane.open.last_mut().expect("just pushed")
                }
            };
            b.push(file, &labels, e);
            if touched.last() != Some(&b.seq) && !touched.contains(&b.seq) {
                touched.push(b.seq);
            }
        }
    }
    tracker.add(file, offset, touched);
}

impl Lanes {
    fn new(ep: Endpoint) -> Lanes {
        Lanes {
            ep,
            open: Vec::new(),
            encoder: BodyEncoder::default(),
        }
    }

    /// Sends the batches that are due as `due` says. False when the push side stopped.
    fn send_due(&mut self, due: Due) -> bool {
        let (wait, size) = (self.ep.batch_wait, self.ep.batch_size);
        let mut i = 0;
        while i < self.open.len() {
            let b = &self.open[i];
            let goes = match due {
                Due::Full => b.size >= size,
                Due::FullOrOld => b.size >= size || b.age().is_some_and(|a| a >= wait),
                Due::All => true,
            };
            if !goes {
                i += 1;
                continue;
            }
            let full = self.open.swap_remove(i);
            let body = self.encoder.body(&full.streams);
            if self.ep.tx.blocking_send(ReadyBatch { batch: full, body }).is_err() {
                tracing::warn!("push side stopped; the batcher stops too (unsent lines are read again after restart)");
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FileIdentity;
    use crate::labels::metadata_fields;
    use crate::parse::{Extra, StreamKind};
    use std::collections::BTreeMap;

    fn entry(line: &str, kind: StreamKind, tenant: Option<&str>) -> Entry {
        Entry {
            ts_ns: 1,
            line: Bytes::copy_from_slice(line.as_bytes()),
            stream: kind,
            offset: 0,
            extra: tenant.map(|t| {
                Box::new(Extra {
                    tenant: Some(Arc::from(t)),
                    ..Default::default()
                })
            }),
        }
    }

    fn chunk(file: FileId, entries: Vec<Entry>, off: u64) -> Chunk {
        let mut l = BTreeMap::new();
        l.insert("filename".to_string(), format!("/f{file}"));
        Chunk {
            file,
            labels: Arc::new(StreamLabels::new(&l).with_metadata(&[("pod_uid".into(), "u1".into())])),
            entries,
            commit_offset: off,
            clients: None,
        }
    }

    #[test]
    fn groups_by_stream_with_own_labels_and_metadata() {
        let mut b = Batch::new(1, None);
        let c = chunk(1, Vec::new(), 0);
        assert!(b.push(1, &c.labels, entry("a", StreamKind::Stdout, None)));
        assert!(!b.push(1, &c.labels, entry("b", StreamKind::Stderr, None)));
        let mut own = entry("c", StreamKind::Stdout, None);
        own.extra = Some(Box::new(Extra {
            labels: Some(Arc::from(r#"{level="warn"}"#)),
            metadata: Some(metadata_fields(&[("trace".into(), "t1".into())])),
            tenant: None,
            clients: None,
        }));
        b.push(1, &c.labels, own);
        assert!(b.push(2, &c.labels, entry("d", StreamKind::Stdout, None)));
        assert_eq!(b.streams.len(), 3);
        assert_eq!((b.entries, b.files.clone()), (4, vec![1, 2]));
        assert_eq!(&*b.streams[2].labels, r#"{level="warn"}"#);
        assert_eq!(b.streams[0].entries[0].metadata, c.labels.metadata().clone());
        assert_eq!(
            b.streams[2].entries[0].metadata,
            metadata_fields(&[("trace".into(), "t1".into())])
        );
        let (l, r) = b.split_entries().unwrap();
        let n = |v: &Vec<StreamBatch>| v.iter().map(|s| s.entries.len()).sum::<usize>();
        assert_eq!((n(&l), n(&r)), (2, 2));
    }

    /// A tracker with file 1 open, and a batcher on `n` endpoints: its ring, its thread, and what
    /// each endpoint is sent.
    #[allow(clippy::type_complexity)]
    fn batcher(
        n: usize,
    ) -> (
        Arc<Tracker>,
        crate::ring::RingSender,
        std::thread::JoinHandle<()>,
        Vec<tokio::sync::mpsc::Receiver<ReadyBatch>>,
    ) {
        let tracker = Arc::new(Tracker::default());
        let ident = FileIdentity {
            path: "/f1".into(),
            dev: 1,
            ino: 1,
            fp_len: 0,
            fp: 0,
        };
        tracker.open(1, ident, 0);
        let (ring_tx, ring_rx) = crate::ring::ring(8);
        let mut rxs = Vec::new();
        let endpoints = (0..n)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::channel(16);
                rxs.push(rx);
                Endpoint {
                    batch_size: 1 << 20,
                    batch_wait: Duration::from_secs(60),
                    tx,
                }
            })
            .collect();
        let (t, m) = (tracker.clone(), Arc::new(Metrics::new()));
        let batcher = std::thread::spawn(move || run_batcher(ring_rx, endpoints, crossbeam_channel::never(), t, m));
        (tracker, ring_tx, batcher, rxs)
    }

    /// Woken for the bytes that make its fullest batch due; for any line while an endpoint has no
    /// open batch (that line's batch must start its `batch_wait` when the line comes).
    #[test]
    fn the_batcher_wants_what_makes_a_batch_due() {
        let ep = |batch_size| Endpoint {
            batch_size,
            batch_wait: Duration::from_secs(60),
            tx: tokio::sync::mpsc::channel(1).0,
        };
        let open = |size| Batch {
            size,
            ..Batch::new(1, None)
        };
        let mut lanes = vec![Lanes::new(ep(1_000)), Lanes::new(ep(500))];
        assert_eq!(wanted(&lanes), 1, "no open batch");
        lanes[0].open.push(open(300));
        assert_eq!(wanted(&lanes), 1, "an endpoint without an open batch");
        lanes[1].open.push(open(100));
        lanes[1].open.push(open(450));
        assert_eq!(wanted(&lanes), 50, "the fullest batch of the second endpoint");
        lanes[1].open[1].size = 600;
        assert_eq!(wanted(&lanes), 1, "a batch already due");
    }

    fn lines(b: &ReadyBatch) -> Vec<&str> {
        b.batch
            .streams
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| std::str::from_utf8(&e.line).unwrap())
            .collect()
    }

    /// Two endpoints, two tenants: every line reaches both endpoints, each tenant in its own batch,
    /// and the file's position moves only once every batch holding its lines is acknowledged.
    #[test]
    fn fans_out_per_endpoint_and_tenant_and_commits_after_all_acks() {
        let (tracker, ring_tx, batcher, mut rxs) = batcher(2);
        let send = |c: Chunk| assert!(ring_tx.send(vec![c]).is_ok(), "batcher runs");
        send(chunk(
            1,
            vec![
                entry("a1", StreamKind::Stdout, Some("a")),
                entry("b1", StreamKind::Stdout, Some("b")),
            ],
            100,
        ));
        send(chunk(1, vec![entry("b2", StreamKind::Stdout, Some("b"))], 200));
        send(chunk(1, Vec::new(), 250));
        send(chunk(1, vec![entry("x", StreamKind::Stdout, None)], 300));
        drop(ring_tx);
        batcher.join().unwrap();
        let mut got: Vec<Vec<ReadyBatch>> = rxs
            .iter_mut()
            .map(|rx| std::iter::from_fn(|| rx.try_recv().ok()).collect())
            .collect();
        for batches in &got {
            let mut by_tenant: Vec<(Option<&str>, Vec<&str>)> =
                batches.iter().map(|b| (b.batch.tenant.as_deref(), lines(b))).collect();
            by_tenant.sort();
            assert_eq!(
                by_tenant,
                vec![
                    (None, vec!["x"]),
                    (Some("a"), vec!["a1"]),
                    (Some("b"), vec!["b1", "b2"])
                ]
            );
        }
        assert_eq!(tracker.committed(1), Some((0, true)));
        // Acknowledge everything but endpoint 2's tenant-b batch: the position stays before read 2.
        let held = got[1]
            .iter()
            .position(|b| b.batch.tenant.as_deref() == Some("b"))
            .unwrap();
        let held = got[1].swap_remove(held);
        for b in got.iter().flatten() {
            tracker.ack(b.batch.seq, &b.batch.files);
        }
        assert_eq!(
            tracker.committed(1),
            Some((0, true)),
            "b1 (before 100) is not stored at endpoint 2"
        );
        tracker.ack(held.batch.seq, &held.batch.files);
        assert_eq!(tracker.committed(1), Some((300, false)));
    }

    /// Lines for endpoint 1 only (by their own mask or their chunk's) stay out of endpoint 0's
    /// batches; the position waits for the endpoints that hold lines before it, and no others.
    #[test]
    fn masks_keep_lines_from_other_endpoints_and_commit_after_theirs() {
        let (tracker, ring_tx, batcher, mut rxs) = batcher(2);
        let send = |c: Chunk| assert!(ring_tx.send(vec![c]).is_ok(), "batcher runs");
        let mut only1 = entry("only1", StreamKind::Stdout, None);
        only1.extra = Some(Box::new(Extra {
            clients: Some(0b10),
            ..Default::default()
        }));
        let mut to0 = entry("own0", StreamKind::Stdout, None);
        to0.extra = Some(Box::new(Extra {
            clients: Some(0b01),
            ..Default::default()
        }));
        send(chunk(1, vec![only1], 100));
        let mut target1 = chunk(1, vec![entry("target1", StreamKind::Stdout, None), to0], 200);
        target1.clients = Some(0b10);
        send(target1);
        drop(ring_tx);
        batcher.join().unwrap();
        let got: Vec<Vec<ReadyBatch>> = rxs
            .iter_mut()
            .map(|rx| std::iter::from_fn(|| rx.try_recv().ok()).collect())
            .collect();
        let sent: Vec<Vec<&str>> = got.iter().map(|bs| bs.iter().flat_map(lines).collect()).collect();
        assert_eq!(sent, vec![vec!["own0"], vec!["only1", "target1"]]);
        for b in &got[1] {
            tracker.ack(b.batch.seq, &b.batch.files);
        }
        assert_eq!(
            tracker.committed(1),
            Some((100, true)),
            "only1 (before 100) is stored; own0 (before 200) waits for endpoint 0"
        );
        for b in &got[0] {
            tracker.ack(b.batch.seq, &b.batch.files);
        }
        assert_eq!(tracker.committed(1), Some((200, false)));
    }
}
