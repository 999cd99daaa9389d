//! The receiver accepts real pushes: protobuf + snappy, JSON (plain, gzip, deflate), over real
//! HTTP/1.1, and stores them per normalized stream.

use std::io::Write;
use std::time::Duration;

use shipper_testkit::client::{self, push_json, push_protobuf};
use shipper_testkit::logproto::{encode_snappy, EntryAdapter, PushRequest, StreamAdapter};
use shipper_testkit::time::now_nanos;
use shipper_testkit::{Limits, Receiver};

fn request(labels: &str, lines: &[&str]) -> PushRequest {
    let now = now_nanos();
    PushRequest::new(vec![StreamAdapter::new(
        labels,
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| EntryAdapter::new(now + i as i64, *l))
            .collect(),
    )])
}

#[test]
fn protobuf_push_is_stored_and_answered_204() {
    let loki = Receiver::start();
    let req = request(r#"{namespace="monitoring", app="logger"}"#, &["one", "two"]);
    let body = encode_snappy(&req);
    let resp = client::post(
        &loki.url(),
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Scope-OrgID", "tenant-1"),
            ("Authorization", "Bearer t0k3n"),
            ("User-Agent", "shipper/0.1.0"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty());

    let streams = loki.streams();
    let key = r#"{app="logger", namespace="monitoring"}"#;
    let entries = &streams[key];
    assert_eq!(
        entries.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(entries[1].ts_ns - entries[0].ts_ns, 1);
    assert_eq!(loki.entry_count(), 2);
    assert_eq!(loki.stream(r#"{app="logger",namespace="monitoring"}"#).len(), 2);

    let reqs = loki.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.status, Some(204));
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/loki/api/v1/push");
    assert_eq!(r.org_id.as_deref(), Some("tenant-1"));
    assert_eq!(r.authorization.as_deref(), Some("Bearer t0k3n"));
    assert_eq!(r.user_agent.as_deref(), Some("shipper/0.1.0"));
    assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
    assert_eq!(r.content_encoding, None);
    assert_eq!((r.entries, r.stored, r.body_bytes), (2, 2, body.len()));
}

#[test]
fn duplicate_pushes_are_stored_again_and_streams_keep_arrival_order() {
    let loki = Receiver::start();
    let req = request(r#"{app="x"}"#, &["a", "b"]);
    for _ in 0..2 {
        assert_eq!(push_protobuf(&loki.url(), &req).unwrap().status, 204);
    }
    push_protobuf(&loki.url(), &request(r#"{app="y"}"#, &["c"])).unwrap();
    assert_eq!(loki.entry_count(), 5);
    assert_eq!(loki.lines(), ["a", "b", "a", "b", "c"]);
    assert_eq!(loki.streams().len(), 2);
}

#[test]
fn structured_metadata_is_kept() {
    let loki = Receiver::start();
    let mut req = request(r#"{app="x"}"#, &["with metadata"]);
    req.streams[0].entries[0] = req.streams[0].entries[0]
        .clone()
        .with_metadata("trace_id", "abc")
        .with_metadata("pod_uid", "u-1");
    assert_eq!(push_protobuf(&loki.url(), &req).unwrap().status, 204);
    let e = &loki.stream(r#"{app="x"}"#)[0];
    assert_eq!(
        e.structured_metadata,
        vec![
            ("trace_id".to_owned(), "abc".to_owned()),
            ("pod_uid".to_owned(), "u-1".to_owned())
        ]
    );
}

fn json_body() -> String {
    let now = now_nanos();
    format!(
        r#"{{"streams":[{{"stream":{{"namespace":"monitoring","app":"logger"}},
            "values":[["{now}","plain"],["{}","with \"quotes\" é",{{"trace_id":"t1"}}]]}}]}}"#,
        now + 1
    )
}

fn assert_json_stored(loki: &Receiver) {
    let e = loki.stream(r#"{app="logger", namespace="monitoring"}"#);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].line, "plain");
    assert_eq!(e[1].line, "with \"quotes\" é");
    assert_eq!(e[1].structured_metadata, vec![("trace_id".into(), "t1".into())]);
}

#[test]
fn json_push_plain_and_gzip() {
    let loki = Receiver::start();
    let resp = push_json(&loki.url(), &json_body(), false).unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_json_stored(&loki);

    loki.clear();
    let resp = push_json(&loki.url(), &json_body(), true).unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_json_stored(&loki);
    assert_eq!(loki.requests()[0].content_encoding.as_deref(), Some("gzip"));
}

#[test]
fn deflate_encoded_protobuf_is_accepted_and_unknown_encodings_get_415() {
    let loki = Receiver::start();
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&encode_snappy(&request(r#"{app="x"}"#, &["deflated"])))
        .unwrap();
    let body = enc.finish().unwrap();
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "deflate"),
    ];
    assert_eq!(client::post(&loki.url(), &headers, &body).unwrap().status, 204);
    assert_eq!(loki.lines(), ["deflated"]);

    let resp = client::post(&loki.url(), &[("Content-Encoding", "br")], b"xx").unwrap();
    assert_eq!(resp.status, 415);
}

#[test]
fn missing_content_type_means_protobuf_like_loki() {
    let loki = Receiver::start();
    let body = encode_snappy(&request(r#"{app="x"}"#, &["no content type"]));
    assert_eq!(client::post(&loki.url(), &[], &body).unwrap().status, 204);
    assert_eq!(loki.entry_count(), 1);
}

#[test]
fn oversized_bodies_get_413() {
    let loki = Receiver::start_with(Limits {
        max_recv_msg_size: 1024,
        ..Limits::default()
    });
    let big = "x".repeat(4000);
    let resp = push_protobuf(&loki.url(), &request(r#"{app="x"}"#, &[&big])).unwrap();
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(resp.text().contains("request_body_too_large"));
    assert_eq!(loki.entry_count(), 0);
}

#[test]
fn other_paths_and_methods() {
    let loki = Receiver::start();
    assert_eq!(client::get(&format!("{}/ready", loki.base_url())).unwrap().status, 200);
    assert_eq!(client::get(&format!("{}/nope", loki.base_url())).unwrap().status, 404);
    assert_eq!(client::get(&loki.url()).unwrap().status, 405);
    assert_eq!(loki.requests().len(), 3);
}

#[test]
fn empty_push_is_accepted() {
    let loki = Receiver::start();
    let resp = push_protobuf(&loki.url(), &PushRequest::new(vec![])).unwrap();
    assert_eq!(resp.status, 204);
    assert!(loki.wait_for_requests(1, Duration::from_secs(1)));
}

#[test]
fn wait_for_sees_entries_pushed_from_another_thread() {
    let loki = Receiver::start();
    let url = loki.url();
    let pusher = std::thread::spawn(move || {
        for i in 0..20 {
            let line = format!("line {i}");
            push_protobuf(&url, &request(r#"{app="x"}"#, &[&line])).unwrap();
        }
    });
    assert!(loki.wait_for_entries(20, Duration::from_secs(10)));
    assert!(!loki.wait_for_entries(21, Duration::from_millis(50)));
    assert!(loki.wait_for(
        |s| s.requests().iter().all(|r| r.status == Some(204)),
        Duration::from_secs(1)
    ));
    pusher.join().unwrap();
}

#[test]
fn tallying_receiver_counts_pushes_without_storing_them() {
    let loki = Receiver::start_tally([(0, 3), (1, 1)], true);
    let a: Vec<String> = [0, 2, 2].iter().map(|&s| shipper_testkit::tag_line(0, s, 60)).collect();
    let b = [shipper_testkit::tag_line(1, 0, 60)];
    for (labels, lines) in [(r#"{job="a"}"#, &a[..]), (r#"{job="b"}"#, &b[..])] {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let resp = push_protobuf(&loki.url(), &request(labels, &lines)).unwrap();
        assert_eq!(resp.status, 204, "{}", resp.text());
    }
    assert_eq!(loki.entry_count(), 4);
    assert!(loki.streams().is_empty(), "a tallying receiver keeps no lines");
    let account = loki.tally_account().expect("a tallying receiver has an account");
    assert_eq!(
        (account.lost(), account.duplicated(), account.out_of_order()),
        (1, 1, 0)
    );
    assert_eq!(account.file(0).unwrap().missing_ranges(), [(1, 1)]);
    let latencies = loki.latencies_ns();
    assert_eq!(latencies.len(), 4);
    assert!(
        latencies.iter().all(|&l| (0..10_000_000_000).contains(&l)),
        "{latencies:?}"
    );
    assert!(Receiver::start().tally_account().is_none());
}
