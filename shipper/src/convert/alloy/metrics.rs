//! Alloy's `stage.metrics` (blocks `metric.counter`, `metric.gauge`, `metric.histogram`, each
//! with its `name`) into the Promtail-shaped `metrics` stage: name → type and settings.

use super::attrs::{attrs, line};
use super::{Block, Item};
use crate::convert::report::Report;
use serde_json::{Map, Value};

/// Alloy names them `loki_process_custom_<name>` unless the block gives a `prefix`.
const ALLOY_PREFIX: &str = "loki_process_custom_";

/// The metrics of a `stage.metrics` block; blocks that are not metrics are reported.
pub(super) fn shape(s: &Block, what: &str, report: &mut Report) -> Value {
    let mut out = Map::new();
    for item in &s.body.items {
        let Item::Block(b) = item else { continue };
        let kind = match b.name.as_str() {
            "metric.counter" => "Counter",
            "metric.gauge" => "Gauge",
            "metric.histogram" => "Histogram",
            other => {
                report.unsupported(
                    line(b.pos),
                    format!("{what} {other}"),
                    "not a metric block of stage.metrics",
                );
                continue;
            }
        };
        let mut a = attrs(&b.body, &format!("{what} {}", b.name), report);
        let Some(Value::String(name)) = a.remove("name") else {
            report.unsupported(line(b.pos), format!("{what} {}", b.name), "a metric without a name");
            continue;
        };
        let mut m = Map::new();
        m.insert("type".into(), kind.into());
        for key in ["description", "source", "prefix", "max_idle_duration"] {
            if let Some(v) = a.remove(key) {
                m.insert(key.into(), v);
            }
        }
        m.entry("prefix").or_insert_with(|| ALLOY_PREFIX.into());
        // The rest (value, action, match_all, count_entry_bytes, buckets) is Promtail's `config`.
        m.insert("config".into(), Value::Object(a));
        out.insert(name, Value::Object(m));
    }
    Value::Object(out)
}
