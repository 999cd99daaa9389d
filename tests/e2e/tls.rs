//! The agent over HTTPS: it trusts the CA it is given (and only that, or the system's), presents a
//! client certificate for mutual TLS, and verifies `server_name` instead of the URL's host. A TLS
//! failure is a network error: the batch is retried, not dropped, and SIGTERM still exits cleanly.

use crate::support::{assert_exact_or_log, tail, wait_entries, wait_metric, write_tagged, Agent, Env, CLIENT};
use shipper_testkit::{Account, Format, LogWriter, Receiver, TlsOptions};
use std::time::{Duration, Instant};

const NETWORK_RETRIES: &str = "shipper_push_retries_total{reason=\"network\"}";

/// What goes in `client.tls`.
#[derive(Default)]
struct Tls<'a> {
    ca_file: bool,
    client_cert: bool,
    server_name: Option<&'a str>,
}

/// A `client:` section pushing to `url`, with the test PKI's files written under `pki/` as asked.
fn client(env: &Env, url: &str, tls: Tls<'_>) -> String {
    let pki = env.loki.pki().expect("a TLS receiver");
    let write = |name: &str, pem: &str| {
        let p = env.path(&format!("pki/{name}"));
        std::fs::write(&p, pem).expect("write PEM");
        p
    };
    let mut section = String::new();
    if tls.ca_file {
        let ca = write("ca.pem", pki.ca_pem());
        section += &format!("    ca_file: {}\n", ca.display());
    }
    if tls.client_cert {
        let cert = write("client.pem", pki.client_cert_pem());
        let key = write("client-key.pem", pki.client_key_pem());
        section += &format!("    cert_file: {}\n    key_file: {}\n", cert.display(), key.display());
    }
    if let Some(name) = tls.server_name {
        section += &format!("    server_name: {name}\n");
    }
    let mut client = CLIENT.replace("URL", url);
    if !section.is_empty() {
        client += "  tls:\n";
        client += &section;
    }
    client
}

/// `env.config` with `shutdown_timeout: 3s` (the setting these tests are about, with the SIGTERM
/// one), so that stopping an agent whose batch can never be delivered is quick.
fn config(env: &Env, client: &str) -> std::path::PathBuf {
    env.config("app/*.log", &format!("{client}shutdown_timeout: 3s\n"))
}

fn https_by_address(loki: &Receiver) -> String {
    format!("https://127.0.0.1:{}/loki/api/v1/push", loki.addr().port())
}

fn write_lines(env: &Env, n: u64) {
    write_tagged(
        &mut LogWriter::create(env.path("app/a.log"), Format::Cri).expect("create log"),
        0,
        0..n,
    );
}

/// The agent cannot get its batch through: it retries it as a network error, logs one of
/// `expected` (the TLS error it saw), the receiver stores nothing and saw the handshake fail;
/// SIGTERM still exits 0 within `shutdown_timeout` (3 s).
fn assert_refused_then_stop(env: &Env, agent: Agent, expected: &[&str]) {
    wait_metric(&agent, NETWORK_RETRIES, 2.0, 15);
    assert!(
        env.loki
            .wait_for(|s| !s.tls_failures().is_empty(), Duration::from_secs(5)),
        "the receiver saw no failed handshake"
    );
    assert_eq!(env.loki.entry_count(), 0, "stored without a valid handshake");
    assert!(
        env.loki.requests().is_empty(),
        "a request got through: {:?}",
        env.loki.requests()
    );
    assert_eq!(agent.metric("shipper_batches_total{status=\"2xx\"}"), 0.0);
    let log = agent.log();
    assert!(
        log.contains("push failed, retrying") && expected.iter().any(|e| log.contains(e)),
        "the agent's log does not mention any of {expected:?}; tail:\n{}",
        tail(&log, 40)
    );
    // Retried, never given up on: nothing dropped.
    assert!(!log.contains("giving up on a batch"), "{}", tail(&log, 40));
    let start = Instant::now();
    agent.stop();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "SIGTERM took {took:?} with shutdown_timeout 3s"
    );
}

/// An agent trusting the test CA by `ca_file` ships 2,000 lines; all arrive once, in order.
fn ship_2000_trusting_the_ca(env: &Env) -> Agent {
    let tls = Tls {
        ca_file: true,
        ..Tls::default()
    };
    let agent = Agent::start(&config(env, &client(env, &env.loki.url(), tls)));
    write_lines(env, 2_000);
    wait_entries(env, &agent, 2_000, 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 2_000)]), &agent);
    agent
}

#[test]
fn custom_ca_delivers_everything() {
    let env = Env::with_receiver(Receiver::start_tls(TlsOptions::server_only()));
    assert!(env.loki.url().starts_with("https://localhost:"));
    let agent = ship_2000_trusting_the_ca(&env);
    let reqs = env.loki.requests();
    assert!(reqs.iter().all(|r| r.status == Some(204)), "{reqs:?}");
    assert!(env.loki.tls_failures().is_empty(), "{:?}", env.loki.tls_failures());
    assert_eq!(agent.metric(NETWORK_RETRIES), 0.0);
    agent.stop();
}

#[test]
fn system_roots_do_not_trust_the_test_ca() {
    let env = Env::with_receiver(Receiver::start_tls(TlsOptions::server_only()));
    let client = client(&env, &env.loki.url(), Tls::default());
    assert!(!client.contains("tls:"));
    let agent = Agent::start(&config(&env, &client));
    write_lines(&env, 100);
    assert_refused_then_stop(&env, agent, &["invalid peer certificate: UnknownIssuer"]);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let env = Env::with_receiver(Receiver::start_tls(TlsOptions::mutual()));
    write_lines(&env, 2_000);

    // Trusts the server but has no certificate: refused, retried, nothing lost. In TLS 1.3 the
    // client's side of the handshake is done before the server checks its certificate, so the
    // agent sees the server's alert only if it reads it before writing the request; otherwise
    // the write fails (broken pipe, reset). The receiver's record says why.
    let without = client(
        &env,
        &env.loki.url(),
        Tls {
            ca_file: true,
            ..Tls::default()
        },
    );
    let agent = Agent::start(&config(&env, &without));
    assert_refused_then_stop(&env, agent, &["CertificateRequired", "Broken pipe", "Connection reset"]);
    assert!(
        env.loki.tls_failures().iter().any(|f| f.contains("no certificates")),
        "{:?}",
        env.loki.tls_failures()
    );

    // With it: everything, exactly once (the first agent acknowledged nothing).
    let with = client(
        &env,
        &env.loki.url(),
        Tls {
            ca_file: true,
            client_cert: true,
            ..Tls::default()
        },
    );
    let failures = env.loki.tls_failures().len();
    let agent = Agent::start(&config(&env, &with));
    wait_entries(&env, &agent, 2_000, 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 2_000)]), &agent);
    assert_eq!(env.loki.tls_failures().len(), failures, "{:?}", env.loki.tls_failures());
    assert_eq!(agent.metric(NETWORK_RETRIES), 0.0);
    agent.stop();
}

#[test]
fn server_name_overrides_the_url_host() {
    let env = Env::with_receiver(Receiver::start_tls(TlsOptions::server_only()));
    let url = https_by_address(&env.loki);
    write_lines(&env, 1_000);

    // The certificate is for `localhost` and `loki.test`, not for 127.0.0.1.
    let by_address = client(
        &env,
        &url,
        Tls {
            ca_file: true,
            ..Tls::default()
        },
    );
    let agent = Agent::start(&config(&env, &by_address));
    assert_refused_then_stop(&env, agent, &["certificate not valid for name"]);

    // Same URL, verifying `loki.test` instead: delivers.
    let named = client(
        &env,
        &url,
        Tls {
            ca_file: true,
            server_name: Some("loki.test"),
            ..Tls::default()
        },
    );
    assert!(named.contains(&format!("url: {url}\n")));
    let agent = Agent::start(&config(&env, &named));
    wait_entries(&env, &agent, 1_000, 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 1_000)]), &agent);
    assert_eq!(agent.metric(NETWORK_RETRIES), 0.0);
    agent.stop();
}

/// Handshakes that fail (a TLS terminator answering `handshake_failure`, as during a certificate
/// roll-out or overload) are network errors: retried with backoff, counted, nothing lost or reordered.
#[test]
fn failed_handshakes_are_retried_until_delivered() {
    let env = Env::with_receiver(Receiver::start_tls(TlsOptions::server_only()));
    env.loki.break_handshakes(3);
    let agent = ship_2000_trusting_the_ca(&env);
    let failures = env.loki.tls_failures();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().all(|f| f.contains("injected")), "{failures:?}");
    assert_eq!(agent.metric(NETWORK_RETRIES), 3.0, "{}", agent.metrics());
    let log = agent.log();
    assert!(log.contains("push failed, retrying"), "{}", tail(&log, 40));
    agent.assert_peak_rss_below(64, "failed TLS handshakes");
    agent.stop();
}
