//! docs/src/reference/metrics.md against the registry: every family the agent registers has a row with
//! its name as queried, its type, its labels and a meaning, and every row is a registered family.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/reference/metrics.md");

/// Metrics with one series in every labelled family, so the exposition shows each family's labels.
fn with_every_series() -> Metrics {
    let m = Metrics::new();
    m.file_counters(std::path::Path::new("/var/log/a.log"));
    let _ = m.parse_issues.get_or_create(&IssueLabel { issue: "truncated" });
    let _ = m.file_reads.get_or_create(&ResultLabel { result: "data" });
    let _ = m.reloads.get_or_create(&ResultLabel { result: "data" });
    for family in [
        &m.skipped_files,
        &m.retries,
        &m.dropped_entries,
        &m.dropped_bytes,
        &m.pipeline_dropped,
        &m.labels_fitted,
        &m.journal_dropped,
    ] {
        let _ = family.get_or_create(&Metrics::reason("r"));
    }
    let _ = m.reading_paused.get_or_create(&Metrics::reason("r"));
    let _ = m.push_blocked.get_or_create(&Metrics::reason("r"));
    let _ = m.reading_paused_seconds.get_or_create(&Metrics::reason("r"));
    let _ = m.batches.get_or_create(&Metrics::status("2xx"));
    let _ = m.positions_writes.get_or_create(&Metrics::status("ok"));
    let _ = m.positions_written_bytes.get_or_create(&Metrics::kind("changes"));
    for family in [&m.watcher_mode, &m.ebpf_write_hook, &m.reader_mode] {
        let _ = family.get_or_create(&ModeLabel { mode: "m".into() });
    }
    let _ = m.kube_watch_errors.get_or_create(&ResourceLabel {
        resource: "pods".into(),
    });
    let _ = m.stage_failures.get_or_create(&StageLabel { stage: "json" });
    let _ = m.secrets_redacted.get_or_create(&RuleLabel { rule: "jwt" });
    m
}

/// Name as queried (counters with `_total`) → (type, label names), from the text exposition.
fn registered() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = with_every_series().encode();
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let mut seen_samples: BTreeSet<String> = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            families.insert(name, (kind.to_string(), BTreeSet::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = families
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .cloned()
                .unwrap_or_else(|| panic!("sample {name} of no family"));
            seen_samples.insert(family.clone());
            if let Some(labels) = line
                .split_once('{')
                .and_then(|(_, l)| l.split_once('}'))
                .map(|(l, _)| l)
            {
                for pair in labels.split("\",") {
                    let label = pair.split('=').next().unwrap().trim().to_string();
                    if label != "le" && !label.is_empty() {
                        families.get_mut(&family).unwrap().1.insert(label);
                    }
                }
            }
        }
    }
    let silent: Vec<&String> = families.keys().filter(|f| !seen_samples.contains(*f)).collect();
    assert!(
        silent.is_empty(),
        "families with no series in this test, so their labels cannot be checked: {silent:?}; \
         create one in metrics_docs_tests::with_every_series"
    );
    families
}

/// The page's table: name → (type, labels, meaning).
fn documented() -> BTreeMap<String, (String, BTreeSet<String>, String)> {
    let page = std::fs::read_to_string(PAGE).unwrap_or_else(|e| panic!("{PAGE}: {e}"));
    let mut rows = BTreeMap::new();
    for line in page.lines().filter(|l| l.starts_with("| `shipper_")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(
            cells.len(),
            4,
            "{PAGE}: a row needs | Metric | Type | Labels | Meaning |: {line}"
        );
        let labels = cells[2]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty() && l != "—")
            .collect();
        let name = cells[0].trim_matches('`').to_string();
        let row = (cells[1].to_string(), labels, cells[3].to_string());
        assert!(rows.insert(name.clone(), row).is_none(), "{PAGE}: {name} has two rows");
    }
    rows
}

#[test]
fn every_registered_metric_is_documented_with_its_type_and_labels() {
    let registered = registered();
    let documented = documented();
    let mut problems = Vec::new();
    for (name, (kind, labels)) in &registered {
        match documented.get(name) {
            None => problems.push(format!("{name} ({kind}, labels {labels:?}) has no row")),
            Some((k, l, meaning)) => {
                if k != kind {
                    problems.push(format!("{name}: the page says {k}, the registry {kind}"));
                }
                if l != labels {
                    problems.push(format!("{name}: the page lists labels {l:?}, the registry {labels:?}"));
                }
                if meaning.len() < 10 {
                    problems.push(format!("{name}: no meaning"));
                }
            }
        }
    }
    for name in documented.keys().filter(|n| !registered.contains_key(*n)) {
        problems.push(format!("{name} is on the page but not registered"));
    }
    assert!(
        problems.is_empty(),
        "{PAGE} and metrics.rs disagree:\n{}",
        problems.join("\n")
    );
    assert!(registered.len() > 40, "only {} families found", registered.len());
}
