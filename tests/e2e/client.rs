//! What Loki sees of the client: protobuf + snappy with tenant and credentials headers; a 413 splits
//! the batch instead of losing it.

use crate::support::{wait_entries, write_tagged, Agent, Env, CLIENT};
use shipper_testkit::{assert_exact, Account, Fault, Format, LogWriter};

#[test]
fn tenant_and_basic_auth_headers() {
    let env = Env::new();
    let pass = env.path("secrets/password");
    std::fs::write(&pass, "s3cret\n").unwrap();
    let client = CLIENT.replace("URL", &env.loki.url())
        + &format!(
            "  tenant_id: team-a\n  basic_auth:\n    username: shipper\n    password_file: {}\n",
            pass.display()
        );
    // base64("shipper:s3cret")
    env.loki.set_auth(Some("Basic c2hpcHBlcjpzM2NyZXQ="));
    let agent = Agent::start(&env.config("app/*.log", &client));
    write_tagged(
        &mut LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap(),
        0,
        0..1_000,
    );
    wait_entries(&env, &agent, 1_000, 30);
    let reqs = env.loki.requests();
    assert!(reqs.iter().all(|r| r.org_id.as_deref() == Some("team-a")), "{reqs:?}");
    assert!(reqs
        .iter()
        .all(|r| r.content_type.as_deref() == Some("application/x-protobuf")));
    assert!(reqs
        .iter()
        .all(|r| r.user_agent.as_deref().is_some_and(|u| u.starts_with("shipper/"))));
    assert!(!agent.log().contains("s3cret"), "the password must never be logged");
    agent.stop();
}

#[test]
fn bearer_token_from_file() {
    let env = Env::new();
    let token = env.path("secrets/token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let client = CLIENT.replace("URL", &env.loki.url()) + &format!("  bearer_token_file: {}\n", token.display());
    env.loki.set_auth(Some("Bearer tok-123"));
    let agent = Agent::start(&env.config("app/*.log", &client));
    write_tagged(
        &mut LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap(),
        0,
        0..500,
    );
    wait_entries(&env, &agent, 500, 30);
    assert_eq!(env.loki.with_state(|s| s.count_status(401)), 0);
    assert!(!agent.log().contains("tok-123"), "the token must never be logged");
    agent.stop();
}

#[test]
fn too_large_is_split_not_lost() {
    let env = Env::new();
    env.loki.push_faults([Fault::status(413), Fault::status(413)]);
    let agent = Agent::start(&env.config("app/*.log", ""));
    write_tagged(
        &mut LogWriter::create(env.path("app/a.log"), Format::Cri).unwrap(),
        0,
        0..5_000,
    );
    wait_entries(&env, &agent, 5_000, 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_exact(&Account::from_streams(&env.loki.streams(), [(0, 5_000)]));
    assert_eq!(agent.metric("shipper_batches_total{status=\"413\"}"), 2.0);
    agent.stop();
}
