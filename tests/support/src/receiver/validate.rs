//! Loki's push validation (distributor `validateLabels`/`validateEntry` and the ingester's
//! out-of-order window), applied stream by stream and entry by entry, storing what passes.
//!
//! Like Loki, a request with some invalid entries still stores its valid ones and is then
//! answered 400 with a text body naming the failures. Each failure line is Loki's own message
//! followed by ` (reason: <code>)` so a client can match the reason code.

use super::decode::IncomingStream;
use super::labels::{format_labels, parse_labels};
use super::limits::{Limits, Reason};
use super::state::{ReceivedEntry, State};
use crate::time::{format_rfc3339, TimeStyle};

/// How many failure lines a 400 body lists before summarising the rest.
const MAX_ERROR_LINES: usize = 20;

/// The result of ingesting one request.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Entries in the request.
    pub entries: usize,
    /// Entries stored.
    pub stored: usize,
    /// Entries refused.
    pub rejected: usize,
    /// One line per failure (stream or entry), capped at [`MAX_ERROR_LINES`].
    pub errors: Vec<String>,
}

impl Outcome {
    fn reject(&mut self, state: &mut State, reason: Reason, msg: String, n: usize) {
        state.discard(reason, n);
        self.rejected += n;
        if self.errors.len() < MAX_ERROR_LINES {
            self.errors.push(format!("{msg} (reason: {reason})"));
        }
    }

    /// The 400 body, or `None` when everything was accepted.
    pub fn error_body(&self) -> Option<String> {
        if self.rejected == 0 {
            return None;
        }
        let mut body = self.errors.join("\n");
        let listed = self.errors.len();
        if self.rejected > listed {
            body.push_str(&format!(
                "\n{} entries rejected in total ({} stored)",
                self.rejected, self.stored
            ));
        }
        body.push('\n');
        Some(body)
    }
}

/// Validates `streams` against `limits` at time `now_ns` and stores the valid entries in
/// `state`, in request order.
pub(crate) fn ingest(
    state: &mut State,
    limits: &Limits,
    now_ns: i64,
    tenant: Option<&str>,
    streams: Vec<IncomingStream>,
) -> Outcome {
    let mut out = Outcome::default();
    for stream in streams {
        let n = stream.entries.len();
        out.entries += n;
        let key = match stream_key(&stream.labels, limits) {
            Ok(key) => key,
            Err((reason, msg)) => {
                out.reject(state, reason, msg, n);
                continue;
            }
        };
        let mut newest = state.newest(&key);
        let mut accepted = Vec::with_capacity(n);
        for e in stream.entries {
            if let Err((reason, msg)) = check_entry(&key, &e, limits, now_ns, newest) {
                out.reject(state, reason, msg, 1);
                continue;
            }
            newest = Some(newest.map_or(e.ts_ns, |t| t.max(e.ts_ns)));
            accepted.push(ReceivedEntry {
                ts_ns: e.ts_ns,
                line: e.line,
                structured_metadata: e.structured_metadata,
                arrived_ns: now_ns,
                tenant: tenant.map(str::to_string),
            });
        }
        out.stored += accepted.len();
        state.store(&key, accepted);
    }
    out
}

type Failure = (Reason, String);

/// Parses and checks a label string; returns the normalized stream key.
fn stream_key(labels: &str, limits: &Limits) -> Result<String, Failure> {
    let mut pairs = parse_labels(labels).map_err(|e| {
        (
            Reason::InvalidLabels,
            format!("Error parsing labels '{labels}' with error: {e}"),
        )
    })?;
    if pairs.is_empty() {
        return Err((
            Reason::MissingLabels,
            "error at least one label pair is required per stream".to_owned(),
        ));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let key = format_labels(&pairs);
    if pairs.len() > limits.max_label_names_per_series {
        return Err((
            Reason::MaxLabelNamesPerSeries,
            format!(
                "entry for stream '{key}' has {} label names; limit {}",
                pairs.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    let mut last: Option<&str> = None;
    for (name, value) in &pairs {
        if name.len() > limits.max_label_name_length {
            return Err((
                Reason::LabelNameTooLong,
                format!("stream '{key}' has label name too long: '{name}'"),
            ));
        }
        if value.len() > limits.max_label_value_length {
            return Err((
                Reason::LabelValueTooLong,
                format!("stream '{key}' has label value too long: '{value}'"),
            ));
        }
        if last == Some(name.as_str()) {
            return Err((
                Reason::DuplicateLabelNames,
                format!("stream '{key}' has duplicate label name: '{name}'"),
            ));
        }
        last = Some(name);
    }
    Ok(key)
}

fn check_entry(
    key: &str,
    e: &super::decode::IncomingEntry,
    limits: &Limits,
    now_ns: i64,
    newest: Option<i64>,
) -> Result<(), Failure> {
    let ts = |ns: i64| format_rfc3339(ns, TimeStyle::GoNano);
    if let Some(max_age) = limits.reject_old_samples_max_age {
        let oldest = now_ns.saturating_sub(nanos(max_age));
        if e.ts_ns < oldest {
            return Err((
                Reason::GreaterThanMaxSampleAge,
                format!(
                    "entry for stream '{key}' has timestamp too old: {}, oldest acceptable \
                     timestamp is: {}",
                    ts(e.ts_ns),
                    ts(oldest)
                ),
            ));
        }
    }
    if e.ts_ns > now_ns.saturating_add(nanos(limits.creation_grace_period)) {
        return Err((
            Reason::TooFarInFuture,
            format!("entry for stream '{key}' has timestamp too new: {}", ts(e.ts_ns)),
        ));
    }
    if limits.max_line_size > 0 && e.line.len() > limits.max_line_size {
        return Err((
            Reason::LineTooLong,
            format!(
                "Max entry size '{}' bytes exceeded for stream '{key}' while adding an entry \
                 with length '{}' bytes",
                limits.max_line_size,
                e.line.len()
            ),
        ));
    }
    check_metadata(key, &e.structured_metadata, limits)?;
    if let (Some(window), Some(newest)) = (limits.out_of_order_window, newest) {
        let oldest = newest.saturating_sub(nanos(window));
        if e.ts_ns < oldest {
            return Err((
                Reason::TooFarBehind,
                format!(
                    "entry with timestamp {} ignored, reason: 'entry too far behind, entry \
                     timestamp is: {}, oldest acceptable timestamp is: {}' for stream: {key}",
                    ts(e.ts_ns),
                    ts(e.ts_ns),
                    ts(oldest)
                ),
            ));
        }
    }
    Ok(())
}

fn check_metadata(key: &str, md: &[(String, String)], limits: &Limits) -> Result<(), Failure> {
    if md.is_empty() {
        return Ok(());
    }
    if !limits.allow_structured_metadata {
        return Err((
            Reason::DisallowedStructuredMetadata,
            format!(
                "stream '{key}' includes structured metadata, but this feature is disallowed. \
                 Please see `limits_config.allow_structured_metadata` or contact your Loki \
                 administrator to enable it."
            ),
        ));
    }
    let size: usize = md.iter().map(|(n, v)| n.len() + v.len()).sum();
    if size > limits.max_structured_metadata_size {
        return Err((
            Reason::StructuredMetadataTooLarge,
            format!(
                "stream '{key}' has structured metadata too large: '{size}' bytes, limit: '{}' \
                 bytes.",
                limits.max_structured_metadata_size
            ),
        ));
    }
    if md.len() > limits.max_structured_metadata_entries {
        return Err((
            Reason::StructuredMetadataTooMany,
            format!(
                "stream '{key}' has too many structured metadata labels: '{}', limit: '{}'.",
                md.len(),
                limits.max_structured_metadata_entries
            ),
        ));
    }
    Ok(())
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::decode::IncomingEntry;
    use super::*;

    const NOW: i64 = 1_795_600_800_000_000_000;

    fn stream(labels: &str, entries: &[(i64, &str)]) -> IncomingStream {
        IncomingStream {
            labels: labels.to_owned(),
            entries: entries
                .iter()
                .map(|&(ts_ns, line)| IncomingEntry {
                    ts_ns,
                    line: line.to_owned(),
                    structured_metadata: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn partial_success_stores_valid_entries() {
        let mut st = State::default();
        let out = ingest(
            &mut st,
            &Limits::default(),
            NOW,
            None,
            vec![
                stream(r#"{b="2", a="1"}"#, &[(NOW, "ok"), (NOW + 3_600_000_000_000, "future")]),
                stream("{a=1}", &[(NOW, "bad labels")]),
            ],
        );
        assert_eq!((out.entries, out.stored, out.rejected), (3, 1, 2));
        let body = out.error_body().unwrap();
        assert!(body.contains("has timestamp too new"), "{body}");
        assert!(body.contains("(reason: too_far_in_future)"), "{body}");
        assert!(body.contains("(reason: invalid_labels)"), "{body}");
        assert_eq!(st.stream(r#"{a="1",b="2"}"#).unwrap()[0].line, "ok");
        assert_eq!(st.discarded_for(Reason::InvalidLabels), 1);
    }

    #[test]
    fn out_of_order_window_is_per_stream() {
        let mut st = State::default();
        let hour = 3_600_000_000_000;
        let out = ingest(
            &mut st,
            &Limits::default(),
            NOW,
            None,
            vec![
                stream(
                    r#"{a="1"}"#,
                    &[(NOW, "new"), (NOW - hour / 2, "ok"), (NOW - 2 * hour, "behind")],
                ),
                stream(r#"{a="2"}"#, &[(NOW - 2 * hour, "other stream is fine")]),
            ],
        );
        assert_eq!(out.stored, 3);
        assert_eq!(st.discarded_for(Reason::TooFarBehind), 1);
    }
}
