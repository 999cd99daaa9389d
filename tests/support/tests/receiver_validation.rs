//! Each Loki validation rule answers 400 naming its reason, and — like Loki — the valid
//! entries of the same request are stored anyway.

use std::time::Duration;

use prost::Message;
use shipper_testkit::client::{self, push_protobuf, HttpResponse};
use shipper_testkit::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use shipper_testkit::time::now_nanos;
use shipper_testkit::{Limits, Reason, Receiver};

const GOOD: &str = r#"{app="good"}"#;
const MINUTE: i64 = 60_000_000_000;

/// Pushes one valid entry in `{app="good"}` plus `bad` and checks: 400, the body names
/// `reason` (and contains `fragment`), the valid entry is stored, the bad ones are not.
fn check_rule(loki: &Receiver, bad: StreamAdapter, reason: Reason, fragment: &str) {
    loki.clear();
    let bad_entries = bad.entries.len();
    let req = PushRequest::new(vec![
        StreamAdapter::new(GOOD, vec![EntryAdapter::new(now_nanos(), "valid")]),
        bad,
    ]);
    let resp = push_protobuf(&loki.url(), &req).unwrap();
    let body = resp.text();
    assert_eq!(resp.status, 400, "{reason}: {body}");
    assert!(body.contains(reason.as_str()), "{reason}: {body}");
    assert!(body.contains(fragment), "{reason}: expected {fragment:?} in {body}");
    assert_eq!(loki.lines(), ["valid"], "{reason}: partial success");
    let (count, rec) = loki.with_state(|s| (s.discarded_for(reason), s.requests()[0].clone()));
    assert_eq!(count, bad_entries, "{reason}: discarded count");
    assert_eq!((rec.status, rec.entries, rec.stored), (Some(400), 1 + bad_entries, 1));
    assert_eq!(rec.response_body, body);
}

fn stream(labels: &str, line: &str) -> StreamAdapter {
    StreamAdapter::new(labels, vec![EntryAdapter::new(now_nanos(), line)])
}

#[test]
fn label_rules() {
    let loki = Receiver::start();
    check_rule(
        &loki,
        stream(r#"{app="x""#, "l"),
        Reason::InvalidLabels,
        r#"Error parsing labels '{app="x"' with error"#,
    );
    check_rule(
        &loki,
        stream("{1a=\"x\"}", "l"),
        Reason::InvalidLabels,
        "invalid label name",
    );
    check_rule(
        &loki,
        stream("{}", "l"),
        Reason::MissingLabels,
        "at least one label pair",
    );
    let many: Vec<String> = (0..16).map(|i| format!("l{i:02}=\"v\"")).collect();
    check_rule(
        &loki,
        stream(&format!("{{{}}}", many.join(", ")), "l"),
        Reason::MaxLabelNamesPerSeries,
        "has 16 label names; limit 15",
    );
    let long_name = "n".repeat(1025);
    check_rule(
        &loki,
        stream(&format!("{{{long_name}=\"v\"}}"), "l"),
        Reason::LabelNameTooLong,
        "has label name too long",
    );
    let long_value = "v".repeat(2049);
    check_rule(
        &loki,
        stream(&format!("{{a=\"{long_value}\"}}"), "l"),
        Reason::LabelValueTooLong,
        "has label value too long",
    );
    check_rule(
        &loki,
        stream(r#"{a="1", b="2", a="3"}"#, "l"),
        Reason::DuplicateLabelNames,
        "has duplicate label name: 'a'",
    );
}

#[test]
fn limits_at_the_boundary_are_accepted() {
    let loki = Receiver::start();
    let fifteen: Vec<String> = (0..15).map(|i| format!("l{i:02}=\"v\"")).collect();
    let labels = format!(
        "{{{}, {}=\"{}\"}}",
        fifteen[..14].join(", "),
        "n".repeat(1024),
        "v".repeat(2048)
    );
    let line = "x".repeat(256 * 1024);
    let resp = push_protobuf(&loki.url(), &PushRequest::new(vec![stream(&labels, &line)])).unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
}

#[test]
fn entry_rules() {
    let loki = Receiver::start();
    let now = now_nanos();
    let entry = |ts: i64, line: &str| StreamAdapter::new(r#"{app="bad"}"#, vec![EntryAdapter::new(ts, line)]);
    check_rule(
        &loki,
        entry(now, &"x".repeat(256 * 1024 + 1)),
        Reason::LineTooLong,
        "Max entry size '262144' bytes exceeded for stream '{app=\"bad\"}' while adding an entry \
         with length '262145' bytes",
    );
    check_rule(
        &loki,
        entry(now - 7 * 24 * 60 * MINUTE - MINUTE, "old"),
        Reason::GreaterThanMaxSampleAge,
        "entry for stream '{app=\"bad\"}' has timestamp too old",
    );
    check_rule(
        &loki,
        entry(now + 11 * MINUTE, "future"),
        Reason::TooFarInFuture,
        "entry for stream '{app=\"bad\"}' has timestamp too new",
    );
    // Within the grace period and the max age: fine (cleared in between, so the second is
    // not judged too far behind the first).
    for ts in [now + 9 * MINUTE, now - 6 * 24 * 60 * MINUTE] {
        loki.clear();
        let resp = push_protobuf(&loki.url(), &PushRequest::new(vec![entry(ts, "ok")])).unwrap();
        assert_eq!(resp.status, 204, "{}", resp.text());
    }
}

#[test]
fn too_far_behind_within_a_stream() {
    let loki = Receiver::start();
    let now = now_nanos();
    let req = PushRequest::new(vec![StreamAdapter::new(
        r#"{app="bad"}"#,
        vec![EntryAdapter::new(now, "newest")],
    )]);
    assert_eq!(push_protobuf(&loki.url(), &req).unwrap().status, 204);
    let late = PushRequest::new(vec![StreamAdapter::new(
        r#"{app="bad"}"#,
        vec![
            EntryAdapter::new(now - 30 * MINUTE, "late but fine"),
            EntryAdapter::new(now - 61 * MINUTE, "too late"),
        ],
    )]);
    let resp = push_protobuf(&loki.url(), &late).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("too_far_behind"), "{}", resp.text());
    assert_eq!(loki.lines(), ["newest", "late but fine"]);
}

#[test]
fn structured_metadata_rules() {
    let loki = Receiver::start();
    let with_md = |n: usize, value_len: usize| {
        let mut e = EntryAdapter::new(now_nanos(), "md");
        for i in 0..n {
            e = e.with_metadata(format!("k{i}"), "v".repeat(value_len));
        }
        StreamAdapter::new(r#"{app="bad"}"#, vec![e])
    };
    check_rule(
        &loki,
        with_md(129, 1),
        Reason::StructuredMetadataTooMany,
        "'129', limit: '128'",
    );
    check_rule(
        &loki,
        with_md(1, 64 * 1024),
        Reason::StructuredMetadataTooLarge,
        "too large",
    );
    loki.set_limits(Limits {
        allow_structured_metadata: false,
        ..Limits::default()
    });
    check_rule(&loki, with_md(1, 1), Reason::DisallowedStructuredMetadata, "disallowed");
}

fn assert_rejected_whole(resp: &HttpResponse, loki: &Receiver, fragment: &str) {
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains(fragment), "{}", resp.text());
    assert_eq!(loki.entry_count(), 0);
}

#[test]
fn invalid_utf8_in_a_line_rejects_the_request() {
    let loki = Receiver::start();
    let req = PushRequest::new(vec![stream(GOOD, "marker-XYZ")]);
    let mut raw = req.encode_to_vec();
    let at = raw.windows(3).position(|w| w == b"XYZ").unwrap();
    raw[at] = 0xff;
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let resp = client::post(&loki.url(), &[("Content-Type", "application/x-protobuf")], &body).unwrap();
    assert_rejected_whole(&resp, &loki, "UTF-8");
}

#[test]
fn undecodable_bodies_get_400() {
    let loki = Receiver::start();
    let ct = [("Content-Type", "application/x-protobuf")];
    let resp = client::post(&loki.url(), &ct, b"\xff\xff\xff\xffnot snappy").unwrap();
    assert_rejected_whole(&resp, &loki, "snappy");
    // Valid snappy, not a PushRequest.
    let junk = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff").unwrap();
    let resp = client::post(&loki.url(), &ct, &junk).unwrap();
    assert_rejected_whole(&resp, &loki, "proto");
    // Framed snappy (the wrong snappy format) is not accepted either.
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut framed, &req_bytes()).unwrap();
    let resp = client::post(&loki.url(), &ct, &framed.into_inner().unwrap()).unwrap();
    assert_rejected_whole(&resp, &loki, "snappy");
    let resp = client::post(&loki.url(), &[("Content-Type", "application/json")], b"{").unwrap();
    assert_rejected_whole(&resp, &loki, "JSON");
    assert!(loki.wait_for_requests(4, Duration::from_secs(1)));
}

fn req_bytes() -> Vec<u8> {
    PushRequest::new(vec![stream(GOOD, "x")]).encode_to_vec()
}

#[test]
fn many_failures_are_summarised() {
    let loki = Receiver::start();
    let now = now_nanos();
    let entries = (0..50)
        .map(|i| EntryAdapter::new(now + 3600 * 1_000_000_000 + i, "future"))
        .collect();
    let req = PushRequest::new(vec![StreamAdapter::new(GOOD, entries)]);
    let resp = push_protobuf(&loki.url(), &req).unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text().matches("too_far_in_future").count(), 20);
    assert!(resp.text().contains("50 entries rejected in total (0 stored)"));
}
