//! When positions are written, with the defaults: right after the first scan, as soon as a file is
//! opened or rotated, on acknowledged progress at most every `sync_period`, and never on an idle node;
//! the fingerprint of a file met empty grows with it; and where files start on a new node.

use crate::support::{saved_files, saved_offset, wait_all, wait_entries, write_tagged, Agent, Env};
use shipper_testkit::{tag_line, Account, Format, LogWriter};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until the positions file lists a file with inode `ino`; returns its entry.
pub(crate) fn wait_saved(env: &Env, agent: &Agent, ino: u64, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(f) = saved_files(env).into_iter().find(|f| f["ino"].as_u64() == Some(ino)) {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "inode {ino} not in the positions after {secs} s: {:?}\n{}",
            saved_files(env),
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// Killed right after it is ready, before any `sync_period` went by: the files it found are in the
/// positions already, so their rotation while it is down loses nothing.
#[test]
fn files_found_at_start_are_saved_before_any_period_so_a_crash_then_loses_nothing() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let mut ws: Vec<LogWriter> = (0..3)
        .map(|f| LogWriter::create(env.path(&format!("pods/ns_p{f}_u/c/0.log")), Format::Cri).unwrap())
        .collect();
    for (f, w) in ws.iter_mut().enumerate() {
        write_tagged(w, f as u32, 0..2_000);
    }
    let agent = Agent::start(&config);
    for w in &ws {
        wait_saved(&env, &agent, ino(w.path()), 5);
    }
    agent.kill();
    // While it is down: each file is rotated away twice, kubelet-style, with lines in each.
    for (f, w) in ws.iter_mut().enumerate() {
        for k in 1..3 {
            w.rotate_kubelet().unwrap();
            write_tagged(w, f as u32, k * 2_000..(k + 1) * 2_000);
        }
    }
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..3).map(|f| (f, 6_000)).collect();
    let account = wait_all(&env, &agent, &expected, 60);
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    eprintln!("crash right after start: {account}");
    agent.stop();
}

/// Positions lag behind the disk at worst by the time the agent is down: a pod that appears then,
/// whose file is rotated before the agent is back, is in no positions file; the restart still finds
/// the rotated file next to the new one (renamed since the positions were written) and reads it
/// first.
#[test]
fn a_file_created_and_rotated_while_the_positions_did_not_know_it_is_found() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let mut known = LogWriter::create(env.path("pods/ns_a_u/c/0.log"), Format::Cri).unwrap();
    write_tagged(&mut known, 0, 0..500);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 500, 30);
    agent.kill();
    let mut new = LogWriter::create(env.path("pods/ns_b_u/c/0.log"), Format::Cri).unwrap();
    write_tagged(&mut new, 1, 0..1_000);
    new.rotate_kubelet().unwrap();
    write_tagged(&mut new, 1, 1_000..1_500);
    let agent = Agent::start(&config);
    let account = wait_all(&env, &agent, &[(0, 500), (1, 1_500)], 30);
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    agent.stop();
}

/// A file opened while the agent runs is written to the positions at once, whatever `sync_period`
/// says (an hour here: the setting this test is about), and so is its rotation; acknowledged
/// progress waits for the period, except a run's first (so an agent killed again and again before
/// the period still moves forward).
#[test]
fn opened_and_rotated_files_are_saved_at_once_progress_waits_for_sync_period() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    // The harness names the positions file; this test adds the period it is about.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("positions:\n", "positions:\n  sync_period: 1h\n");
    std::fs::write(&config, text).unwrap();
    let agent = Agent::start(&config);
    let mut w = LogWriter::create(env.path("pods/ns_new_u/c/0.log"), Format::Cri).unwrap();
    let first = wait_saved(&env, &agent, ino(w.path()), 10);
    assert_eq!(first["offset"].as_u64(), Some(0), "{first}");
    write_tagged(&mut w, 0, 0..1_000);
    wait_entries(&env, &agent, 1_000, 30);
    let deadline = Instant::now() + Duration::from_secs(10);
    while saved_offset(&env, w.path()) == 0 {
        assert!(Instant::now() < deadline, "the run's first progress is written at once");
        std::thread::sleep(Duration::from_millis(20));
    }
    write_tagged(&mut w, 0, 1_000..2_000);
    wait_entries(&env, &agent, 2_000, 30);
    std::thread::sleep(Duration::from_millis(1_500));
    let len = std::fs::metadata(w.path()).unwrap().len();
    assert!(
        saved_offset(&env, w.path()) < len,
        "later progress alone is written after sync_period (1h), not at once"
    );
    // A rotation is news for a restart: written at once, with the progress made so far.
    let old = ino(w.path());
    w.rotate_kubelet().unwrap();
    write_tagged(&mut w, 0, 2_000..2_010);
    wait_saved(&env, &agent, ino(w.path()), 10);
    // The rotated file stays until it is read out and acknowledged (then it leaves the positions);
    // while it is there, it is saved with all its lines acknowledged.
    let files = saved_files(&env);
    if let Some(rotated) = files.iter().find(|f| f["ino"].as_u64() == Some(old)) {
        assert_eq!(rotated["offset"].as_u64(), Some(len), "{files:?}");
    }
    wait_entries(&env, &agent, 2_010, 30);
    agent.stop();
}

/// With nothing to ship, nothing is written: an idle node does not touch its disk every second.
#[test]
fn an_idle_agent_writes_no_positions() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    write_tagged(&mut w, 0, 0..500);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 500, 30);
    let writes = "shipper_positions_writes_total{status=\"ok\"}";
    // Acknowledged progress is written within a second; after that the agent is idle.
    std::thread::sleep(Duration::from_millis(2_500));
    let before = agent.metric(writes);
    let saved = std::fs::read(env.dir.path().join("positions.json")).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(agent.metric(writes), before, "{}", agent.metrics());
    assert_eq!(std::fs::read(env.dir.path().join("positions.json")).unwrap(), saved);
    assert_eq!(saved_offset(&env, w.path()), std::fs::metadata(w.path()).unwrap().len());
    agent.stop();
}

/// A file met empty, then written line by line (each read finds only new lines, never an empty
/// read): its fingerprint grows with it, so after a restart a new file that got its inode number
/// is read from its start, not from the old file's offset.
#[test]
fn a_file_met_empty_is_fingerprinted_as_it_grows_and_its_reused_inode_is_a_new_file() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let path = env.path("app/app.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    let agent = Agent::start(&config);
    let old_ino = ino(&path);
    assert_eq!(wait_saved(&env, &agent, old_ino, 10)["fp_len"].as_u64(), Some(0));
    // A steady writer: one line every 5 ms, 400 lines (~70 KiB).
    for i in 0..400 {
        w.write_line("stdout", &tag_line(0, i, 170)).unwrap();
        w.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_entries(&env, &agent, 400, 30);
    std::thread::sleep(Duration::from_millis(1_500));
    let saved = wait_saved(&env, &agent, old_ino, 10);
    assert_eq!(saved["fp_len"].as_u64(), Some(1024), "{saved}\n{}", agent.log_tail());
    agent.kill();

    // While it is down the file is deleted and another one gets its inode number.
    let mut w = crate::support::replace_reusing_inode(w);
    write_tagged(&mut w, 1, 0..800);
    let agent = Agent::start(&config);
    wait_all(&env, &agent, &[(0, 400), (1, 800)], 30);
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), [(0, 400), (1, 800)]);
    crate::support::assert_exact_or_log(&account, &agent);
    agent.stop();
}

/// A new node: the agent's first start (no positions) reads what pods wrote before it came up from
/// the beginning (the default `start_at: beginning`), except files nobody wrote for longer than
/// `start_at_max_age` (a day by default), which start at their end.
#[test]
fn a_first_start_reads_recent_files_from_their_beginning_and_old_ones_from_their_end() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let mut fresh = LogWriter::create(env.path("pods/ns_new_u/c/0.log"), Format::Cri).unwrap();
    write_tagged(&mut fresh, 0, 0..3_000);
    let mut stale = LogWriter::create(env.path("pods/ns_old_u/c/0.log"), Format::Cri).unwrap();
    write_tagged(&mut stale, 1, 0..100);
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(stale.path())
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 3_000, 30);
    write_tagged(&mut stale, 1, 100..150);
    let account = wait_all(&env, &agent, &[(0, 3_000)], 30);
    assert_eq!(account.duplicated(), 0, "{account}");
    wait_entries(&env, &agent, 3_050, 30);
    std::thread::sleep(Duration::from_millis(500));
    let stale_lines: Vec<u64> = env
        .loki
        .lines()
        .iter()
        .filter_map(|l| shipper_testkit::parse_tag(l))
        .filter(|t| t.0 == 1)
        .map(|t| t.1)
        .collect();
    assert_eq!(stale_lines, (100..150).collect::<Vec<_>>(), "{}", agent.log_tail());
    assert!(agent.log().contains("start_at_max_age"), "{}", agent.log_tail());
    agent.stop();
}
