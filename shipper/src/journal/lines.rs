//! Journal entries → shippable lines: `MESSAGE` (or, with `format: json`, every field as a JSON
//! object) as the line (valid UTF-8, within `max_line_size`, as for files), `__REALTIME_TIMESTAMP` as
//! its time, and its label set from the configured fields.
//!
//! Entries of many units share a chunk, so each entry carries its own rendered label set
//! ([`Extra::labels`]). A node's journal has few distinct sets (units × priorities × host), so each
//! distinct set is built (fitted to `label_limits` and rendered) once and shared through an `Arc`;
//! the stages start from it.

use super::export::ExportEntry;
use crate::config::JournalFormat;
use crate::labels::StreamLabels;
use crate::parse::{Entry, Extra, ParseStats, StreamKind};
use crate::process::config::LabelLimits;
use crate::process::labels::Fitted;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Distinct label sets remembered; past this the cache starts over (a field with a value per entry,
/// like a PID, must not grow memory without bound — and would hurt Loki more than us).
const MAX_CACHED_SETS: usize = 4096;

/// Why an entry was not shipped (`shipper_journal_dropped_entries_total{reason}`).
pub const NO_MESSAGE: &str = "no_message";
/// Not journalctl's export format.
pub const BAD_FORMAT: &str = "bad_format";
/// Every reason of `shipper_journal_dropped_entries_total`.
pub const DROP_REASONS: [&str; 2] = [BAD_FORMAT, NO_MESSAGE];

pub struct Converter {
    /// `journal.labels` over `client.external_labels`.
    base: BTreeMap<String, String>,
    /// (label name, journal field), from `journal.fields`.
    fields: Vec<(String, String)>,
    limits: LabelLimits,
    max_line_size: usize,
    format: JournalFormat,
    cache: HashMap<Vec<Option<Vec<u8>>>, Arc<StreamLabels>>,
    /// Label sets changed to fit `label_limits` since the caller last took them.
    pub fitted: Fitted,
}

impl Converter {
    pub fn new(
        base: BTreeMap<String, String>,
        fields: &BTreeMap<String, String>,
        limits: LabelLimits,
        max_line_size: usize,
        format: JournalFormat,
    ) -> Self {
        Converter {
            base,
            fields: fields.iter().map(|(l, f)| (l.clone(), f.clone())).collect(),
            limits,
            max_line_size,
            format,
            cache: HashMap::new(),
            fitted: Fitted::default(),
        }
    }

    /// The journal fields the converter reads (what the parser has to keep); None: all of them
    /// (`format: json`).
    pub fn wanted_fields(&self) -> Option<Vec<String>> {
        if self.format == JournalFormat::Json {
            return None;
        }
        let mut v: Vec<String> = ["__CURSOR", "__REALTIME_TIMESTAMP", "MESSAGE"]
            .into_iter()
            .map(String::from)
            .chain(self.fields.iter().map(|(_, f)| f.clone()))
            .collect();
        v.sort();
        v.dedup();
        Some(v)
    }

    /// The labels every journal stream has (the chunk's labels).
    pub fn base(&self) -> &BTreeMap<String, String> {
        &self.base
    }

    /// The entry to ship with its label set, or Err(reason) when it cannot be shipped. `count`
    /// numbers the entry (its "offset"); `now_ns` stamps an entry without a usable
    /// `__REALTIME_TIMESTAMP`.
    pub fn convert(
        &mut self,
        e: &ExportEntry,
        count: u64,
        now_ns: i64,
        stats: &mut ParseStats,
    ) -> Result<(Entry, Arc<StreamLabels>), &'static str> {
        let (text, cut) = match self.format {
            JournalFormat::Message => {
                let msg = e.get("MESSAGE").ok_or(NO_MESSAGE)?;
                (Bytes::copy_from_slice(&msg.value), msg.cut)
            }
            JournalFormat::Json => (json_line(e, stats), false),
        };
        let line = crate::parse::finish_line(text, cut, self.max_line_size, stats);
        let ts_ns = e
            .get("__REALTIME_TIMESTAMP")
            .and_then(|f| std::str::from_utf8(&f.value).ok()?.parse::<i64>().ok())
            .and_then(|us| us.checked_mul(1000))
            .unwrap_or(now_ns);
        let labels = self.labels_of(e);
        let entry = Entry {
            ts_ns,
            line,
            stream: StreamKind::Unknown,
            offset: count,
            extra: Some(Box::new(Extra {
                labels: Some(labels.for_kind(StreamKind::Unknown).clone()),
                ..Extra::default()
            })),
        };
        Ok((entry, labels))
    }

    /// The label set of an entry, from the cache when it was seen before.
    fn labels_of(&mut self, e: &ExportEntry) -> Arc<StreamLabels> {
        let key: Vec<Option<Vec<u8>>> = self
            .fields
            .iter()
            .map(|(_, field)| e.get(field).map(|f| f.value.clone()))
            .collect();
        if let Some(l) = self.cache.get(&key) {
            return l.clone();
        }
        let mut labels = self.base.clone();
        for ((name, _), value) in self.fields.iter().zip(&key) {
            // Loki ignores a label with an empty value: leave it out, as an absent field.
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                labels.insert(name.clone(), String::from_utf8_lossy(v).into_owned());
            }
        }
        let f = crate::process::labels::fit(&mut labels, &self.limits, Some(&self.base));
        self.fitted.dropped += f.dropped;
        self.fitted.cut += f.cut;
        if labels.is_empty() {
            // Loki refuses an empty label set.
            labels.insert("job".into(), "systemd-journal".into());
        }
        let set = Arc::new(StreamLabels::new(&labels));
        if self.cache.len() >= MAX_CACHED_SETS {
            self.cache.clear();
        }
        self.cache.insert(key, set.clone());
        set
    }

    /// Distinct label sets rendered and remembered.
    #[cfg(test)]
    pub fn cached_sets(&self) -> usize {
        self.cache.len()
    }
}

/// Every field of the entry but the journal's own `__` ones (cursor, timestamps) as a JSON object
/// of strings, keys sorted; a field given twice keeps its last value, as Promtail's map does.
fn json_line(e: &ExportEntry, stats: &mut ParseStats) -> Bytes {
    let mut fields = BTreeMap::new();
    let mut lossy = false;
    for f in e.fields.iter().filter(|f| !f.name.starts_with("__")) {
        let value = String::from_utf8_lossy(&f.value);
        lossy |= matches!(value, std::borrow::Cow::Owned(_));
        fields.insert(f.name.as_str(), value);
    }
    stats.invalid_utf8 += u64::from(lossy);
    Bytes::from(serde_json::to_vec(&fields).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::export::Field;

    fn entry(fields: &[(&str, &[u8])]) -> ExportEntry {
        ExportEntry {
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: n.to_string(),
                    value: v.to_vec(),
                    cut: false,
                })
                .collect(),
        }
    }

    fn converter() -> Converter {
        let base = BTreeMap::from([("job".to_string(), "systemd-journal".to_string())]);
        let fields = BTreeMap::from([
            ("unit".to_string(), "_SYSTEMD_UNIT".to_string()),
            ("priority".to_string(), "PRIORITY".to_string()),
        ]);
        Converter::new(base, &fields, LabelLimits::default(), 16, JournalFormat::Message)
    }

    #[test]
    fn message_time_and_labels() {
        let mut c = converter();
        let mut stats = ParseStats::default();
        let e = entry(&[
            ("__REALTIME_TIMESTAMP", b"1700000000000001"),
            ("MESSAGE", b"bad \xff utf8"),
            ("_SYSTEMD_UNIT", b"a.service"),
            ("PRIORITY", b"6"),
        ]);
        let (out, set) = c.convert(&e, 7, 5, &mut stats).unwrap();
        assert_eq!(set.labels()["unit"], "a.service", "the stages start from these");
        assert_eq!(out.ts_ns, 1_700_000_000_000_001_000);
        assert_eq!(&out.line[..], "bad \u{fffd} utf8".as_bytes());
        assert_eq!(stats.invalid_utf8, 1);
        assert_eq!(out.offset, 7);
        let labels = out.extra.unwrap().labels.unwrap();
        assert_eq!(&*labels, r#"{job="systemd-journal", priority="6", unit="a.service"}"#);

        // Absent fields give no label; no timestamp: now; too long: cut and counted.
        let e = entry(&[("MESSAGE", b"0123456789abcdefXYZ")]);
        let out = c.convert(&e, 8, 5, &mut stats).unwrap().0;
        assert_eq!((out.ts_ns, &out.line[..]), (5, &b"0123456789abcdef"[..]));
        assert_eq!(stats.truncated, 1);
        assert_eq!(&*out.extra.unwrap().labels.unwrap(), r#"{job="systemd-journal"}"#);
        assert_eq!(
            c.convert(&entry(&[("PRIORITY", b"1")]), 9, 5, &mut stats).err(),
            Some(NO_MESSAGE)
        );
    }

    #[test]
    fn each_distinct_set_is_rendered_once() {
        let mut c = converter();
        let mut stats = ParseStats::default();
        let mut seen = Vec::new();
        for i in 0..100 {
            let unit = format!("u{}.service", i % 3);
            let e = entry(&[("MESSAGE", b"x"), ("_SYSTEMD_UNIT", unit.as_bytes())]);
            seen.push(
                c.convert(&e, i, 0, &mut stats)
                    .unwrap()
                    .0
                    .extra
                    .unwrap()
                    .labels
                    .unwrap(),
            );
        }
        assert_eq!(c.cached_sets(), 3);
        assert!(Arc::ptr_eq(&seen[0], &seen[3]), "the same Arc, not a new string");
        assert_eq!(
            c.wanted_fields().unwrap(),
            [
                "MESSAGE",
                "PRIORITY",
                "_SYSTEMD_UNIT",
                "__CURSOR",
                "__REALTIME_TIMESTAMP"
            ]
        );
    }

    #[test]
    fn json_format_is_every_field_of_the_entry() {
        let base = BTreeMap::from([("job".to_string(), "systemd-journal".to_string())]);
        let fields = BTreeMap::from([("unit".to_string(), "_SYSTEMD_UNIT".to_string())]);
        let mut c = Converter::new(base, &fields, LabelLimits::default(), 1000, JournalFormat::Json);
        assert_eq!(c.wanted_fields(), None, "the parser keeps every field");
        let mut stats = ParseStats::default();
        let e = entry(&[
            ("__CURSOR", b"s=1"),
            ("__REALTIME_TIMESTAMP", b"1700000000000001"),
            ("_SYSTEMD_UNIT", b"a.service"),
            ("MESSAGE", b"say \"hi\"\n\xff"),
            ("PRIORITY", b"6"),
        ]);
        let (out, _) = c.convert(&e, 1, 5, &mut stats).unwrap();
        assert_eq!(
            std::str::from_utf8(&out.line).unwrap(),
            r#"{"MESSAGE":"say \"hi\"\n\u{fffd}","PRIORITY":"6","_SYSTEMD_UNIT":"a.service"}"#
                .replace("\\u{fffd}", "\u{fffd}")
        );
        assert_eq!(stats.invalid_utf8, 1);
        assert_eq!(
            &*out.extra.unwrap().labels.unwrap(),
            r#"{job="systemd-journal", unit="a.service"}"#
        );
        let (out, _) = c.convert(&entry(&[("PRIORITY", b"1")]), 2, 5, &mut stats).unwrap();
        assert_eq!(
            &out.line[..],
            br#"{"PRIORITY":"1"}"#,
            "no MESSAGE is no reason to drop it"
        );
    }
}
