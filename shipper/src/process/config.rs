//! The configuration of pipeline stages and relabel rules, in Promtail's own YAML shape so that a
//! Promtail `pipeline_stages:` list or a Prometheus `relabel_configs:` list can be pasted as is.
//!
//! ```yaml
//! pipeline_stages:
//!   - multiline: {firstline: '^\d{4}-', max_wait_time: 3s}
//!   - json: {expressions: {level: level, msg: message, trace: span.trace_id}}
//!   - labels: {level: ""}
//!   - structured_metadata: {trace: ""}
//!   - timestamp: {source: ts, format: RFC3339Nano}
//!   - output: {source: msg}
//!   - drop: {source: level, value: debug}
//! ```
//!
//! Every stage reads the line or a value an earlier stage extracted (`source`), and may change the
//! line, its timestamp, its labels, its structured metadata or its tenant, or drop it.

pub use super::custom_metrics::{MetricAction, MetricConfig};
pub use super::replace::ReplaceConfig;
pub use super::secretfilter::SecretFilterConfig;
pub use super::template::TemplateConfig;
pub use super::transform::{DecolorizeConfig, PackConfig, SamplingConfig};
use crate::units::Dur;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One stage: a single-key map, `- json: {...}` (Promtail's form; YAML tags are not needed).
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum StageConfig {
    /// Values from a JSON line (or extracted value) into the extracted map.
    Json(JsonConfig),
    /// Values from a logfmt line (`level=info msg="a b"`) into the extracted map.
    Logfmt(LogfmtConfig),
    /// Named groups of a regular expression into the extracted map.
    Regex(RegexConfig),
    /// Extracted values become labels: label name → extracted name ("" = the same name).
    Labels(BTreeMap<String, String>),
    /// Extracted values become Loki 3 structured metadata: name → extracted name ("" = same).
    StructuredMetadata(BTreeMap<String, String>),
    /// Fixed labels added to every line.
    StaticLabels(BTreeMap<String, String>),
    /// These labels are removed.
    Labeldrop(Vec<String>),
    /// Only these labels are kept.
    Labelallow(Vec<String>),
    /// The line's timestamp from an extracted value.
    Timestamp(TimestampConfig),
    /// The line is replaced by an extracted value.
    Output(OutputConfig),
    /// The tenant (`X-Scope-OrgID`) of the line.
    Tenant(TenantConfig),
    /// Lines that match are dropped (counted by reason).
    Drop(FilterConfig),
    /// Lines that do not match are dropped (counted by reason).
    Keep(FilterConfig),
    /// Lines joined into one entry: a line matching `firstline` starts a new entry.
    Multiline(MultilineConfig),
    /// A rate limit per stream: over it lines are dropped (counted) or reading slows down.
    Limit(LimitConfig),
    /// Promtail's `cri` stage: accepted, and nothing more is done. Each file's format (CRI or
    /// docker) is detected and parsed before the stages, partial lines joined up to
    /// `tail.max_line_size`; `stream` is a label.
    Cri(FormatStageConfig),
    /// Promtail's `docker` stage: accepted like `cri`.
    Docker(FormatStageConfig),
    /// Stages for the lines a LogQL selector matches (`{app="api"} |= "error"`), or, with
    /// `action: drop`, those lines dropped (counted).
    Match(MatchConfig),
    /// The named labels (or extracted values) and the line packed into one JSON line
    /// (`{"app":"api","_entry":"..."}`); packed labels leave the stream. LogQL's `| unpack`
    /// undoes it.
    Pack(PackConfig),
    /// ANSI escape sequences (colours) removed from the line.
    Decolorize(Option<DecolorizeConfig>),
    /// A share of the lines kept at random, the others dropped (counted).
    Sampling(SamplingConfig),
    /// Prometheus counters, gauges and histograms from the lines, on `/metrics`: metric name →
    /// its settings.
    Metrics(BTreeMap<String, MetricConfig>),
    /// An extracted value set from a Go template (`{{ .level | ToUpper }}`).
    Template(TemplateConfig),
    /// What the groups of a regular expression capture in the line (or an extracted value),
    /// replaced by a template's output.
    Replace(ReplaceConfig),
    /// Secrets in the line (cloud keys, tokens, private keys; Alloy's `loki.secretfilter`)
    /// replaced by `<REDACTED-SECRET:rule-id>`, counted by rule.
    Secretfilter(SecretFilterConfig),
    /// Every line goes through each branch (a copy each): its own stages, then only to its
    /// endpoints. The last stage of a target's stages (the global ones, then its own).
    Branches(Vec<BranchConfig>),
    /// Where an IP address (an extracted value) is: its city, country and continent, or its
    /// network's owner, looked up in a MaxMind database into extracted values (`geoip_*`).
    Geoip(GeoipConfig),
}

/// One branch of a `branches` stage.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BranchConfig {
    /// The endpoints (client `name`s) the branch's lines go to; empty: the target's.
    pub clients: Vec<String>,
    /// The stages of the branch's copy of each line (none: the line as it came).
    pub stages: Vec<StageConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MatchConfig {
    /// A LogQL stream selector on the line's labels (as the stages before made them), with line
    /// filters if wanted: `{app="api", level!="debug"} |= "error" !~ "health"`.
    pub selector: String,
    /// The stages the matching lines go through (`action: keep`).
    pub stages: Vec<StageConfig>,
    /// `keep`: matching lines go through `stages`, the others skip them; `drop`: matching lines
    /// are dropped, counted.
    pub action: MatchAction,
    /// The `reason` of `shipper_pipeline_dropped_lines_total` for lines dropped (default `match_stage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
    /// A name for the nested stages (Promtail's), used in errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_name: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchAction {
    /// Matching lines go through the stages.
    #[default]
    Keep,
    /// Matching lines are dropped.
    Drop,
}

/// The options of Promtail's `cri` stage, accepted so its configs load as they are; partial lines
/// are joined up to `tail.max_line_size` whatever they say.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FormatStageConfig {
    /// Promtail's limit of partial lines kept per stream (not needed: lines are joined per file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_lines: Option<u64>,
    /// Promtail's longest joined line (`tail.max_line_size` bounds it here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_line_size: Option<crate::units::ByteSize>,
    /// Promtail's cut of longer joined lines (lines over `tail.max_line_size` are cut here, counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_line_size_truncate: Option<bool>,
}

impl StageConfig {
    /// The stage's name as written in YAML (metric label, error messages).
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::Json(_) => "json",
            StageConfig::Logfmt(_) => "logfmt",
            StageConfig::Regex(_) => "regex",
            StageConfig::Labels(_) => "labels",
            StageConfig::StructuredMetadata(_) => "structured_metadata",
            StageConfig::StaticLabels(_) => "static_labels",
            StageConfig::Labeldrop(_) => "labeldrop",
            StageConfig::Labelallow(_) => "labelallow",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Output(_) => "output",
            StageConfig::Tenant(_) => "tenant",
            StageConfig::Drop(_) => "drop",
            StageConfig::Keep(_) => "keep",
            StageConfig::Multiline(_) => "multiline",
            StageConfig::Limit(_) => "limit",
            StageConfig::Cri(_) => "cri",
            StageConfig::Docker(_) => "docker",
            StageConfig::Match(_) => "match",
            StageConfig::Pack(_) => "pack",
            StageConfig::Decolorize(_) => "decolorize",
            StageConfig::Sampling(_) => "sampling",
            StageConfig::Metrics(_) => "metrics",
            StageConfig::Template(_) => "template",
            StageConfig::Replace(_) => "replace",
            StageConfig::Secretfilter(_) => "secretfilter",
            StageConfig::Branches(_) => "branches",
            StageConfig::Geoip(_) => "geoip",
        }
    }
}

/// The stage names, in the order of [`StageConfig`]'s variants.
const STAGES: &[&str] = &[
    "json",
    "logfmt",
    "regex",
    "labels",
    "structured_metadata",
    "static_labels",
    "labeldrop",
    "labelallow",
    "timestamp",
    "output",
    "tenant",
    "drop",
    "keep",
    "multiline",
    "limit",
    "cri",
    "docker",
    "match",
    "pack",
    "decolorize",
    "sampling",
    "metrics",
    "template",
    "replace",
    "secretfilter",
    "branches",
    "geoip",
];

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StageConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a stage: a map with one key, one of {}", STAGES.join(", "))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StageConfig, A::Error> {
                use serde::de::Error;
                let Some(name) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(format!(
                        "an empty stage: name one of {}",
                        STAGES.join(", ")
                    )));
                };
                let stage = match name.as_str() {
                    "json" => StageConfig::Json(map.next_value()?),
                    "logfmt" => StageConfig::Logfmt(map.next_value()?),
                    "regex" => StageConfig::Regex(map.next_value()?),
                    "labels" => StageConfig::Labels(map.next_value::<NameMap>()?.0),
                    "structured_metadata" => StageConfig::StructuredMetadata(map.next_value::<NameMap>()?.0),
                    "static_labels" => StageConfig::StaticLabels(map.next_value()?),
                    "labeldrop" => StageConfig::Labeldrop(map.next_value()?),
                    "labelallow" => StageConfig::Labelallow(map.next_value()?),
                    "timestamp" => StageConfig::Timestamp(map.next_value()?),
                    "output" => StageConfig::Output(map.next_value()?),
                    "tenant" => StageConfig::Tenant(map.next_value()?),
                    "drop" => StageConfig::Drop(map.next_value()?),
                    "keep" => StageConfig::Keep(map.next_value()?),
                    "multiline" => StageConfig::Multiline(map.next_value()?),
                    "limit" => StageConfig::Limit(map.next_value()?),
                    "cri" => StageConfig::Cri(map.next_value()?),
                    "docker" => StageConfig::Docker(map.next_value()?),
                    "match" => StageConfig::Match(map.next_value()?),
                    "pack" => StageConfig::Pack(map.next_value()?),
                    "decolorize" => StageConfig::Decolorize(map.next_value()?),
                    "sampling" => StageConfig::Sampling(map.next_value()?),
                    "metrics" => StageConfig::Metrics(map.next_value()?),
                    "template" => StageConfig::Template(map.next_value()?),
                    "replace" => StageConfig::Replace(map.next_value()?),
                    "secretfilter" => StageConfig::Secretfilter(map.next_value()?),
                    "branches" => StageConfig::Branches(map.next_value()?),
                    "geoip" => StageConfig::Geoip(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, STAGES)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "one stage per list item: `{extra}` follows `{name}`; start it with its own `- `"
                    )));
                }
                Ok(stage)
            }
        }
        d.deserialize_map(Visitor)
    }
}

impl Serialize for StageConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        let name = self.name();
        match self {
            StageConfig::Json(c) => m.serialize_entry(name, c)?,
            StageConfig::Logfmt(c) => m.serialize_entry(name, c)?,
            StageConfig::Regex(c) => m.serialize_entry(name, c)?,
            StageConfig::Labels(c) | StageConfig::StructuredMetadata(c) | StageConfig::StaticLabels(c) => {
                m.serialize_entry(name, c)?
            }
            StageConfig::Labeldrop(c) | StageConfig::Labelallow(c) => m.serialize_entry(name, c)?,
            StageConfig::Timestamp(c) => m.serialize_entry(name, c)?,
            StageConfig::Output(c) => m.serialize_entry(name, c)?,
            StageConfig::Tenant(c) => m.serialize_entry(name, c)?,
            StageConfig::Drop(c) | StageConfig::Keep(c) => m.serialize_entry(name, c)?,
            StageConfig::Multiline(c) => m.serialize_entry(name, c)?,
            StageConfig::Limit(c) => m.serialize_entry(name, c)?,
            StageConfig::Cri(c) | StageConfig::Docker(c) => m.serialize_entry(name, c)?,
            StageConfig::Match(c) => m.serialize_entry(name, c)?,
            StageConfig::Pack(c) => m.serialize_entry(name, c)?,
            StageConfig::Decolorize(c) => m.serialize_entry(name, c)?,
            StageConfig::Sampling(c) => m.serialize_entry(name, c)?,
            StageConfig::Metrics(c) => m.serialize_entry(name, c)?,
            StageConfig::Template(c) => m.serialize_entry(name, c)?,
            StageConfig::Replace(c) => m.serialize_entry(name, c)?,
            StageConfig::Secretfilter(c) => m.serialize_entry(name, c)?,
            StageConfig::Branches(c) => m.serialize_entry(name, c)?,
            StageConfig::Geoip(c) => m.serialize_entry(name, c)?,
        }
        m.end()
    }
}

/// Name → source, where an empty or missing source (`level:`, as Promtail's configs write it)
/// means the same name.
struct NameMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for NameMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?;
        Ok(NameMap(
            m.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        ))
    }
}

fn name_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    NameMap::deserialize(d).map(|m| m.0)
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JsonConfig {
    /// Extracted name → path in the JSON document: `level`, `span.trace_id`, `items[0].id`
    /// ("" = the same name at the top level).
    #[serde(deserialize_with = "name_map")]
    pub expressions: BTreeMap<String, String>,
    /// Parse this extracted value instead of the line.
    pub source: Option<String>,
    /// Drop lines that are not a JSON object (default: keep them, count a failure).
    pub drop_malformed: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogfmtConfig {
    /// Extracted name → logfmt key ("" = the same name).
    #[serde(deserialize_with = "name_map")]
    pub mapping: BTreeMap<String, String>,
    /// Parse this extracted value instead of the line.
    pub source: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegexConfig {
    /// A regular expression (Rust `regex` syntax, which matches RE2/Go's) with named groups
    /// `(?P<name>...)`; each group that matched is extracted under its name.
    pub expression: String,
    /// Match this extracted value instead of the line.
    pub source: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimestampConfig {
    /// The extracted value holding the time.
    pub source: String,
    /// `RFC3339`, `RFC3339Nano`, `Unix`, `UnixMs`, `UnixUs`, `UnixNs`, or a Go reference layout
    /// such as `2006-01-02 15:04:05.000`, as Promtail takes it.
    pub format: String,
    /// Tried in order when `format` does not parse.
    pub fallback_formats: Vec<String>,
    /// IANA time zone for layouts without an offset (default UTC).
    pub location: Option<String>,
    /// `fudge` (default: keep the line's timestamp) or `skip` (same, without counting a failure).
    pub action_on_failure: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// The extracted value that becomes the line.
    pub source: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant from this extracted value...
    pub source: Option<String>,
    /// ...or from this label (of the file or set by an earlier stage)...
    pub label: Option<String>,
    /// ...or this fixed tenant. Exactly one of the three.
    pub value: Option<String>,
}

/// What `drop` and `keep` test. Every condition given must hold for a line to match.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Test this extracted value instead of the line (a line without it does not match, unless
    /// only `source` is given: then its presence is the test).
    pub source: Option<String>,
    /// The value (of `source`) equals this.
    pub value: Option<String>,
    /// A regular expression found anywhere in the line (or `source`).
    pub expression: Option<String>,
    /// A substring of the line (or `source`): much cheaper than a regex.
    pub contains: Option<String>,
    /// The line's timestamp is older than this.
    pub older_than: Option<Dur>,
    /// The line is longer than this many bytes.
    pub longer_than: Option<crate::units::ByteSize>,
    /// The `reason` of `shipper_pipeline_dropped_lines_total` (default `drop_stage` / `keep_stage`).
    pub drop_counter_reason: Option<String>,
}

/// Settings of `geoip` (Promtail's `geoip`, Alloy's `stage.geoip`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GeoipConfig {
    /// The MaxMind database file (`.mmdb`: GeoIP2 or GeoLite2 City, Country or ASN, or another
    /// MMDB). Read into memory when the config is loaded (a missing or invalid file is a config
    /// error); stages naming the same unchanged file share one copy. A config reload reads a file
    /// that changed on disk anew, even when the config itself is unchanged.
    pub db: String,
    /// The extracted value holding the IP address (IPv4 or IPv6).
    pub source: String,
    /// Which fields are extracted; may be left out when `custom_lookups` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_type: Option<GeoipDbType>,
    /// More values from the address's record: extracted name → path in the record, as in the
    /// `json` stage (`MyCompany.DeptName`, `subdivisions[0].iso_code`; "" = the name itself).
    /// Strings, numbers and booleans are extracted; maps and lists are not.
    #[serde(deserialize_with = "name_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_lookups: BTreeMap<String, String>,
}

/// The kind of MaxMind database, and so the values extracted.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GeoipDbType {
    /// `geoip_city_name`, `geoip_country_name`, `geoip_country_code`, `geoip_continent_name`,
    /// `geoip_continent_code`, `geoip_location_latitude`, `geoip_location_longitude`,
    /// `geoip_postal_code`, `geoip_timezone`, `geoip_subdivision_name`, `geoip_subdivision_code`
    /// (the most specific subdivision).
    City,
    /// `geoip_country_name`, `geoip_country_code`, `geoip_continent_name`, `geoip_continent_code`.
    Country,
    /// `geoip_autonomous_system_number`, `geoip_autonomous_system_organization`.
    Asn,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this starts a new entry; others are appended (with `\n`) to the entry in
    /// progress. Either this or `preset`.
    pub firstline: Option<String>,
    /// `java`, `python` or `go`: stack traces of those runtimes stay with the line before them.
    pub preset: Option<String>,
    /// An entry is sent once it has this many lines (default 128).
    pub max_lines: Option<usize>,
    /// ...or once no line came for this long (default 3s).
    pub max_wait_time: Option<Dur>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Lines per second per stream.
    pub rate: f64,
    /// Lines allowed at once above the rate (default: `rate`).
    pub burst: Option<u32>,
    /// `true`: lines over the limit are dropped (counted). `false` (default): reading of the file
    /// slows down to the rate; nothing is dropped (the file is the buffer).
    pub drop: bool,
    /// A bucket per value of this label (as the stages before made the labels), shared by every
    /// file of the target, instead of one per stream: lines without the label are not limited.
    /// Needs `drop: true`, as in Promtail and Alloy (several files sharing a bucket cannot all wait
    /// for it fairly).
    pub by_label_name: Option<String>,
    /// With `by_label_name`: the buckets kept, the least recently used forgotten beyond it (its
    /// value starts again with a full bucket). Default 10000. Promtail and Alloy raise values
    /// under 10000 to 10000; shipper keeps the number given.
    pub max_distinct_labels: Option<usize>,
}

/// A Prometheus relabel rule, applied to a file's target labels once when it is opened (and again
/// when its pod's metadata changes). The labels it sees include `__path__` and the
/// `__meta_kubernetes_*` labels (or, with `path_labels: docker` on a bare Docker host, the
/// `__meta_docker_container_*` ones); labels starting with `__` are removed after the last rule.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values, joined by `separator`, are matched against `regex`.
    pub source_labels: Vec<String>,
    /// Joins the values of `source_labels`.
    pub separator: String,
    /// The label written by `replace`, `hashmod`, `lowercase` and `uppercase`.
    pub target_label: Option<String>,
    /// Fully anchored, like Prometheus.
    pub regex: String,
    /// `hashmod`: the target label gets the hash of the source values modulo this.
    pub modulus: Option<u64>,
    /// `replace` and `labelmap`: the value written, with `$1`, `${name}` for the regex's groups.
    pub replacement: String,
    /// What the rule does, as in Prometheus.
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: ";".into(),
            target_label: None,
            regex: "(.*)".into(),
            modulus: None,
            replacement: "$1".into(),
            action: RelabelAction::Replace,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    Hashmod,
    Labelmap,
    Labeldrop,
    Labelkeep,
    Lowercase,
    Uppercase,
    Keepequal,
    Dropequal,
}

/// Loki's per-stream label limits: a line whose labels break them would make Loki refuse the
/// whole push, so extra labels are dropped here (counted) and long values cut (counted).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LabelLimits {
    /// Loki's `max_label_names_per_series`.
    pub max_label_names_per_series: usize,
    /// Loki's `max_label_name_length`.
    pub max_label_name_length: usize,
    /// Loki's `max_label_value_length`.
    pub max_label_value_length: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
        }
    }
}

#[cfg(test)]
#[path = "config_docs_tests.rs"]
mod docs_tests;
