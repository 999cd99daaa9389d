//! The server-side limits the receiver enforces, with Loki 3.x defaults.

use std::time::Duration;

/// Loki's per-tenant validation limits (`limits_config`) and server limits.
///
/// [`Limits::default`] is what a stock Loki 3 enforces. Rate limits (`ingestion_rate_mb`,
/// `per_stream_rate_limit`, `max_streams_per_user`) are not modelled: script a
/// [`Fault::Status`](crate::receiver::Fault::Status) with 429 to test them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `max_line_size`: longest accepted line in bytes (`line_too_long`). 256 KiB.
    pub max_line_size: usize,
    /// `max_label_names_per_series` (`max_label_names_per_series`). 15.
    pub max_label_names_per_series: usize,
    /// `max_label_name_length` in bytes (`label_name_too_long`). 1024.
    pub max_label_name_length: usize,
    /// `max_label_value_length` in bytes (`label_value_too_long`). 2048.
    pub max_label_value_length: usize,
    /// `reject_old_samples_max_age` when `reject_old_samples` is on
    /// (`greater_than_max_sample_age`); `None` accepts any age. 7 days.
    pub reject_old_samples_max_age: Option<Duration>,
    /// `creation_grace_period`: how far in the future a timestamp may be
    /// (`too_far_in_future`). 10 minutes.
    pub creation_grace_period: Duration,
    /// With `unordered_writes` (the default since 2.4) an entry older than the newest entry
    /// of its stream by more than this is refused (`too_far_behind`): half of
    /// `max_chunk_age`, 1 h. `None` disables the check.
    pub out_of_order_window: Option<Duration>,
    /// `allow_structured_metadata` (`disallowed_structured_metadata`). True in 3.x.
    pub allow_structured_metadata: bool,
    /// `max_structured_metadata_size`: bytes of names plus values per entry
    /// (`structured_metadata_too_large`). 64 KiB.
    pub max_structured_metadata_size: usize,
    /// `max_structured_metadata_entries_count` per entry (`structured_metadata_too_many`). 128.
    pub max_structured_metadata_entries: usize,
    /// `server.http_server_max_recv_msg_size`-like cap on the body, both as received and
    /// after decompression; larger bodies get 413. 100 MiB.
    pub max_recv_msg_size: usize,
    /// `auth_enabled`: a push without `X-Scope-OrgID` gets 401 `no org id`. Off here.
    pub require_tenant: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_size: 256 * 1024,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            creation_grace_period: Duration::from_secs(10 * 60),
            out_of_order_window: Some(Duration::from_secs(3600)),
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 * 1024,
            max_structured_metadata_entries: 128,
            max_recv_msg_size: 100 * 1024 * 1024,
            require_tenant: false,
        }
    }
}

/// Why an entry was refused: the `reason` label of Loki's `discarded_samples_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Labels string that does not parse.
    InvalidLabels,
    /// Empty label set.
    MissingLabels,
    /// More label names than `max_label_names_per_series`.
    MaxLabelNamesPerSeries,
    /// A label name longer than `max_label_name_length`.
    LabelNameTooLong,
    /// A label value longer than `max_label_value_length`.
    LabelValueTooLong,
    /// The same label name twice.
    DuplicateLabelNames,
    /// Line longer than `max_line_size`.
    LineTooLong,
    /// Timestamp older than `reject_old_samples_max_age`.
    GreaterThanMaxSampleAge,
    /// Timestamp newer than now + `creation_grace_period`.
    TooFarInFuture,
    /// Older than the stream's newest entry by more than the out-of-order window.
    TooFarBehind,
    /// Structured metadata while `allow_structured_metadata` is off.
    DisallowedStructuredMetadata,
    /// Structured metadata larger than `max_structured_metadata_size`.
    StructuredMetadataTooLarge,
    /// More pairs than `max_structured_metadata_entries`.
    StructuredMetadataTooMany,
}

impl Reason {
    /// The reason code as Loki spells it, e.g. `line_too_long`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidLabels => "invalid_labels",
            Reason::MissingLabels => "missing_labels",
            Reason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::DuplicateLabelNames => "duplicate_label_names",
            Reason::LineTooLong => "line_too_long",
            Reason::GreaterThanMaxSampleAge => "greater_than_max_sample_age",
            Reason::TooFarInFuture => "too_far_in_future",
            Reason::TooFarBehind => "too_far_behind",
            Reason::DisallowedStructuredMetadata => "disallowed_structured_metadata",
            Reason::StructuredMetadataTooLarge => "structured_metadata_too_large",
            Reason::StructuredMetadataTooMany => "structured_metadata_too_many",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
