//! docs/src/reference/stages.md against the config: the page has a row for every stage name the
//! config accepts and for every stage Promtail has, and a row says a stage loads exactly when the
//! config accepts its name.

use super::*;
use std::collections::BTreeMap;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/reference/stages.md");

/// Promtail's stage names, as its `stages` package registers them (`stage.go`, Loki 3).
const PROMTAIL: &[&str] = &[
    "docker",
    "cri",
    "json",
    "logfmt",
    "regex",
    "metrics",
    "labels",
    "labeldrop",
    "timestamp",
    "output",
    "match",
    "template",
    "tenant",
    "replace",
    "drop",
    "sampling",
    "limit",
    "multiline",
    "pack",
    "labelallow",
    "static_labels",
    "decolorize",
    "eventlogmessage",
    "geoip",
    "non_indexed_labels",
    "structured_metadata",
];

/// The page's table: stage name → what it says of it (`as it is`, `differs`, `refused`, `shipper only`).
fn rows() -> BTreeMap<String, String> {
    let page = std::fs::read_to_string(PAGE).expect("docs/src/reference/stages.md");
    let mut rows = BTreeMap::new();
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').to_string();
        let before = rows.insert(name.clone(), cells[1].to_string());
        assert!(before.is_none(), "stages.md has two rows for `{name}`");
    }
    assert!(rows.len() >= 20, "stages.md: {} rows found", rows.len());
    rows
}

#[test]
fn the_stages_page_says_of_each_stage_what_the_config_does() {
    let rows = rows();
    let mut wrong = Vec::new();
    for (name, status) in &rows {
        let accepted = STAGES.contains(&name.as_str());
        let promtail = PROMTAIL.contains(&name.as_str());
        let parsed = serde_yaml_ng::from_str::<StageConfig>(&format!("{name}: {{}}"));
        let refused = matches!(&parsed, Err(e) if e.to_string().contains("unknown variant"));
        let fits = match status.as_str() {
            "as it is" | "differs" => accepted && !refused && promtail,
            "refused" => !accepted && refused && promtail,
            "shipper only" => accepted && !refused && !promtail,
            other => {
                wrong.push(format!(
                    "`{name}`: `{other}` is not one of as it is, differs, refused, shipper only"
                ));
                continue;
            }
        };
        if !fits {
            wrong.push(format!(
                "`{name}` is said to be `{status}`, but the config {} it{}",
                if accepted { "accepts" } else { "refuses" },
                if promtail {
                    ""
                } else {
                    " and Promtail has no such stage"
                }
            ));
        }
    }
    for name in STAGES.iter().chain(PROMTAIL) {
        if !rows.contains_key(*name) {
            wrong.push(format!("`{name}` has no row"));
        }
    }
    assert!(wrong.is_empty(), "docs/src/reference/stages.md:\n{}", wrong.join("\n"));
}
