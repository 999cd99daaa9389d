//! Pipeline stages on any input: JSON, logfmt and regex parsing, timestamps in several formats,
//! multiline joining, labels, `match` selectors, Go templates, replace, secret redaction, pack,
//! decolorize, metrics and output never panic, and every line comes out valid UTF-8 within the
//! line size limit (or is held, or dropped and counted). The first line is also parsed as a LogQL
//! selector and as a Go template (refused or run, never a panic). The first word of each line is
//! looked up by `geoip` stages on databases held in memory (City and ASN, written by the testkit),
//! and the input itself is opened as a database: refused, or looked up, never a panic.
#![no_main]

use shipper::process::config::{GeoipConfig, GeoipDbType};
use shipper::process::geoip::GeoipStage;
use shipper::process::pipeline::{FileStages, Pipeline, StageStats};
use shipper_testkit::mmdb::{asn, city, with, Mmdb, Value};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const STAGES: &str = r#"
- multiline: {firstline: '^[\[{A-Z]', max_lines: 5, max_wait_time: 1s}
- json: {expressions: {level: "", msg: "", t: "a.b[0].time", n: "a.n"}}
- logfmt: {mapping: {lvl: level, ts: ""}}
- regex: {expression: '^(?P<word>\w+) (?P<rest>.*)$'}
- timestamp: {source: t, format: RFC3339Nano, fallback_formats: [Unix, "2006-01-02 15:04:05.000", "02/Jan/2006:15:04:05 -0700"]}
- timestamp: {source: ts, format: "Jan _2 15:04:05", location: Europe/Berlin}
- labels: {level: "", word: ""}
- structured_metadata: {rest: ""}
- drop: {source: lvl, value: debug}
- tenant: {source: word}
- match:
    selector: '{level=~"warn|error", word!=""} |~ "(?i)fail" != "ok"'
    stages:
      - static_labels: {alert: "yes"}
      - match: {selector: '{level="debug"}', action: drop}
- decolorize: {}
- template: {source: msg, template: '{{ if .level }}{{ .level | ToUpper }}: {{ end }}{{ .msg | default .Entry | trunc 200 }}'}
- replace: {expression: '(?P<num>\d{3,})', replace: '{{ .Value | Sha2Hash "salt" | trunc 8 }}'}
- secretfilter: {include_generic: true, partial_mask: 3, allowlist: ['^AKIA0'], redact_with: '<$SECRET_NAME:$SECRET_HASH>'}
- metrics:
    fuzz_lines_total: {type: Counter, config: {match_all: true, count_entry_bytes: true, action: add}}
    fuzz_n: {type: Histogram, source: n, config: {buckets: [1, 10]}}
- output: {source: msg}
- pack: {labels: [level, word], ingest_timestamp: false}
"#;

fn pipeline() -> Arc<Pipeline> {
    static P: OnceLock<Arc<Pipeline>> = OnceLock::new();
    P.get_or_init(|| {
        let stages: Vec<shipper::process::config::StageConfig> = serde_yaml_ng::from_str(STAGES).expect("stages");
        let keyed: Vec<(String, &shipper::process::config::StageConfig)> =
            stages.iter().enumerate().map(|(i, s)| (format!("s[{i}]"), s)).collect();
        let p = Pipeline::new(&keyed, &Default::default(), 512, &Default::default())
            .expect("compiles")
            .expect("stages");
        Arc::new(p)
    })
    .clone()
}

fn geoip_config(db_type: Option<GeoipDbType>, lookups: &[(&str, &str)]) -> GeoipConfig {
    GeoipConfig {
        db: "in memory".into(),
        source: "ip".into(),
        db_type,
        custom_lookups: lookups.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// `geoip` stages on a City database (IPv6, 28-bit records) and an ASN one (IPv4, 24-bit).
fn geoip() -> &'static [GeoipStage; 2] {
    static G: OnceLock<[GeoipStage; 2]> = OnceLock::new();
    G.get_or_init(|| {
        let mut c = Mmdb::new("GeoLite2-City", 6, 28);
        let london = with(
            city("London", "GB", "United Kingdom", "EU", "Europe"),
            "location",
            Value::map([("latitude", Value::F64(51.5)), ("longitude", Value::F64(-0.09))]),
        );
        c.insert("81.2.69.0/24", london);
        c.insert("2001:db8::/32", city("Paris", "FR", "France", "EU", "Europe"));
        let mut a = Mmdb::new("GeoLite2-ASN", 4, 24);
        a.insert("1.0.0.0/8", asn(13335, "CLOUDFLARENET"));
        let lookups = [("org", "autonomous_system_organization"), ("first", "a[0].b")];
        [
            GeoipStage::from_bytes(&geoip_config(Some(GeoipDbType::City), &[]), c.build()).expect("city"),
            GeoipStage::from_bytes(&geoip_config(Some(GeoipDbType::Asn), &lookups), a.build()).expect("asn"),
        ]
    })
}

fn lookups(stages: &[GeoipStage], data: &[u8]) {
    for l in data.split(|&b| b == b'\n') {
        let mut line = shipper::process::Line::new(
            0,
            bytes::Bytes::copy_from_slice(l),
            shipper::parse::StreamKind::Stdout,
            0,
        );
        let word = String::from_utf8_lossy(l.split(|&b| b == b' ').next().unwrap_or_default()).into_owned();
        line.extracted.set(&Arc::from("ip"), &word);
        for g in stages {
            g.apply(&mut line);
        }
        if word.starts_with("81.2.69.") && word.parse::<std::net::IpAddr>().is_ok() {
            assert_eq!(line.extracted.get("geoip_country_code"), Some("GB"), "{word}");
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lookups(geoip(), data);
    // The input as a database: refused, or looked up.
    if let Ok(g) = GeoipStage::from_bytes(&geoip_config(Some(GeoipDbType::City), &[("x", "a.b")]), data.to_vec()) {
        lookups(&[g], b"81.2.69.1\n::1\n2001:db8::1\n1.2.3.4");
    }
    // The first line as a LogQL selector (Promtail's `match`): parsed or refused, never a panic.
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    if let Ok(sel) = shipper::process::selector::Selector::parse(&String::from_utf8_lossy(first)) {
        let _ = sel.matches(|_| Some("api"), data);
    }
    if let Ok(t) = shipper::process::template::TemplateStage::compile(&String::from_utf8_lossy(first)) {
        let line = shipper::process::Line::new(
            0,
            bytes::Bytes::copy_from_slice(data),
            shipper::parse::StreamKind::Stdout,
            0,
        );
        let mut out = String::new();
        let _ = t.render(&line, &mut out);
    }
    let base = Arc::new(shipper::labels::StreamLabels::new(&Default::default()));
    let mut st = FileStages::new(pipeline());
    let mut stats = StageStats::default();
    let mut offset = 0u64;
    let entries: Vec<shipper::parse::Entry> = data
        .split(|&b| b == b'\n')
        .map(|l| {
            let e = shipper::parse::Entry {
                ts_ns: 1_700_000_000_000_000_000,
                line: bytes::Bytes::from(String::from_utf8_lossy(l).into_owned()),
                stream: shipper::parse::StreamKind::Stdout,
                offset,
                extra: None,
            };
            offset += l.len() as u64 + 1;
            e
        })
        .collect();
    let now = Instant::now();
    let mut out = entries;
    st.run(&base, &mut out, now, 1_700_000_000_000_000_000, &mut stats);
    let mut rest = Vec::new();
    st.flush(&base, now + Duration::from_secs(2), 0, &mut rest, &mut stats, true);
    for e in out.iter().chain(&rest) {
        assert!(std::str::from_utf8(&e.line).is_ok());
        assert!(e.line.len() <= 512, "{} bytes", e.line.len());
    }
    assert_eq!(st.oldest_offset(), None, "everything flushed");
});
