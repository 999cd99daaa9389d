//! Loki refusing the agent's requests themselves — 401 (no tenant, wrong credentials), 403, 404 (a
//! wrong URL) — is a setting to fix, not lines to lose: the batch is held and retried, the positions
//! stay, reading pauses as in an outage, the agent stays ready, and once Loki takes the pushes every
//! line arrives, through kubelet's rotation and a SIGKILL in the middle.

use crate::support::{saved_files, wait_all, wait_metric, Agent, Env};
use shipper_testkit::{assert_no_loss, tag_line, varied_len, Account, Format, LogWriter};
use std::time::{Duration, Instant};

const FILES: u32 = 4;
const PER_FILE: u64 = 30_000;
const BLOCKED: &str = "shipper_push_blocked{reason=\"unauthorized\"}";
const REFUSED: &str = "Loki refuses every push of this agent";

/// Writes PER_FILE lines to each of FILES container logs over `over`, rotating each like kubelet
/// every 512 KiB (every rotated file kept).
fn write_rotating(env: &Env, over: Duration) -> std::thread::JoinHandle<u32> {
    let paths: Vec<_> = (0..FILES)
        .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")))
        .collect();
    std::thread::spawn(move || {
        let mut ws: Vec<(LogWriter, u64)> = paths
            .iter()
            .map(|p| (LogWriter::create(p, Format::Cri).unwrap(), 0))
            .collect();
        let (step, started, mut rotations) = (100u64, Instant::now(), 0);
        for pass in 0..PER_FILE / step {
            for (f, (w, since)) in ws.iter_mut().enumerate() {
                for s in pass * step..(pass + 1) * step {
                    let line = tag_line(f as u32, s, varied_len(s, 80, 300));
                    *since += line.len() as u64 + 40;
                    w.write_line("stdout", &line).unwrap();
                }
                w.flush().unwrap();
                if *since >= 512 << 10 {
                    w.rotate_kubelet().unwrap();
                    (*since, rotations) = (0, rotations + 1);
                }
            }
            let due = started + over * (pass + 1) as u32 / (PER_FILE / step) as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        rotations
    })
}

/// Every offset the positions file holds is 0: nothing was acknowledged, so nothing may be saved
/// past the start.
fn assert_nothing_saved_past_the_start(env: &Env, when: &str) {
    let moved: Vec<_> = saved_files(env)
        .into_iter()
        .filter(|f| f["offset"].as_u64() != Some(0))
        .collect();
    assert!(
        moved.is_empty(),
        "{when}: positions moved while Loki refused every push: {moved:?}"
    );
}

#[test]
fn a_minute_of_401_through_rotation_and_a_sigkill_loses_nothing() {
    let env = Env::new();
    // Loki wants credentials the agent was not given: every push is answered 401.
    env.loki.set_auth(Some("Bearer the-token-the-agent-lacks"));
    let config = env.config("pods/*/*/*.log", "");
    let started = Instant::now();
    let agent = Agent::start(&config);
    let writer = write_rotating(&env, Duration::from_secs(40));
    wait_metric(&agent, BLOCKED, 1.0, 30);
    assert!(agent.is_ready(), "/ready stays ready while Loki refuses the pushes");

    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    assert_nothing_saved_past_the_start(&env, "before the SIGKILL");
    agent.kill();
    let agent = Agent::start(&config);
    wait_metric(&agent, BLOCKED, 1.0, 30);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    assert!(agent.is_ready(), "/ready stays ready while Loki refuses the pushes");
    assert_nothing_saved_past_the_start(&env, "after a minute of 401");
    assert_eq!(env.loki.entry_count(), 0);
    let refused = env.loki.with_state(|s| s.count_status(401));
    // One ERROR when the hold starts, then one a minute: each agent ran under a minute of it.
    let errors: Vec<usize> = env.agent_logs().iter().map(|l| l.matches(REFUSED).count()).collect();
    assert_eq!(errors, [1, 1], "{refused} pushes refused");

    // The operator fixes the credentials (here: Loki stops asking for them).
    env.loki.set_auth(None);
    let rotations = writer.join().unwrap();
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    wait_all(&env, &agent, &expected, 300);
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    eprintln!(
        "401 for {} s ({refused} pushes refused, {rotations} rotations, 1 SIGKILL), then 204: {account}",
        started.elapsed().as_secs()
    );
    assert_no_loss(&account, 0);
    assert_eq!(agent.metric(BLOCKED), 0.0, "{}", agent.metrics());
    assert_eq!(
        agent.metric("shipper_dropped_entries_total{reason=\"unauthorized\"}"),
        0.0
    );
    assert!(
        agent.log().contains("Loki takes the pushes again"),
        "{}",
        agent.log_tail()
    );
    agent.stop();
}

/// `client.drop_on_client_error: true` (the setting this test is about) gives the behaviour of
/// Promtail and Vector: a batch Loki refuses with 401 is dropped and counted, and the positions move
/// on past it.
#[test]
fn drop_on_client_error_drops_and_counts_what_loki_refuses() {
    let env = Env::new();
    env.loki.set_auth(Some("Bearer the-token-the-agent-lacks"));
    let client = crate::support::CLIENT.replace("URL", &env.loki.url()) + "  drop_on_client_error: true\n";
    let agent = Agent::start(&env.config("app/*.log", &client));
    let path = env.path("app/app.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..100);
    wait_metric(
        &agent,
        "shipper_dropped_entries_total{reason=\"unauthorized\"}",
        100.0,
        30,
    );
    assert_eq!(agent.metric(BLOCKED), 0.0, "nothing is held");
    env.loki.set_auth(None);
    crate::support::write_tagged(&mut w, 0, 100..200);
    crate::support::wait_entries(&env, &agent, 100, 30);
    let account = Account::from_streams(&env.loki.streams(), [(0, 200)]);
    assert_eq!((account.lost(), account.duplicated()), (100, 0), "{account}");
    assert_eq!(
        agent.metric("shipper_dropped_entries_total{reason=\"unauthorized\"}"),
        100.0
    );
    agent.stop();
}

/// The fix made by a reload: Loki wants a bearer token the agent lacks; a config reload that gives
/// it the token sends the held batch with the new client at once, not after the backoff (here 10
/// minutes, the setting this test is about), and every line arrives once.
#[test]
fn a_reload_with_the_missing_token_sends_the_held_lines_at_once() {
    let env = Env::new();
    env.loki.set_auth(Some("Bearer the-token"));
    let client = format!(
        "client:\n  url: {}\n  backoff:\n    min_period: 10m\n    max_period: 10m\n",
        env.loki.url()
    );
    let config = env.config("app/*.log", &client);
    let agent = Agent::start(&config);
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..1_000);
    wait_metric(&agent, BLOCKED, 1.0, 30);
    assert_eq!(env.loki.entry_count(), 0);

    let token = env.path("token");
    std::fs::write(&token, "the-token\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let fixed = text.replace(
        "  backoff:\n",
        &format!("  bearer_token_file: {}\n  backoff:\n", token.display()),
    );
    assert_ne!(text, fixed);
    std::fs::write(&config, fixed).unwrap();
    let reloaded = Instant::now();
    let (status, body) = agent.post_reload();
    assert_eq!(status, 200, "{body}");
    let account = wait_all(&env, &agent, &[(0, 1_000)], 120);
    let took = reloaded.elapsed();
    assert_no_loss(&account, 0);
    assert!(
        took < Duration::from_secs(300),
        "the held lines waited {took:?} after the reload: the old client's backoff, not the fix"
    );
    // The pusher clears the gauge once the push that Loki took has returned: a moment after the
    // receiver holds the lines.
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.metric(BLOCKED) != 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.metric(BLOCKED), 0.0, "{}", agent.log_tail());
    assert!(
        agent.log().contains("a reload changed this client"),
        "{}",
        agent.log_tail()
    );
    eprintln!("401 until a reload gave the token: 1,000 lines arrived {took:?} after it");
    agent.stop();
}
