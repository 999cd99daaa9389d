//! The pieces together: tagged lines written like containerd, shipped by a naive retrying
//! pusher through scripted faults, accounted exactly at the receiver.

use std::time::Duration;

use shipper_testkit::client::push_protobuf;
use shipper_testkit::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use shipper_testkit::time::now_nanos;
use shipper_testkit::{assert_no_loss, tag_line, varied_len, Fault, Format, LogWriter, Receiver};

/// Lines of a CRI file, P records joined (single stream writer, so no per-stream state).
/// Read as bytes: a 16 KiB split may cut a UTF-8 character in two records.
fn cri_messages(path: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut partial = Vec::new();
    let data = std::fs::read(path).unwrap();
    for rec in data.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
        let mut parts = rec.splitn(4, |&b| b == b' ');
        let (_ts, _stream, tag) = (parts.next(), parts.next(), parts.next().unwrap());
        partial.extend_from_slice(parts.next().unwrap());
        if tag == b"F" {
            out.push(String::from_utf8(std::mem::take(&mut partial)).unwrap());
        }
    }
    out
}

/// Pushes `lines` in batches, retrying each batch until it gets 204.
fn ship(url: &str, labels: &str, lines: &[String]) -> usize {
    let mut attempts = 0;
    for batch in lines.chunks(100) {
        let req = PushRequest::new(vec![StreamAdapter::new(
            labels,
            batch
                .iter()
                .map(|l| EntryAdapter::new(now_nanos(), l.as_str()))
                .collect(),
        )]);
        loop {
            attempts += 1;
            match push_protobuf(url, &req) {
                Ok(r) if r.status == 204 => break,
                Ok(r) => assert!(r.status == 429 || r.status >= 500, "{}: {}", r.status, r.text()),
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    attempts
}

#[test]
fn faults_cost_duplicates_but_never_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods/monitoring_logger_uid/logger/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    for seq in 0..1000 {
        w.write_line("stdout", &tag_line(3, seq, varied_len(seq, 10, 20_000)))
            .unwrap();
    }
    drop(w);
    let lines = cri_messages(&path);
    assert_eq!(lines.len(), 1000);

    let loki = Receiver::start();
    loki.push_faults([
        Fault::status(503),
        Fault::ResetAfterStore,
        Fault::rate_limited(0),
        Fault::ResetMidBody,
        Fault::StatusAfterStore {
            code: 500,
            retry_after: None,
            body: "ingester went away".into(),
        },
    ]);
    let attempts = ship(&loki.url(), r#"{namespace="monitoring", app="logger"}"#, &lines);
    assert_eq!(attempts, 10 + 5);
    assert_eq!(loki.pending_faults(), 0);

    let account = loki.account([(3, 1000)]);
    assert_no_loss(&account, 200);
    // ResetAfterStore and StatusAfterStore each landed one batch that was then sent again.
    assert_eq!(account.duplicated(), 200, "{account}");
    assert_eq!(account.out_of_order(), 0);
    assert!(!account.is_exact());
}
