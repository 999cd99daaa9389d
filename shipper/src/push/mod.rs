//! push: sends batches to Loki in order, retrying what can succeed later and dropping (counted, logged)
//! what never will, then acknowledges the batch's offsets to the checkpoint.
//!
//! Rules (see shared loki-push.md): 2xx → stored; 429, 5xx, network errors, timeouts → retry with
//! exponential backoff and jitter, honouring `Retry-After`; 413 → split the batch in halves; other 4xx →
//! do not retry, count the drop by reason, log Loki's message. After `max_retries` a batch is dropped,
//! counted and logged: never retried forever silently (`max_retries: 0` retries forever, visibly).

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

pub struct Pusher {
    pub client: HttpClient,
    pub backoff: BackoffConfig,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
}

/// What became of a body after retries.
enum Sent {
    Stored,
    Dropped(&'static str),
    TooLarge,
}

/// Maps Loki's 400 message to its reason code (Loki's own texts, as of 2.9/3.x).
fn reason_of_400(body: &str) -> &'static str {
    let b = body.to_ascii_lowercase();
    const REASONS: &[(&[&str], &str)] = &[
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
    ];
    REASONS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| b.contains(n)))
        .map_or("bad_request", |(_, r)| r)
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
        loop {
            let start = Instant::now();
            let outcome = self.client.post(body.clone(), tenant).await;
            self.metrics.push_seconds.observe(start.elapsed().as_secs_f64());
            let (retry_reason, retry_after) = match outcome {
                Outcome::Status { code, .. } if (200..300).contains(&code) => {
                    self.metrics.batches.get_or_create(&Metrics::status("2xx")).inc();
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
                    let reason = match code {
                        400 => reason_of_400(&body),
                        401 | 403 => "unauthorized",
                        404 => "not_found",
                        _ => "rejected",
                    };
                    tracing::error!(status = code, reason, entries, body = %body.trim(),
                        "Loki rejected the batch; it is dropped (check client.url, credentials, or the reason)");
                    return Sent::Dropped(reason);
                }
                Outcome::Failed(err) => {
                    self.metrics.batches.get_or_create(&Metrics::status("error")).inc();
                    tracing::warn!(error = %err, attempt, url = %self.client.url(), "push failed, retrying: is Loki reachable at client.url? with TLS, do client.tls (ca_file, cert_file, key_file) match the server?");
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
            tokio::time::sleep(backoff_delay(&self.backoff, attempt - 1, retry_after)).await;
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
