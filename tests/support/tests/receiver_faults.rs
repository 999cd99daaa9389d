//! Scripted faults and modes: statuses in order, resets, stalls, down/up on the same port,
//! auth and tenant checks.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use shipper_testkit::client::{self, push_protobuf};
use shipper_testkit::logproto::{encode_snappy, EntryAdapter, PushRequest, StreamAdapter};
use shipper_testkit::tag::payload;
use shipper_testkit::time::now_nanos;
use shipper_testkit::{Fault, Limits, Receiver};

fn one(line: &str) -> PushRequest {
    PushRequest::new(vec![StreamAdapter::new(
        r#"{app="x"}"#,
        vec![EntryAdapter::new(now_nanos(), line)],
    )])
}

fn push_with_timeout(url: &str, req: &PushRequest, timeout: Duration) -> std::io::Result<u16> {
    let ct = [("Content-Type", "application/x-protobuf")];
    client::request("POST", url, &ct, &encode_snappy(req), timeout).map(|r| r.status)
}

#[test]
fn status_faults_are_consumed_in_order_then_normal_handling_resumes() {
    let loki = Receiver::start();
    let codes = [503, 429, 500, 502, 400, 401, 413];
    loki.push_faults(codes.iter().map(|&c| match c {
        429 => Fault::rate_limited(7),
        c => Fault::status(c),
    }));
    // Other paths do not consume faults.
    assert_eq!(client::get(&format!("{}/ready", loki.base_url())).unwrap().status, 200);
    assert_eq!(loki.pending_faults(), codes.len());
    for &code in &codes {
        let resp = push_protobuf(&loki.url(), &one("x")).unwrap();
        assert_eq!(resp.status, code);
        assert_eq!(resp.header("retry-after"), (code == 429).then_some("7"));
        if code == 429 {
            assert!(resp.text().contains("rate_limited"));
        }
    }
    assert_eq!(loki.entry_count(), 0);
    assert_eq!(push_protobuf(&loki.url(), &one("stored")).unwrap().status, 204);
    assert_eq!(loki.lines(), ["stored"]);
    let recs = loki.requests();
    assert_eq!(recs.len(), 1 + codes.len() + 1);
    assert!(recs[1].fault.as_deref().unwrap().starts_with("Status"));
    assert_eq!(recs.last().unwrap().fault, None);
}

#[test]
fn custom_status_body_and_retry_after() {
    let loki = Receiver::start();
    loki.push_faults([Fault::Status {
        code: 503,
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        body: "upstream connect error".into(),
    }]);
    let resp = push_protobuf(&loki.url(), &one("x")).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (503, "upstream connect error"));
    assert_eq!(resp.header("Retry-After"), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
}

#[test]
fn status_after_store_stores_and_still_fails() {
    let loki = Receiver::start();
    loki.push_faults([Fault::StatusAfterStore {
        code: 429,
        retry_after: None,
        body: "partial".into(),
    }]);
    assert_eq!(push_protobuf(&loki.url(), &one("landed")).unwrap().status, 429);
    assert_eq!(push_protobuf(&loki.url(), &one("landed")).unwrap().status, 204);
    assert_eq!(loki.lines(), ["landed", "landed"]);
}

#[test]
fn reset_mid_body_drops_the_connection_without_answer_or_storage() {
    let loki = Receiver::start();
    loki.push_faults([Fault::ResetMidBody]);
    // A big, poorly compressible body so the reset really comes mid-body.
    let lines: Vec<String> = (0..200).map(|s| payload(1, s, 4000)).collect();
    let req = PushRequest::new(vec![StreamAdapter::new(
        r#"{app="x"}"#,
        lines
            .iter()
            .map(|l| EntryAdapter::new(now_nanos(), l.as_str()))
            .collect(),
    )]);
    let err = push_protobuf(&loki.url(), &req).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    assert!(loki.wait_for_requests(1, Duration::from_secs(5)));
    let rec = &loki.requests()[0];
    assert_eq!(rec.status, None);
    let total = encode_snappy(&req).len();
    assert!(
        rec.body_bytes > 0 && rec.body_bytes < total,
        "{} of {total}",
        rec.body_bytes
    );
    assert_eq!(loki.entry_count(), 0);
    // The next request is handled normally.
    assert_eq!(push_protobuf(&loki.url(), &req).unwrap().status, 204);
    assert_eq!(loki.entry_count(), 200);
}

#[test]
fn reset_after_store_lands_the_data_but_the_client_sees_an_error() {
    let loki = Receiver::start();
    loki.push_faults([Fault::ResetAfterStore]);
    let err = push_protobuf(&loki.url(), &one("landed")).unwrap_err();
    // A real RST (SO_LINGER 0), not an orderly close.
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    assert_eq!(loki.lines(), ["landed"]);
    assert!(loki.wait_for_requests(1, Duration::from_secs(5)));
    assert_eq!(loki.requests()[0].status, None);
}

#[test]
fn stall_outlasting_the_client_timeout_stores_nothing() {
    let loki = Receiver::start();
    loki.push_faults([
        Fault::Stall(Duration::from_millis(600)),
        Fault::Stall(Duration::from_millis(100)),
    ]);
    let started = Instant::now();
    let err = push_with_timeout(&loki.url(), &one("gave up"), Duration::from_millis(150)).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(550));
    // The client closed its connection; when the stall ends nothing is stored.
    assert!(loki.wait_for_requests(1, Duration::from_secs(5)));
    assert_eq!(loki.requests()[0].status, None);
    assert_eq!(loki.entry_count(), 0);
    // A patient client gets its answer after the stall.
    let status = push_with_timeout(&loki.url(), &one("waited"), Duration::from_secs(5)).unwrap();
    assert_eq!(status, 204);
    assert_eq!(loki.lines(), ["waited"]);
}

#[test]
fn stalled_mode_hangs_every_request_until_released() {
    let loki = Receiver::start();
    loki.set_stalled(true);
    let err = push_with_timeout(&loki.url(), &one("gave up"), Duration::from_millis(200)).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    let url = loki.url();
    let patient =
        std::thread::spawn(move || push_with_timeout(&url, &one("released"), Duration::from_secs(10)).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(loki.entry_count(), 0);
    loki.set_stalled(false);
    assert_eq!(patient.join().unwrap(), 204);
    assert!(loki.wait_for_requests(2, Duration::from_secs(5)));
    assert_eq!(loki.lines(), ["released"]);
}

#[test]
fn down_refuses_connections_and_up_rebinds_the_same_port() {
    let loki = Receiver::start();
    let addr = loki.addr();
    // An idle keep-alive connection opened before going down.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    loki.set_down(true);
    assert!(loki.is_down());
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let err = push_protobuf(&loki.url(), &one("x")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // The open connection was closed too.
    let mut buf = [0u8; 16];
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("idle connection still open: {other:?}"),
    }
    loki.set_down(true); // idempotent

    loki.set_down(false);
    assert!(!loki.is_down());
    assert_eq!(loki.addr(), addr);
    assert_eq!(push_protobuf(&loki.url(), &one("after")).unwrap().status, 204);
    // Several cycles in a row.
    for i in 0..3 {
        loki.set_down(true);
        assert!(TcpStream::connect(addr).is_err());
        loki.set_down(false);
        assert_eq!(
            push_protobuf(&loki.url(), &one(&format!("cycle {i}"))).unwrap().status,
            204
        );
    }
    assert_eq!(loki.entry_count(), 4);
}

#[test]
fn down_drops_in_flight_requests() {
    let loki = Receiver::start();
    loki.set_stalled(true);
    let url = loki.url();
    let client = std::thread::spawn(move || push_with_timeout(&url, &one("in flight"), Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(200));
    loki.set_down(true);
    assert!(client.join().unwrap().is_err());
    loki.set_stalled(false);
    loki.set_down(false);
    assert!(loki.wait_for_requests(1, Duration::from_secs(5)));
    assert_eq!(loki.requests()[0].status, None);
    assert_eq!(loki.entry_count(), 0);
}

#[test]
fn auth_and_tenant() {
    let loki = Receiver::start_with(Limits {
        require_tenant: true,
        ..Limits::default()
    });
    let body = encode_snappy(&one("x"));
    let post = |headers: &[(&str, &str)]| client::post(&loki.url(), headers, &body).unwrap();
    let resp = post(&[]);
    assert_eq!((resp.status, resp.text().trim()), (401, "no org id"));
    assert_eq!(post(&[("X-Scope-OrgID", "t1")]).status, 204);

    loki.set_auth(Some("Basic dXNlcjpwYXNz"));
    assert_eq!(post(&[("X-Scope-OrgID", "t1")]).status, 401);
    assert_eq!(
        post(&[("X-Scope-OrgID", "t1"), ("Authorization", "Basic bad")]).status,
        401
    );
    let ok = [("X-Scope-OrgID", "t1"), ("Authorization", "Basic dXNlcjpwYXNz")];
    assert_eq!(post(&ok).status, 204);
    loki.set_auth(None);
    assert_eq!(post(&[("X-Scope-OrgID", "t1")]).status, 204);
    assert_eq!(loki.entry_count(), 3);
}

#[test]
fn dropping_the_receiver_closes_the_port() {
    let loki = Receiver::start();
    let addr = loki.addr();
    loki.set_stalled(true);
    let mut hanging = TcpStream::connect(addr).unwrap();
    let body = encode_snappy(&one("x"));
    let head = format!(
        "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    hanging.write_all(head.as_bytes()).unwrap();
    hanging.write_all(&body).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(loki);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        TcpStream::connect(addr).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_inside_a_tokio_runtime() {
    let loki = Receiver::start();
    let url = loki.url();
    let status = tokio::task::spawn_blocking(move || push_protobuf(&url, &one("async")).unwrap().status)
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(loki.lines(), ["async"]);
    drop(loki);
}
