//! What the receiver stored and saw: streams of entries and a record of every request.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::limits::Reason;
use crate::tally::Tally;

/// One stored log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEntry {
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The line as pushed.
    pub line: String,
    /// Structured metadata pairs, in the order pushed.
    pub structured_metadata: Vec<(String, String)>,
    /// When the receiver stored it (Unix nanoseconds): with `ts_ns` set to the write time, the
    /// difference is the write → ack latency.
    pub arrived_ns: i64,
    /// The tenant (`X-Scope-OrgID`) of the request that brought it.
    pub tenant: Option<String>,
}

/// What the receiver knows about one HTTP request it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the request head arrived.
    pub received_at: SystemTime,
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// Status answered; `None` when no answer was sent (a reset fault, a stall the client gave
    /// up on, or the receiver going down mid-request).
    pub status: Option<u16>,
    /// The `X-Scope-OrgID` header (the tenant).
    pub org_id: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Content-Encoding` header.
    pub content_encoding: Option<String>,
    /// Bytes of body read (as sent, before decompression).
    pub body_bytes: usize,
    /// Entries in the decoded request (0 when it did not decode).
    pub entries: usize,
    /// Entries of this request that were stored.
    pub stored: usize,
    /// The fault applied to this request, if any (`Debug` form).
    pub fault: Option<String>,
    /// The response body sent (error text for 4xx/5xx, empty for 204).
    pub response_body: String,
}

/// The receiver's state: what tests inspect and wait on.
#[derive(Debug, Default)]
pub struct State {
    streams: BTreeMap<String, Vec<ReceivedEntry>>,
    requests: Vec<RequestRecord>,
    discarded: BTreeMap<Reason, usize>,
    entry_count: usize,
    /// Newest timestamp stored per stream, for the out-of-order window.
    newest: HashMap<String, i64>,
    tls_failures: Vec<String>,
    /// Set for a tallying receiver: entries are counted here instead of stored.
    pub(crate) tally: Option<Tally>,
}

impl State {
    /// Stored entries per stream, keyed by the normalized label string
    /// (`{a="1", b="2"}`, names sorted), each in arrival order.
    pub fn streams(&self) -> &BTreeMap<String, Vec<ReceivedEntry>> {
        &self.streams
    }

    /// Entries of one stream; `labels` may be written in any order and spacing.
    pub fn stream(&self, labels: &str) -> Option<&[ReceivedEntry]> {
        let key = super::labels::normalize_labels(labels).ok()?;
        self.streams.get(&key).map(Vec::as_slice)
    }

    /// Total entries stored, duplicates included.
    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// Every stored line, stream by stream (streams in key order, entries in arrival order).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.streams.values().flat_map(|v| v.iter().map(|e| e.line.as_str()))
    }

    /// Every request received, in completion order.
    pub fn requests(&self) -> &[RequestRecord] {
        &self.requests
    }

    /// Entries refused per reason (like `loki_discarded_samples_total`).
    pub fn discarded(&self) -> &BTreeMap<Reason, usize> {
        &self.discarded
    }

    /// Entries refused for `reason`.
    pub fn discarded_for(&self, reason: Reason) -> usize {
        self.discarded.get(&reason).copied().unwrap_or(0)
    }

    /// Requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.requests.iter().filter(|r| r.status == Some(status)).count()
    }

    /// TLS handshakes that failed, in order, as the server saw them (e.g. `received fatal alert:
    /// UnknownCA` when the client does not trust the test CA, or `peer sent no certificates`
    /// when a client certificate is required). Only a TLS receiver
    /// ([`Receiver::start_tls`](super::Receiver::start_tls)) has any; a failed handshake never
    /// reaches HTTP, so it is not in [`requests`](Self::requests).
    pub fn tls_failures(&self) -> &[String] {
        &self.tls_failures
    }

    pub(crate) fn newest(&self, key: &str) -> Option<i64> {
        self.newest.get(key).copied()
    }

    /// Stores entries of one stream, in order (or counts them, for a tallying receiver).
    pub(crate) fn store(&mut self, key: &str, entries: Vec<ReceivedEntry>) {
        let Some(top) = entries.iter().map(|e| e.ts_ns).max() else {
            return;
        };
        match self.newest.get_mut(key) {
            Some(newest) => *newest = (*newest).max(top),
            None => {
                self.newest.insert(key.to_owned(), top);
            }
        }
        self.entry_count += entries.len();
        if let Some(tally) = &mut self.tally {
            tally.observe(key, entries.iter().map(|e| (e.line.as_str(), e.ts_ns, e.arrived_ns)));
            return;
        }
        match self.streams.get_mut(key) {
            Some(v) => v.extend(entries),
            None => {
                self.streams.insert(key.to_owned(), entries);
            }
        }
    }

    /// The running tally of a tallying receiver ([`Receiver::start_tally`](super::Receiver::start_tally)).
    pub fn tally(&self) -> Option<&Tally> {
        self.tally.as_ref()
    }

    pub(crate) fn discard(&mut self, reason: Reason, n: usize) {
        *self.discarded.entry(reason).or_default() += n;
    }

    pub(crate) fn record(&mut self, rec: RequestRecord) {
        self.requests.push(rec);
    }

    pub(crate) fn record_tls_failure(&mut self, error: String) {
        self.tls_failures.push(error);
    }

    pub(crate) fn clear(&mut self) {
        let tally = self.tally.take();
        *self = State::default();
        self.tally = tally;
    }
}
