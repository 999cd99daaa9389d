//! A Loki-compatible push receiver for end-to-end tests, with fault injection.
//!
//! [`Receiver`] listens on `127.0.0.1:<ephemeral port>` and speaks real HTTP/1.1 (hyper), decodes
//! real snappy + protobuf (and JSON, optionally gzip) pushes, validates them with Loki 3's rules
//! ([`Limits`]) and stores the entries per stream. Tests script misbehaviour ([`Fault`]s, down,
//! stalled, auth) and inspect what arrived ([`State`]).
//!
//! The API is synchronous: the receiver runs a single-threaded tokio runtime on a thread of its
//! own, so it serves plain `#[test]` functions that drive a real agent process. It can also be
//! used from inside a tokio runtime (`#[tokio::test]`): no method enters the caller's runtime;
//! [`Receiver::set_down`] and the `wait_*` methods block the calling thread, briefly or up to
//! their timeout, so call them from `spawn_blocking` if the caller's runtime must keep running.
//!
//! ```no_run
//! use std::time::Duration;
//! use shipper_testkit::{Fault, Receiver};
//!
//! let loki = Receiver::start();
//! loki.push_faults([Fault::status(503), Fault::rate_limited(1)]);
//! // ... run the agent with `--loki-url loki.url()` ...
//! assert!(loki.wait_for_entries(1000, Duration::from_secs(30)));
//! ```
//!
//! [`Receiver::start_tls`] starts the same receiver behind TLS, with a [`TestPki`] generated
//! for it (optionally requiring client certificates); its [`url`](Receiver::url) is
//! `https://localhost:<port>/loki/api/v1/push`.

mod decode;
mod fault;
pub mod labels;
mod limits;
mod server;
mod state;
mod tls;
mod validate;

use crate::net::{ServeFn, ServerThread};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::TlsAcceptor;

pub use fault::Fault;
pub use limits::{Limits, Reason};
pub use state::{ReceivedEntry, RequestRecord, State};
pub use tls::{TestPki, TlsOptions, SERVER_NAMES};

use crate::account::Account;
use crate::tally::Tally;
use server::Shared;

/// The path Loki serves pushes on.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// A running fake Loki. Dropping it closes the socket and stops its thread.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Set for a TLS receiver: the PKI and the acceptor built from it.
    tls: Option<(TestPki, TlsAcceptor)>,
    server: ServerThread,
}

impl Receiver {
    /// Starts a receiver with Loki 3 default limits on `127.0.0.1:0`.
    pub fn start() -> Receiver {
        Receiver::start_with(Limits::default())
    }

    /// Starts a receiver with the given limits on `127.0.0.1:0`.
    ///
    /// Panics if the runtime thread or the socket cannot be created: a test cannot go on
    /// without its Loki.
    pub fn start_with(limits: Limits) -> Receiver {
        Receiver::start_inner(limits, None)
    }

    /// Starts a receiver with Loki 3 default limits that speaks HTTPS on `127.0.0.1:0`, with a
    /// fresh [`TestPki`] ([`pki`](Self::pki)). Apart from the TLS handshake it behaves exactly
    /// like [`start`](Self::start): same routes, validation, faults, modes and state. A failed
    /// handshake closes that connection, is recorded in [`State::tls_failures`] (not in
    /// [`requests`](Self::requests)) and does not affect anything else.
    pub fn start_tls(tls: TlsOptions) -> Receiver {
        Receiver::start_tls_with(Limits::default(), tls)
    }

    /// [`start_tls`](Self::start_tls) with the given limits.
    pub fn start_tls_with(limits: Limits, tls: TlsOptions) -> Receiver {
        let pki = TestPki::generate();
        let acceptor = TlsAcceptor::from(pki.server_config(tls));
        Receiver::start_inner(limits, Some((pki, acceptor)))
    }

    /// Starts a receiver (Loki 3 default limits) that counts what it accepts in a [`Tally`]
    /// instead of storing it: for runs of millions of lines. [`streams`](Self::streams) stays
    /// empty; read [`tally_account`](Self::tally_account) and
    /// [`latencies_ns`](Self::latencies_ns) instead.
    pub fn start_tally(expected: impl IntoIterator<Item = (u32, u64)>, latency: bool) -> Receiver {
        let receiver = Receiver::start_inner(Limits::default(), None);
        receiver.shared.state().tally = Some(Tally::new(expected, latency));
        receiver
    }

    fn start_inner(limits: Limits, tls: Option<(TestPki, TlsAcceptor)>) -> Receiver {
        let shared = Arc::new(Shared::new(limits));
        let acceptor = tls.as_ref().map(|(_, acceptor)| acceptor.clone());
        let s = shared.clone();
        let serve: ServeFn = Box::new(move |listener, stop| {
            tokio::spawn(server::accept_loop(listener, s.clone(), acceptor.clone(), stop));
        });
        let server = ServerThread::start("receiver", serve);
        Receiver {
            shared,
            addr: server.addr,
            tls,
            server,
        }
    }

    /// The full push URL: `http://127.0.0.1:<port>/loki/api/v1/push`, or for a TLS receiver
    /// `https://localhost:<port>/loki/api/v1/push` (the name its certificate is for; the
    /// listener is on `127.0.0.1` all the same).
    pub fn url(&self) -> String {
        format!("{}{PUSH_PATH}", self.base_url())
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` for a TLS receiver (no trailing
    /// slash).
    pub fn base_url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// The certificates of a TLS receiver ([`start_tls`](Self::start_tls)); `None` for a plain one.
    pub fn pki(&self) -> Option<&TestPki> {
        self.tls.as_ref().map(|(pki, _)| pki)
    }

    /// TLS handshakes that failed so far (see [`State::tls_failures`]).
    pub fn tls_failures(&self) -> Vec<String> {
        self.with_state(|s| s.tls_failures().to_vec())
    }

    /// The listening address. It stays the same across [`set_down`](Self::set_down).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues faults; each push request consumes one, in order (see [`Fault`]).
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.control().faults.extend(faults);
    }

    /// The next `n` TLS handshakes fail: the server reads the ClientHello and answers a fatal
    /// `handshake_failure` alert. Only for a TLS receiver.
    pub fn break_handshakes(&self, n: usize) {
        self.shared.control().broken_handshakes += n;
    }

    /// Faults not consumed yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.control().faults.len()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.control().faults.clear();
    }

    /// `true`: close the listening socket (new connections are refused with RST) and every
    /// open connection, in-flight requests included, before returning. `false`: bind the same
    /// port again, retrying for up to 10 s while it is briefly unavailable. Idempotent.
    pub fn set_down(&self, down: bool) {
        self.server.set_down(down);
    }

    /// Whether the listener is down.
    pub fn is_down(&self) -> bool {
        self.server.is_down()
    }

    /// `true`: every push request hangs (before consuming a fault) until `set_stalled(false)`.
    /// Released requests are then handled normally — stored and answered — if their client
    /// is still connected; a client that timed out and closed its connection meanwhile has its
    /// request dropped unanswered and unstored (hyper notices the closed connection).
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    /// `Some(v)`: push requests whose `Authorization` header is not exactly `v` get 401 and
    /// store nothing. `None`: no auth.
    pub fn set_auth(&self, expected: Option<&str>) {
        self.shared.control().auth = expected.map(str::to_owned);
    }

    /// Replaces the limits for the following requests.
    pub fn set_limits(&self, limits: Limits) {
        self.shared.control().limits = limits;
    }

    /// A copy of the stored streams (see [`State::streams`]).
    pub fn streams(&self) -> BTreeMap<String, Vec<ReceivedEntry>> {
        self.shared.state().streams().clone()
    }

    /// A copy of one stream's entries; `labels` in any order (empty if unknown).
    pub fn stream(&self, labels: &str) -> Vec<ReceivedEntry> {
        self.with_state(|s| s.stream(labels).map(<[_]>::to_vec).unwrap_or_default())
    }

    /// Every stored line (streams in key order, entries in arrival order).
    pub fn lines(&self) -> Vec<String> {
        self.with_state(|s| s.lines().map(str::to_owned).collect())
    }

    /// Total stored entries, duplicates included.
    pub fn entry_count(&self) -> usize {
        self.shared.state().entry_count()
    }

    /// A copy of every request record, in completion order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.state().requests().to_vec()
    }

    /// Runs `f` on the state under its lock, without copying it. Keep `f` short (requests
    /// wait for the lock) and do not call other `Receiver` methods inside it (the lock is not
    /// reentrant).
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.state())
    }

    /// Waits until `pred` holds (checked now and after every change) or `timeout` passes;
    /// returns whether it holds. `pred` runs under the state lock, like
    /// [`with_state`](Self::with_state).
    pub fn wait_for(&self, mut pred: impl FnMut(&State) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if pred(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Waits until at least `n` entries are stored.
    pub fn wait_for_entries(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(|s| s.entry_count() >= n, timeout)
    }

    /// Waits until at least `n` requests completed (answered or dropped).
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(|s| s.requests().len() >= n, timeout)
    }

    /// Accounts the tagged lines stored so far (see [`Account`]), without copying the streams.
    pub fn account(&self, expected: impl IntoIterator<Item = (u32, u64)>) -> Account {
        self.with_state(|s| Account::from_streams(s.streams(), expected))
    }

    /// The account of a tallying receiver so far (None for a storing one).
    pub fn tally_account(&self) -> Option<Account> {
        self.with_state(|s| s.tally().map(|t| t.account().clone()))
    }

    /// Write → arrival latency of every entry a tallying receiver counted, if it keeps them.
    pub fn latencies_ns(&self) -> Vec<i64> {
        self.with_state(|s| s.tally().map(|t| t.latencies_ns().to_vec()).unwrap_or_default())
    }

    /// Forgets stored streams, request records, TLS failures, discard counters and the
    /// per-stream newest timestamps. Faults, modes and limits stay.
    pub fn clear(&self) {
        self.shared.state().clear();
        self.shared.changed.notify_all();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("down", &self.is_down())
            .field("entries", &self.entry_count())
            .finish_non_exhaustive()
    }
}
