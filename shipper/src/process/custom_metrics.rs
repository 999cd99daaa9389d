//! The `metrics` stage: Prometheus counters, gauges and histograms made from the lines, served on
//! `/metrics` beside shipper's own, as Promtail's `metrics` stage (and Alloy's `stage.metrics`)
//! make them.
//!
//! ```yaml
//! pipeline_stages:
//!   - regex: {expression: 'status=(?P<status>\d+) took=(?P<took>\S+)'}
//!   - metrics:
//!       http_requests_total: {type: Counter, description: "requests", source: status, config: {action: inc}}
//!       request_seconds: {type: Histogram, source: took, config: {buckets: [0.1, 0.5, 1]}}
//! ```
//!
//! Each series carries the line's labels at that stage. A series not updated for
//! `max_idle_duration` (default 5m) is removed, so label sets that come and go do not pile up.

use super::Line;
use crate::units::Dur;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// One metric of a `metrics` stage (the stage maps the metric's name to this).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    /// `Counter`, `Gauge` or `Histogram` (any case).
    #[serde(rename = "type")]
    pub kind: String,
    /// The metric's help text.
    pub description: String,
    /// The extracted value the metric reads (default: the metric's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Put before the name (default `shipper_custom_`; Promtail's was `promtail_custom_`,
    /// Alloy's `loki_process_custom_`). Counters end in `_total` (added when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A series not updated for this long is removed (default 5m, at least 1s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_idle_duration: Option<Dur>,
    /// What a line does to the metric.
    pub config: MetricAction,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricAction {
    /// Only lines whose `source` value equals this count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Counter: `inc` (by 1) or `add` (the value, a number or a duration such as `250ms` in
    /// seconds). Gauge: `set`, `inc`, `dec`, `add` or `sub`. Histogram: none (the value is observed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Counter: count every line, whether `source` was extracted or not.
    pub match_all: bool,
    /// Counter with `match_all`: add the line's length in bytes instead of 1.
    pub count_entry_bytes: bool,
    /// Histogram: the buckets' upper bounds (default Prometheus's .005 … 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    Inc,
    Dec,
    Add,
    Sub,
    Set,
    Observe,
}

const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Series {
    value: f64,
    sum: f64,
    count: u64,
    /// Per bucket (not cumulative), the last one +Inf.
    buckets: Vec<u64>,
    touched: Option<Instant>,
}

/// One metric's series, shared by every stage (and reload) that names it.
#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    bounds: Vec<f64>,
    idle: Duration,
    series: Mutex<HashMap<Vec<(String, String)>, Series>>,
}

/// The metrics the stages made, by full name. Weak: a family goes when no pipeline uses it.
static FAMILIES: Mutex<BTreeMap<String, Weak<Family>>> = Mutex::new(BTreeMap::new());

fn family(name: &str, help: &str, kind: Kind, bounds: Vec<f64>, idle: Duration) -> Result<Arc<Family>, String> {
    let mut all = FAMILIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = all.get(name).and_then(Weak::upgrade) {
        if f.kind != kind || f.bounds != bounds {
            return Err(format!(
                "`{name}` is already a {:?} with other settings in another metrics stage; give it another name or prefix",
                f.kind
            ));
        }
        return Ok(f);
    }
    let f = Arc::new(Family {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        bounds,
        idle,
        series: Mutex::new(HashMap::new()),
    });
    all.insert(name.to_string(), Arc::downgrade(&f));
    Ok(f)
}

/// A compiled metric of a stage.
#[derive(Debug)]
struct Metric {
    family: Arc<Family>,
    source: String,
    value: Option<String>,
    action: Action,
    match_all: bool,
    bytes: bool,
}

/// A compiled `metrics` stage.
#[derive(Debug)]
pub struct MetricsStage {
    metrics: Vec<Metric>,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl MetricsStage {
    /// Compiles the stage; `key` is its config path, for errors.
    pub fn new(config: &BTreeMap<String, MetricConfig>, key: &str) -> Result<MetricsStage, String> {
        if config.is_empty() {
            return Err(format!("{key}: name at least one metric"));
        }
        let mut metrics = Vec::new();
        for (name, c) in config {
            let key = format!("{key}.{name}");
            let kind = match c.kind.to_ascii_lowercase().as_str() {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                other => {
                    return Err(format!(
                        "{key}.type: {other:?} is not a metric type: give Counter, Gauge or Histogram"
                    ))
                }
            };
            let a = &c.config;
            let action = match (kind, a.action.as_deref().map(str::to_ascii_lowercase).as_deref()) {
                (Kind::Counter, Some("inc")) | (Kind::Gauge, Some("inc")) => Action::Inc,
                (Kind::Counter, Some("add")) | (Kind::Gauge, Some("add")) => Action::Add,
                (Kind::Gauge, Some("dec")) => Action::Dec,
                (Kind::Gauge, Some("sub")) => Action::Sub,
                (Kind::Gauge, Some("set")) => Action::Set,
                (Kind::Histogram, None) => Action::Observe,
                (Kind::Counter, _) => return Err(format!("{key}.config.action: a counter takes `inc` or `add`")),
                (Kind::Gauge, _) => {
                    return Err(format!(
                        "{key}.config.action: a gauge takes `set`, `inc`, `dec`, `add` or `sub`"
                    ))
                }
                (Kind::Histogram, Some(_)) => {
                    return Err(format!(
                        "{key}.config.action: a histogram has no action; it observes the value"
                    ))
                }
            };
            if (a.match_all || a.count_entry_bytes) && kind != Kind::Counter {
                return Err(format!(
                    "{key}.config: match_all and count_entry_bytes are for counters"
                ));
            }
            if a.count_entry_bytes && (!a.match_all || action != Action::Add) {
                return Err(format!(
                    "{key}.config.count_entry_bytes: needs match_all: true and action: add"
                ));
            }
            let idle = c.max_idle_duration.map_or(Duration::from_secs(300), |d| d.0);
            if idle < Duration::from_secs(1) {
                return Err(format!("{key}.max_idle_duration: at least 1s"));
            }
            let prefix = c.prefix.as_deref().unwrap_or("shipper_custom_");
            let mut full = format!("{prefix}{name}");
            if kind == Kind::Counter {
                // The exposition adds `_total` to counters.
                full = full.strip_suffix("_total").unwrap_or(&full).to_string();
            }
            if !valid_name(&full) {
                return Err(format!("{key}: {full:?} is not a valid Prometheus metric name"));
            }
            let mut bounds = Vec::new();
            if kind == Kind::Histogram {
                bounds = if a.buckets.is_empty() {
                    DEFAULT_BUCKETS.to_vec()
                } else {
                    a.buckets.clone()
                };
                if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("{key}.config.buckets: give finite bounds in increasing order"));
                }
            }
            let family = family(&full, &c.description, kind, bounds, idle).map_err(|e| format!("{key}: {e}"))?;
            metrics.push(Metric {
                family,
                source: c.source.clone().unwrap_or_else(|| name.clone()),
                value: a.value.clone(),
                action,
                match_all: a.match_all,
                bytes: a.count_entry_bytes,
            });
        }
        Ok(MetricsStage { metrics })
    }

    /// Counts `line`; `labels` gives its labels at this stage (made only if a metric applies).
    /// Returns false when a value was not a number (the line goes on; a failure is counted).
    pub fn apply(&self, line: &Line, labels: impl Fn() -> Vec<(String, String)>, now: Instant) -> bool {
        let mut made: Option<Vec<(String, String)>> = None;
        let mut ok = true;
        for m in &self.metrics {
            let delta = if m.match_all {
                match m.bytes {
                    true => line.line.len() as f64,
                    false => 1.0,
                }
            } else {
                let Some(v) = line.extracted.get(&m.source) else { continue };
                if m.value.as_deref().is_some_and(|want| want != v) {
                    continue;
                }
                match m.action {
                    Action::Inc | Action::Dec => 1.0,
                    _ => match number(v) {
                        Some(n) => n,
                        None => {
                            ok = false;
                            continue;
                        }
                    },
                }
            };
            if m.family.kind == Kind::Counter && delta < 0.0 {
                ok = false;
                continue;
            }
            let key = made.get_or_insert_with(&labels).clone();
            let mut series = m.family.series.lock().unwrap_or_else(|e| e.into_inner());
            let s = series.entry(key).or_default();
            s.touched = Some(now);
            match m.action {
                Action::Inc | Action::Add => s.value += delta,
                Action::Dec | Action::Sub => s.value -= delta,
                Action::Set => s.value = delta,
                Action::Observe => {
                    if s.buckets.is_empty() {
                        s.buckets = vec![0; m.family.bounds.len() + 1];
                    }
                    let i = m
                        .family
                        .bounds
                        .iter()
                        .position(|b| delta <= *b)
                        .unwrap_or(m.family.bounds.len());
                    s.buckets[i] += 1;
                    s.sum += delta;
                    s.count += 1;
                }
            }
        }
        ok
    }
}

/// A value as a number: a float, or a Go duration (`1.5s`, `250ms`, `1m30s`) in seconds, as
/// Promtail reads it.
fn number(v: &str) -> Option<f64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    let (neg, rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let mut total = 0.0;
    let mut s = rest;
    if s.is_empty() {
        return None;
    }
    while !s.is_empty() {
        let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let n: f64 = s[..end].parse().ok()?;
        s = &s[end..];
        let unit_end = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let scale = match &s[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        s = &s[unit_end..];
    }
    Some(if neg { -total } else { total })
}

/// Serves the stages' metrics on `/metrics`; series idle longer than their metric's
/// `max_idle_duration` are removed at each scrape.
#[derive(Debug)]
pub struct StageMetrics;

impl Collector for StageMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live: Vec<Arc<Family>> = {
            let mut all = FAMILIES.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|_, f| f.strong_count() > 0);
            all.values().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        for f in live {
            let mut series = f.series.lock().unwrap_or_else(|e| e.into_inner());
            series.retain(|_, s| s.touched.is_some_and(|t| now.saturating_duration_since(t) < f.idle));
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut m = encoder.encode_descriptor(&f.name, &f.help, None, kind)?;
            for (labels, s) in series.iter() {
                let mut e = m.encode_family(labels)?;
                match f.kind {
                    Kind::Counter => e.encode_counter::<NoLabelSet, f64, f64>(&s.value, None)?,
                    Kind::Gauge => e.encode_gauge(&s.value)?,
                    Kind::Histogram => {
                        let buckets: Vec<(f64, u64)> = f
                            .bounds
                            .iter()
                            .copied()
                            .chain([f64::INFINITY])
                            .zip(s.buckets.iter().copied())
                            .collect();
                        e.encode_histogram::<NoLabelSet>(s.sum, s.count, &buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "custom_metrics_tests.rs"]
mod tests;
