//! push: sends batches to Loki in order, retrying what can succeed later, holding what Loki refuses
//! because of the agent's own settings, and dropping (counted, logged) only entries Loki refuses for
//! what they are; then acknowledges the batch's offsets to the checkpoint.
//!
//! Rules (see shared loki-push.md): 2xx → stored; 429, 5xx, network errors, timeouts → retry with
//! exponential backoff and jitter, honouring `Retry-After`; 413 → split the batch in halves; a 400
//! that names what is wrong with entries (too old, line too long…) → drop them, counted by reason.
//! Any other 4xx (401 no tenant or bad credentials, 403, 404 wrong URL…) is about the request, not
//! the entries, and is fixed by the operator: the batch is held and retried with the same backoff,
//! `shipper_push_blocked{reason}` says so and an ERROR a minute names what to check — nothing is
//! dropped (unless `client.drop_on_client_error`). After `max_retries` a batch is dropped, counted
//! and logged: never retried forever silently (`max_retries: 0` retries forever, visibly).

mod client;

pub use client::{HttpClient, Outcome};

use crate::batch::{encode_snappy, split_streams, ReadyBatch, StreamBatch};
use crate::checkpoint::Tracker;
use crate::config::BackoffConfig;
use crate::metrics::Metrics;
use bytes::Bytes;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The client a pusher posts with now: a reload that changes the clients puts the new one of the
/// same place (`client`, `clients[0]`...) here, so what the old pusher still holds — a batch Loki
/// refused with the old credentials, tenant or URL — is retried with the new one at once.
pub type ClientSlot = tokio::sync::watch::Receiver<Arc<HttpClient>>;

pub struct Pusher {
    pub client: ClientSlot,
    pub backoff: BackoffConfig,
    /// `client.drop_on_client_error`: drop a batch Loki refuses with a 4xx about the request
    /// instead of holding it.
    pub drop_on_client_error: bool,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
}

/// What became of a body after retries.
enum Sent {
    Stored,
    Dropped(&'static str),
    TooLarge,
}

/// Loki's 400 texts (as of 2.9/3.x) and the reason each maps to: entries Loki will never take.
const LOKI_400_REASONS: &[(&[&str], &str)] = &[
    (&["line_too_long", "line too long", "exceeds max line"], "line_too_long"),
    (
        &["greater_than_max_sample_age", "too old"],
        "greater_than_max_sample_age",
    ),
    (
        &["too_far_in_future", "too new", "too far in the future"],
        "too_far_in_future",
    ),
    (
        &["out_of_order", "out of order", "too_far_behind", "too far behind"],
        "out_of_order",
    ),
    (
        &["max_label_names_per_series", "maximum number of label"],
        "max_label_names_per_series",
    ),
    (&["label_name_too_long", "label name too long"], "label_name_too_long"),
    (
        &["label_value_too_long", "label value too long"],
        "label_value_too_long",
    ),
    (&["duplicate_label_names", "duplicate label"], "duplicate_label_names"),
    (&["missing_labels", "missing labels"], "missing_labels"),
    (
        &["disallowed_structured_metadata", "structured metadata"],
        "disallowed_structured_metadata",
    ),
    (
        &["invalid_labels", "invalid labels", "error parsing labels"],
        "invalid_labels",
    ),
    // The agent's own answer for a tenant a `tenant` stage took from a line.
    (&["(from a tenant stage)"], "invalid_tenant"),
];

/// Maps Loki's 400 message to its reason code (Loki's own texts, as of 2.9/3.x).
fn reason_of_400(body: &str) -> &'static str {
    let b = body.to_ascii_lowercase();
    LOKI_400_REASONS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| b.contains(n)))
        .map_or("bad_request", |(_, r)| r)
}

/// Why Loki refuses every push of the agent, whatever it holds (the `reason` of
/// `shipper_push_blocked` and of the retries it causes): 401, 403, 404, a 400 that names no entry,
/// any other 4xx but 413 and 429.
pub const BLOCKED_REASONS: [&str; 5] = ["unauthorized", "forbidden", "not_found", "bad_request", "rejected"];

/// Every `reason` of `shipper_dropped_entries_total`: Loki's 400 reasons, the blocked reasons
/// (dropped only with `client.drop_on_client_error`), a single entry too large, `max_retries`.
pub fn dropped_reasons() -> impl Iterator<Item = &'static str> {
    LOKI_400_REASONS
        .iter()
        .map(|(_, r)| *r)
        .chain(BLOCKED_REASONS)
        .chain(["too_large", "max_retries"])
}

/// Every `reason` of `shipper_push_retries_total`.
pub fn retry_reasons() -> impl Iterator<Item = &'static str> {
    ["429", "5xx", "network"].into_iter().chain(BLOCKED_REASONS)
}

/// A 4xx other than 413 and 429: entries Loki will never take (dropped), or a request it refuses
/// whatever it holds (held until the operator fixes it).
enum Refusal {
    Entries(&'static str),
    Request(&'static str),
}

fn refusal(code: u16, body: &str) -> Refusal {
    match code {
        400 => match reason_of_400(body) {
            "bad_request" => Refusal::Request("bad_request"),
            reason => Refusal::Entries(reason),
        },
        401 => Refusal::Request("unauthorized"),
        403 => Refusal::Request("forbidden"),
        404 => Refusal::Request("not_found"),
        _ => Refusal::Request("rejected"),
    }
}

/// What the operator should check when Loki refuses pushes for `reason`.
fn what_to_check(reason: &str) -> &'static str {
    match reason {
        "unauthorized" => "check client.tenant_id (a multi-tenant Loki answers `no org id` without one) and the credentials (client.basic_auth, client.bearer_token_file)",
        "forbidden" => "the credentials are valid but not allowed to write to this tenant: check client.tenant_id and what the credentials grant",
        "not_found" => "check client.url: Loki's push path is /loki/api/v1/push",
        _ => "check client.url (Loki's push API, /loki/api/v1/push) and any proxy in front of Loki",
    }
}

/// `shipper_push_blocked{reason}` while one batch is held: moved from reason to reason, and given
/// back when the batch is stored, dropped, or its push abandoned (a reload replaces the pusher).
struct Blocked<'a> {
    metrics: &'a Metrics,
    reason: Option<&'static str>,
    since: Option<Instant>,
    logged: Option<Instant>,
}

impl Blocked<'_> {
    fn set(&mut self, reason: Option<&'static str>) {
        if reason != self.reason {
            if let Some(old) = self.reason {
                self.metrics.push_blocked.get_or_create(&Metrics::reason(old)).dec();
            }
            if let Some(new) = reason {
                self.metrics.push_blocked.get_or_create(&Metrics::reason(new)).inc();
            }
            self.reason = reason;
        }
        match reason {
            Some(_) => {
                self.since.get_or_insert_with(Instant::now);
            }
            None => self.since = None,
        }
    }

    /// Whether to log now: the first refusal of a hold, then once a minute.
    fn log_due(&mut self) -> bool {
        let due = self.logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due {
            self.logged = Some(Instant::now());
        }
        due
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.set(None);
    }
}

fn backoff_delay(cfg: &BackoffConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = cfg.min_period.0.saturating_mul(1u32 << attempt.min(20));
    let base = exp.min(cfg.max_period.0);
    // Equal jitter: half fixed, half random, so many agents do not retry in lockstep.
    let half = base / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    let d = half + Duration::from_millis(jitter);
    // Loki's own hint wins, within our ceiling.
    retry_after.map_or(d, |ra| ra.min(cfg.max_period.0))
}

impl Pusher {
    /// Sends batches until the batcher closes the queue.
    pub async fn run(self, mut rx: mpsc::Receiver<ReadyBatch>) {
        while let Some(rb) = rx.recv().await {
            self.push_batch(rb).await;
        }
    }

    async fn push_batch(&self, rb: ReadyBatch) {
        let batch = rb.batch;
        // 413: split into halves until each part fits; parts are sent in order.
        let mut parts: Vec<(Option<Vec<StreamBatch>>, Bytes)> = vec![(None, rb.body)];
        while let Some((streams, body)) = parts.pop() {
            let streams_ref = streams.as_deref().unwrap_or(&batch.streams);
            let entries: usize = streams_ref.iter().map(|s| s.entries.len()).sum();
            let bytes: usize = streams_ref
                .iter()
                .flat_map(|s| s.entries.iter().map(|e| e.line.len()))
                .sum();
            match self.send_with_retries(body, batch.tenant.as_deref(), entries).await {
                Sent::Stored => {
                    self.metrics.sent_entries.inc_by(entries as u64);
                    self.metrics.sent_bytes.inc_by(bytes as u64);
                }
                Sent::Dropped(reason) => {
                    self.metrics
                        .dropped_entries
                        .get_or_create(&Metrics::reason(reason))
                        .inc_by(entries as u64);
                }
                Sent::TooLarge => match split_streams(streams_ref) {
                    Some((left, right)) => {
                        tracing::warn!(entries, "Loki says the batch is too large (413); sending it in halves");
                        let rbody = encode_snappy(&right);
                        let lbody = encode_snappy(&left);
                        parts.push((Some(right), rbody));
                        parts.push((Some(left), lbody));
                    }
                    None => {
                        tracing::error!("Loki refuses a single entry as too large (413); dropping it");
                        self.metrics
                            .dropped_entries
                            .get_or_create(&Metrics::reason("too_large"))
                            .inc_by(entries as u64);
                    }
                },
            }
        }
        self.tracker.ack(batch.seq, &batch.files);
    }

    async fn send_with_retries(&self, body: Bytes, tenant: Option<&str>, entries: usize) -> Sent {
        let mut attempt: u32 = 0;
        let mut blocked = Blocked {
            metrics: &self.metrics,
            reason: None,
            since: None,
            logged: None,
        };
        let mut slot = self.client.clone();
        loop {
            let client = slot.borrow_and_update().clone();
            let start = Instant::now();
            let outcome = client.post(body.clone(), tenant).await;
            self.metrics.push_seconds.observe(start.elapsed().as_secs_f64());
            let held = blocked.since.map(|t| t.elapsed().as_secs());
            if !matches!(outcome, Outcome::Status { code, .. } if (400..500).contains(&code) && code != 413 && code != 429)
            {
                blocked.set(None);
            }
            let (retry_reason, retry_after) = match outcome {
                Outcome::Status { code, .. } if (200..300).contains(&code) => {
                    self.metrics.batches.get_or_create(&Metrics::status("2xx")).inc();
                    if let Some(held) = held {
                        tracing::info!(held_s = held, "Loki takes the pushes again; the held batch is stored");
                    }
                    return Sent::Stored;
                }
                Outcome::Status { code: 413, .. } => {
                    self.metrics.batches.get_or_create(&Metrics::status("413")).inc();
                    return Sent::TooLarge;
                }
                Outcome::Status {
                    code,
                    retry_after,
                    body,
                } if code == 429 || code >= 500 => {
                    self.metrics
                        .batches
                        .get_or_create(&Metrics::status(&code.to_string()))
                        .inc();
                    tracing::warn!(status = code, attempt, body = %body.trim(), "Loki asks to retry later");
                    (if code == 429 { "429" } else { "5xx" }, retry_after)
                }
                Outcome::Status { code, body, .. } => {
                    self.metrics
                        .batches
                        .get_or_create(&Metrics::status(&code.to_string()))
                        .inc();
                    match refusal(code, &body) {
                        Refusal::Entries(reason) => {
                            tracing::error!(status = code, reason, entries, body = %body.trim(),
                                "Loki refuses entries of the batch for what they are; they are dropped");
                            return Sent::Dropped(reason);
                        }
                        Refusal::Request(reason) if self.drop_on_client_error => {
                            tracing::error!(status = code, reason, entries, body = %body.trim(), url = %client.url(),
                                "Loki refuses the push; the batch is dropped (client.drop_on_client_error). {}", what_to_check(reason));
                            return Sent::Dropped(reason);
                        }
                        Refusal::Request(reason) => {
                            blocked.set(Some(reason));
                            if blocked.log_due() {
                                tracing::error!(status = code, reason, body = %body.trim(), url = %client.url(),
                                    held_s = held.unwrap_or(0),
                                    "Loki refuses every push of this agent: {}. The batch is held and retried, reading pauses and nothing is dropped until Loki takes it (logged once a minute; shipper_push_blocked says it lasts)",
                                    what_to_check(reason));
                            }
                            (reason, None)
                        }
                    }
                }
                Outcome::Failed(err) => {
                    self.metrics.batches.get_or_create(&Metrics::status("error")).inc();
                    tracing::warn!(error = %err, attempt, url = %client.url(), "push failed, retrying: is Loki reachable at client.url? with TLS, do client.tls (ca_file, cert_file, key_file) match the server?");
                    ("network", None)
                }
            };
            attempt += 1;
            if self.backoff.max_retries != 0 && attempt > self.backoff.max_retries {
                tracing::error!(
                    entries,
                    retries = attempt - 1,
                    "giving up on a batch after client.backoff.max_retries; its entries are dropped"
                );
                return Sent::Dropped("max_retries");
            }
            self.metrics.retries.get_or_create(&Metrics::reason(retry_reason)).inc();
            tokio::select! {
                _ = tokio::time::sleep(backoff_delay(&self.backoff, attempt - 1, retry_after)) => {}
                Ok(()) = slot.changed() => {
                    tracing::info!(url = %slot.borrow().url(), "a reload changed this client: the held batch is retried with the new one now");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    #[test]
    fn maps_loki_messages_to_reasons() {
        assert_eq!(
            reason_of_400("entry for stream '{a=\"b\"}' has timestamp too old: 2020-01-01"),
            "greater_than_max_sample_age"
        );
        assert_eq!(
            reason_of_400("Max entry size '262144' bytes exceeded ... line_too_long"),
            "line_too_long"
        );
        assert_eq!(reason_of_400("something else"), "bad_request");
    }

    #[test]
    fn only_refusals_that_name_entries_drop_them() {
        let class = |code, body| match refusal(code, body) {
            Refusal::Entries(r) => ("drop", r),
            Refusal::Request(r) => ("hold", r),
        };
        assert_eq!(
            class(
                400,
                "entry with timestamp 2020-01-01 ignored, reason: 'entry too far behind'"
            ),
            ("drop", "out_of_order")
        );
        assert_eq!(
            class(
                400,
                "tenant \"a b\" (from a tenant stage) has characters not allowed in a header"
            ),
            ("drop", "invalid_tenant")
        );
        assert_eq!(class(401, "no org id\n"), ("hold", "unauthorized"));
        assert_eq!(class(403, ""), ("hold", "forbidden"));
        assert_eq!(class(404, "404 page not found"), ("hold", "not_found"));
        assert_eq!(
            class(400, "The plain HTTP request was sent to HTTPS port"),
            ("hold", "bad_request")
        );
        assert_eq!(class(405, ""), ("hold", "rejected"));
        for code in [401, 403, 404, 405] {
            let ("hold", reason) = class(code, "") else { unreachable!() };
            assert!(BLOCKED_REASONS.contains(&reason), "{reason}");
        }
    }

    #[test]
    fn the_blocked_gauge_follows_the_hold_and_is_given_back() {
        let metrics = Metrics::new();
        let gauge = |r: &str| metrics.push_blocked.get_or_create(&Metrics::reason(r)).get();
        {
            let mut b = Blocked {
                metrics: &metrics,
                reason: None,
                since: None,
                logged: None,
            };
            b.set(Some("unauthorized"));
            b.set(Some("unauthorized"));
            assert_eq!((gauge("unauthorized"), gauge("not_found")), (1, 0));
            assert!(b.log_due() && !b.log_due(), "one ERROR a minute");
            b.set(Some("not_found"));
            assert_eq!((gauge("unauthorized"), gauge("not_found")), (0, 1));
            // Dropped while held: a reload abandoned the push.
        }
        assert_eq!((gauge("unauthorized"), gauge("not_found")), (0, 0));
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let cfg = BackoffConfig {
            min_period: Dur::ms(500),
            max_period: Dur::secs(4),
            max_retries: 10,
        };
        for attempt in 0..10 {
            let d = backoff_delay(&cfg, attempt, None);
            let base = Duration::from_millis(500 * (1 << attempt.min(3)));
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            backoff_delay(&cfg, 0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff_delay(&cfg, 0, Some(Duration::from_secs(60))),
            Duration::from_secs(4)
        );
    }
}
