//! Tests of lowering stages: `geoip` from Promtail (whose stage sets labels) and from Alloy (whose
//! stage sets extracted values), and what is told of the stages of a job that is not converted.

use crate::config::StageConfig;
use crate::convert::alloy_fixture::{converted_stages, file_source_into};
use crate::convert::report::Outcome;
use crate::convert::{convert, Source, Target};

fn notes(c: &crate::convert::Converted) -> Vec<(String, bool)> {
    c.report
        .notes
        .iter()
        .map(|n| (n.what.clone(), matches!(n.outcome, Outcome::Unsupported(_))))
        .collect()
}

/// A Promtail config of one job `fw` tailing /var/log/fw.log: a regex extracting `ip`, then
/// `stages` (list items indented by six spaces).
fn fw_job(stages: &str) -> String {
    let head = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: fw
    static_configs: [{labels: {__path__: /var/log/fw.log, job: fw}}]
    pipeline_stages:
      - regex: {expression: '^(?P<ip>\S+)'}
"#;
    format!("{head}{stages}")
}

#[test]
fn promtails_geoip_becomes_geoip_and_labels_with_its_fields_and_the_database_is_not_read_here() {
    let text = fw_job(
        r#"      - match:
          selector: '{job="fw"}'
          stages:
            - geoip: {db: /nowhere/GeoLite2-City.mmdb, source: ip, db_type: city}
      - geoip: {db: /nowhere/GeoLite2-ASN.mmdb, source: ip, db_type: asn}
"#,
    );
    let c = convert(Source::Promtail, Target::Config, &text, "p.yaml").unwrap();
    assert!(c.report.complete(), "{}", c.report.render());
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let stages = &cfg.targets[0].pipeline_stages;
    let names: Vec<&str> = stages.iter().map(StageConfig::name).collect();
    assert_eq!(names, ["regex", "match", "geoip", "labels"]);
    let StageConfig::Match(m) = &stages[1] else { panic!("{}", c.yaml) };
    let StageConfig::Labels(city) = &m.stages[1] else { panic!("{}", c.yaml) };
    // Promtail's ten city labels: Alloy's eleven fields but the country code.
    assert_eq!(city.len(), 10, "{city:?}");
    assert!(city.contains_key("geoip_subdivision_code") && !city.contains_key("geoip_country_code"));
    let StageConfig::Labels(asn) = &stages[3] else { panic!("{}", c.yaml) };
    assert_eq!(
        asn.keys().collect::<Vec<_>>(),
        ["geoip_autonomous_system_number", "geoip_autonomous_system_organization"]
    );
    let rendered = c.report.render();
    assert!(
        rendered.contains("the database is read from /nowhere/GeoLite2-ASN.mmdb on each node"),
        "{rendered}"
    );
    // Without db_type Promtail refuses the stage; shipper reports it and leaves it out.
    let c = convert(
        Source::Promtail,
        Target::Config,
        &text.replace(", db_type: asn", ""),
        "p.yaml",
    )
    .unwrap();
    assert!(
        c.report.render().contains("geoip.db_type: give city"),
        "{}",
        c.report.render()
    );
}

#[test]
fn alloys_stage_geoip_carries_with_its_custom_lookups_and_sets_extracted_values_only() {
    let text = file_source_into(
        r#"loki.process "first" {
  stage.json {
    expressions = {ip = "client_ip"}
  }
  stage.geoip {
    source         = "ip"
    db             = "/nowhere/GeoIP2-Enriched.mmdb"
    db_type        = "country"
    custom_lookups = {"department" = "MyCompany.DeptName"}
  }
  stage.labels {
    values = {geoip_country_code = "", department = ""}
  }
  forward_to = [loki.write.default.receiver]
}"#,
    );
    let (c, stages) = converted_stages(&text);
    assert!(c.report.complete(), "{}", c.report.render());
    let names: Vec<&str> = stages.iter().map(StageConfig::name).collect();
    assert_eq!(names, ["json", "geoip", "labels"]);
    let StageConfig::Geoip(g) = &stages[1] else { panic!("{}", c.yaml) };
    assert_eq!(g.db, "/nowhere/GeoIP2-Enriched.mmdb");
    assert_eq!(g.db_type, Some(crate::process::config::GeoipDbType::Country));
    assert_eq!(g.custom_lookups["department"], "MyCompany.DeptName");
    let bad = text.replace("\"country\"", "\"town\"");
    let c = convert(Source::Alloy, Target::Config, &bad, "config.alloy").unwrap();
    assert!(!c.report.complete());
    assert!(!c.yaml.contains("geoip:"), "{}", c.yaml);
}

#[test]
fn the_stages_of_a_job_that_is_not_converted_are_not_reported_one_by_one() {
    let text = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: syslog
    syslog: {listen_address: 0.0.0.0:1514}
    pipeline_stages:
      - regex: {expression: '^(?P<ip>\S+)'}
      - geoip: {db: /g.mmdb, source: ip, db_type: city}
      - luhn: {}
  - job_name: empty
    pipeline_stages:
      - json: {expressions: {level: ""}}
  - job_name: files
    static_configs: [{labels: {__path__: /var/log/app.log}}]
"#;
    let c = convert(Source::Promtail, Target::Config, text, "p.yaml").unwrap();
    let told = notes(&c);
    let about = |job: &str| -> Vec<&(String, bool)> { told.iter().filter(|(w, _)| w.starts_with(job)).collect() };
    assert_eq!(
        about("job syslog"),
        [&("job syslog syslog".to_string(), true)],
        "{}",
        c.report.render()
    );
    assert_eq!(
        about("job empty"),
        [&("job empty".to_string(), true)],
        "{}",
        c.report.render()
    );
    assert!(c.report.render().contains("job empty: NOT SUPPORTED: nothing to read"));
    assert_eq!(about("job files").len(), 1, "{}", c.report.render());
}

/// Promtail loads a geoip stage without `source` and it does nothing (no address to look up):
/// convert leaves it out as not needed. Without `db_type` too, Promtail refuses it: reported.
#[test]
fn a_promtail_geoip_without_source_does_nothing_and_is_left_out() {
    let text = fw_job("      - geoip: {db: /nowhere/GeoLite2-City.mmdb, db_type: city}\n");
    let c = convert(Source::Promtail, Target::Config, &text, "p.yaml").unwrap();
    assert!(c.report.complete(), "{}", c.report.render());
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let names: Vec<&str> = cfg.targets[0].pipeline_stages.iter().map(StageConfig::name).collect();
    assert_eq!(names, ["regex"], "{}", c.yaml);
    let note = c
        .report
        .notes
        .iter()
        .find(|n| n.what.contains("geoip"))
        .expect("geoip reported");
    assert!(
        matches!(&note.outcome, Outcome::NotNeeded(why) if why.contains("looks nothing up")),
        "{:?}",
        note.outcome
    );
    let refused = text.replace(", db_type: city", "");
    let c = convert(Source::Promtail, Target::Config, &refused, "p.yaml").unwrap();
    assert!(
        notes(&c)
            .iter()
            .any(|(what, unsupported)| what.contains("geoip") && *unsupported),
        "{}",
        c.report.render()
    );
}
