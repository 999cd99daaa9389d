//! `pack`, `decolorize` and `sampling`, through whole pipelines as a user configures them.

use super::*;
use crate::process::pipeline::tests::run;

#[test]
fn pack_puts_labels_and_extracted_values_with_the_line_into_json_and_drops_those_labels() {
    let (out, _) = run(
        "- regex: {expression: 'user=(?P<user>\\S+)'}\n- pack: {labels: [namespace, user, absent], ingest_timestamp: false}",
        &["user=\"bob\" said \"hi\"\tok"],
    );
    let (line, labels, _, _) = &out[0];
    assert_eq!(
        line,
        r#"{"namespace":"ns","user":"\"bob\"","_entry":"user=\"bob\" said \"hi\"\tok"}"#
    );
    // `namespace` was a label and left the stream; `user` was only extracted; `job` stays.
    assert_eq!(labels.as_deref(), Some(r#"{job="t", stream="stdout"}"#));
    let v: serde_json::Value = serde_json::from_str(line).expect("pack writes JSON");
    assert_eq!(v["_entry"], "user=\"bob\" said \"hi\"\tok");
}

#[test]
fn pack_stamps_the_line_with_the_time_it_was_packed_unless_told_not_to() {
    let mut st =
        crate::process::pipeline::FileStages::new(crate::process::pipeline::tests::pipeline("- pack: {labels: [job]}"));
    let mut entries = vec![crate::parse::Entry {
        ts_ns: 1_000,
        line: Bytes::from_static(b"x"),
        stream: crate::parse::StreamKind::Stdout,
        offset: 0,
        extra: None,
    }];
    let mut stats = Default::default();
    st.run(
        &crate::process::pipeline::tests::base(),
        &mut entries,
        std::time::Instant::now(),
        77_000,
        &mut stats,
    );
    assert_eq!(entries[0].ts_ns, 77_000);
    assert_eq!(&entries[0].line[..], br#"{"job":"t","_entry":"x"}"#);
}

#[test]
fn pack_without_labels_is_refused_with_its_key() {
    let e = Pack::new(&PackConfig::default(), "pipeline_stages[0].pack")
        .err()
        .unwrap();
    assert!(e.starts_with("pipeline_stages[0].pack.labels:"), "{e}");
}

#[test]
fn decolorize_removes_colours_cursor_moves_and_titles_and_keeps_the_text() {
    let cases = [
        ("\u{1b}[31mERROR\u{1b}[0m disk full", "ERROR disk full"),
        ("\u{1b}[1;32mok\u{1b}[m", "ok"),
        ("\u{1b}[38;5;208mamber\u{1b}[39m", "amber"),
        ("\u{1b}]0;title\u{7}after", "after"),
        ("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\", "link"),
        ("\u{1b}(Bplain", "plain"),
        ("\u{9b}1mbold", "bold"),
        ("héllo \u{1b}[2Kwörld", "héllo wörld"),
        ("trailing \u{1b}", "trailing "),
        ("trailing \u{1b}[", "trailing "),
    ];
    for (input, want) in cases {
        assert_eq!(decolorize(input).as_deref(), Some(want), "{input:?}");
    }
    assert_eq!(decolorize("no escapes here"), None);
    let (out, _) = run("- decolorize: {}", &["\u{1b}[33mwarn\u{1b}[0m x"]);
    assert_eq!(out[0].0, "warn x");
    let (out, _) = run("- decolorize:", &["\u{1b}[33mwarn\u{1b}[0m"]);
    assert_eq!(out[0].0, "warn");
}

#[test]
fn sampling_keeps_about_its_rate_and_counts_the_rest() {
    let lines: Vec<String> = (0..20_000).map(|i| format!("l{i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (out, stats) = run("- sampling: {rate: 0.25}", &refs);
    let kept = out.len() as f64;
    // 20,000 draws at 0.25: the standard deviation is about 61 lines; 8 of them is far enough.
    assert!((kept - 5_000.0).abs() < 500.0, "kept {kept}");
    assert_eq!(
        stats.dropped.get("sampling_stage").copied().unwrap_or(0) as usize,
        20_000 - out.len()
    );
    let (out, stats) = run("- sampling: {rate: 0.0, drop_counter_reason: thinned}", &refs[..100]);
    assert!(out.is_empty());
    assert_eq!(stats.dropped.get("thinned"), Some(&100));
    let (out, _) = run("- sampling: {rate: 1}", &refs[..100]);
    assert_eq!(out.len(), 100);
}

#[test]
fn a_rate_outside_0_to_1_is_refused() {
    let e = Sampling::new(
        &SamplingConfig {
            rate: 1.5,
            ..Default::default()
        },
        "s",
    )
    .err()
    .unwrap();
    assert!(e.contains("s.rate") && e.contains("0 to 1"), "{e}");
}

proptest::proptest! {
    #[test]
    fn decolorize_never_panics_and_only_removes(s in "(\\PC|\u{1b}|\u{9b}|\\[|;|[0-9])*") {
        if let Some(out) = decolorize(&s) {
            proptest::prop_assert!(out.len() < s.len());
            proptest::prop_assert!(!out.contains('\u{1b}'), "{out:?}");
        }
    }
}
