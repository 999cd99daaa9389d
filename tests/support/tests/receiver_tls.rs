//! The TLS receiver: same behaviour as the plain one behind a handshake with a runtime-generated
//! PKI; optional client certificates; failed handshakes are recorded and harm nothing.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use shipper_testkit::client::{self, request_tls};
use shipper_testkit::logproto::{encode_snappy, EntryAdapter, PushRequest, StreamAdapter};
use shipper_testkit::time::now_nanos;
use shipper_testkit::{Fault, Receiver, TestPki, TlsOptions};

const TIMEOUT: Duration = Duration::from_secs(10);

fn body(lines: &[&str]) -> Vec<u8> {
    let now = now_nanos();
    encode_snappy(&PushRequest::new(vec![StreamAdapter::new(
        r#"{job="tls"}"#,
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| EntryAdapter::new(now + i as i64, *l))
            .collect(),
    )]))
}

fn push(tls: &Arc<rustls::ClientConfig>, url: &str, lines: &[&str]) -> std::io::Result<client::HttpResponse> {
    request_tls(
        tls,
        "POST",
        url,
        &[("Content-Type", "application/x-protobuf")],
        &body(lines),
        TIMEOUT,
    )
}

#[test]
fn push_over_tls_is_stored_and_answered_204() {
    let loki = Receiver::start_tls(TlsOptions::server_only());
    let port = loki.addr().port();
    assert_eq!(loki.url(), format!("https://localhost:{port}/loki/api/v1/push"));
    assert_eq!(loki.base_url(), format!("https://localhost:{port}"));
    assert!(loki.addr().ip().is_loopback());
    let pki = loki.pki().expect("a TLS receiver has a PKI");
    assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pki.client_cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pki.client_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_ne!(pki.ca_pem(), pki.server_cert_pem());

    let resp = push(&pki.client_config(false), &loki.url(), &["one", "two"]).unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(loki.lines(), ["one", "two"]);
    assert_eq!(loki.requests().len(), 1);
    assert!(loki.tls_failures().is_empty(), "{:?}", loki.tls_failures());

    // Other routes too.
    let ready = request_tls(
        &pki.client_config(false),
        "GET",
        &format!("{}/ready", loki.base_url()),
        &[],
        &[],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(ready.status, 200);
    assert_eq!(ready.text(), "ready\n");
}

#[test]
fn the_certificate_is_for_both_names_but_not_the_address() {
    let loki = Receiver::start_tls(TlsOptions::server_only());
    let tls = loki.pki().unwrap().client_config(false);
    assert_eq!(shipper_testkit::receiver::SERVER_NAMES, ["localhost", "loki.test"]);

    // `loki.test` resolves nowhere: connect to the address, verify the name.
    let name = rustls::pki_types::ServerName::try_from("loki.test").unwrap();
    let conn = rustls::ClientConnection::new(tls.clone(), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(loki.addr()).unwrap());
    stream.sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: loki.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");

    // No IP address SAN: `https://127.0.0.1:<port>` without a name override fails.
    let by_addr = format!("https://127.0.0.1:{}/loki/api/v1/push", loki.addr().port());
    let err = push(&tls, &by_addr, &["x"]).expect_err("the certificate has no IP address SAN");
    assert!(err.to_string().contains("certificate not valid for name"), "{err}");
    assert!(loki.wait_for(|s| !s.tls_failures().is_empty(), TIMEOUT));
    assert_eq!(loki.entry_count(), 0);
    assert!(loki.requests().iter().all(|r| r.path == "/ready"));
}

#[test]
fn an_untrusted_client_fails_the_handshake_and_nothing_else() {
    let loki = Receiver::start_tls(TlsOptions::server_only());
    let other = TestPki::generate();
    let err = push(&other.client_config(false), &loki.url(), &["lost"]).expect_err("the CA is not trusted");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(loki.wait_for(|s| s.tls_failures().len() == 1, TIMEOUT));
    assert!(loki.requests().is_empty());

    // Plain HTTP to the TLS port is not served either.
    let plain = format!("http://{}/loki/api/v1/push", loki.addr());
    let resp = client::post(&plain, &[("Content-Type", "application/x-protobuf")], &body(&["lost"]));
    assert!(resp.is_err(), "{resp:?}");
    assert!(loki.wait_for(|s| s.tls_failures().len() == 2, TIMEOUT));

    // And the receiver goes on.
    let resp = push(&loki.pki().unwrap().client_config(false), &loki.url(), &["kept"]).unwrap();
    assert_eq!(resp.status, 204);
    assert_eq!(loki.lines(), ["kept"]);
    loki.clear();
    assert!(loki.tls_failures().is_empty());
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let loki = Receiver::start_tls(TlsOptions::mutual());
    let pki = loki.pki().unwrap();

    // No certificate: TLS 1.3 finishes the client's side of the handshake first, so the refusal
    // may come on the write or on the read.
    let err = push(&pki.client_config(false), &loki.url(), &["lost"]).expect_err("no client certificate");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    assert!(loki.wait_for(|s| !s.tls_failures().is_empty(), TIMEOUT));
    let failures = loki.tls_failures();
    assert!(failures[0].contains("no certificates"), "{failures:?}");

    // A certificate from another CA.
    let other = TestPki::generate();
    let tls = {
        // Trusts our server but presents a client certificate the receiver's CA did not sign.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let cert = CertificateDer::from_pem_slice(other.client_cert_pem().as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(other.client_key_pem().as_bytes()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(vec![cert], key)
                .unwrap(),
        )
    };
    assert!(push(&tls, &loki.url(), &["lost"]).is_err());
    assert!(loki.wait_for(|s| s.tls_failures().len() == 2, TIMEOUT));
    assert!(
        loki.tls_failures()[1].contains("UnknownIssuer"),
        "{:?}",
        loki.tls_failures()
    );

    // The right one.
    let resp = push(&pki.client_config(true), &loki.url(), &["kept"]).unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(loki.lines(), ["kept"]);
    assert_eq!(loki.requests().len(), 1);
}

#[test]
fn faults_and_down_work_the_same_over_tls() {
    let loki = Receiver::start_tls(TlsOptions::server_only());
    let tls = loki.pki().unwrap().client_config(false);
    loki.push_faults([Fault::status(503)]);
    let resp = push(&tls, &loki.url(), &["a"]).unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(loki.entry_count(), 0);

    loki.set_down(true);
    assert!(push(&tls, &loki.url(), &["b"]).is_err());
    loki.set_down(false);
    // Still TLS after coming back up.
    let resp = push(&tls, &loki.url(), &["c"]).unwrap();
    assert_eq!(resp.status, 204);
    assert_eq!(loki.lines(), ["c"]);
    assert!(loki.pki().is_some());
}

#[test]
fn a_plain_receiver_has_no_pki() {
    let loki = Receiver::start();
    assert!(loki.pki().is_none());
    assert!(loki.url().starts_with("http://127.0.0.1:"));
    assert!(loki.tls_failures().is_empty());
}

#[test]
fn each_pki_is_new() {
    let a = TestPki::generate();
    let b = TestPki::generate();
    assert_ne!(a.ca_pem(), b.ca_pem());
    assert_ne!(a.client_key_pem(), b.client_key_pem());
}
