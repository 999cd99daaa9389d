//! Crashes: SIGKILL mid-stream and restart — nothing lost, duplicates bounded by what was in flight.

use crate::support::{wait_entries, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter};
use std::time::Duration;

#[test]
fn sigkill_mid_stream_then_restart_loses_nothing() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let files = 3u32;
    let per_file = 100_000u64;
    let writer = {
        let paths: Vec<_> = (0..files)
            .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")))
            .collect();
        std::thread::spawn(move || {
            let mut ws: Vec<LogWriter> = paths
                .iter()
                .map(|p| LogWriter::create(p, Format::Cri).unwrap())
                .collect();
            for i in (0..per_file).step_by(500) {
                for (f, w) in ws.iter_mut().enumerate() {
                    for s in i..i + 500 {
                        w.write_line("stdout", &tag_line(f as u32, s, varied_len(s, 50, 300)))
                            .unwrap();
                    }
                    w.flush().unwrap();
                    // Rotate now and then, so some rotations happen while the agent is dead.
                    if (i / 500) % 40 == 39 {
                        w.rotate_kubelet().unwrap();
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for round in 0..4 {
        let agent = Agent::start(&config);
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        agent.kill();
    }
    writer.join().unwrap();
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..files).map(|f| (f, per_file)).collect();
    crate::support::wait_all(&env, &agent, &expected, 120);
    std::thread::sleep(Duration::from_millis(1500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    assert_eq!(account.lost(), 0, "{account}");
    // Per kill, duplicates are what was acknowledged since the last positions write (up to a
    // second — the default `sync_period` — of catching up at full speed, beside the other tests:
    // 23,000–57,000 a kill measured with the debug build) plus the batches in flight (1 sending + 2
    // queued, 256 KiB ≈ 1,500 lines each).
    let bound = 4 * 100_000;
    assert!(
        account.duplicated() <= bound,
        "duplicates {} > {bound}: {account}",
        account.duplicated()
    );
    eprintln!("{account}");
    agent.stop();
}

/// SIGTERM writes the acknowledged positions: a restart resumes exactly where it stopped (no line
/// twice), and lines written while the agent was down arrive.
#[test]
fn graceful_restart_resumes_exactly() {
    let (env, config, mut w) = shipped_then_stopped("app/*.log", "app/app.log", 10_000);
    crate::support::write_tagged(&mut w, 0, 10_000..20_000);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 20_000, 60);
    std::thread::sleep(Duration::from_millis(500));
    crate::support::assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 20_000)]), &agent);
    // CRI lines carry their write time: each read reports how late it came.
    assert!(
        agent.metric("shipper_read_lag_seconds_count") >= 1.0,
        "{}",
        agent.metrics()
    );
    assert!(
        agent.metric("shipper_read_lag_seconds_sum") > 0.0,
        "{}",
        agent.metrics()
    );
    agent.stop();
}

/// `start_at: end` skips what files held at the first start, and ships what is written after.
#[test]
fn start_at_end_skips_existing_content_on_first_start() {
    let env = Env::new();
    let config = env.config("app/*.log", "tail:\n  start_at: end\n");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..5_000);
    let agent = Agent::start(&config);
    std::thread::sleep(Duration::from_millis(300));
    crate::support::write_tagged(&mut w, 1, 0..3_000);
    wait_entries(&env, &agent, 3_000, 60);
    std::thread::sleep(Duration::from_millis(500));
    crate::support::assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(1, 3_000)]), &agent);
    agent.stop();
}

/// SIGTERM on an idle agent is answered promptly (the reader does not sleep through it).
#[test]
fn sigterm_stops_an_idle_agent_promptly() {
    let env = Env::new();
    let config = env.config("app/*.log", "tail:\n  start_at: beginning\n  rescan_interval: 1m\n");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..10);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 10, 30);
    std::thread::sleep(Duration::from_secs(1));
    let t0 = std::time::Instant::now();
    agent.stop();
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?} to stop", t0.elapsed());
}

/// Several kubelet rotations while the agent is down (killed): at restart the file it was tailing is
/// found by inode and read to its end, then every file rotated after it that no agent ever saw, then
/// the new file at the path — nothing lost, nothing twice, in order.
#[test]
fn several_rotations_while_down_are_all_read_in_order() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let mut w = LogWriter::create(env.path("pods/ns_p_u/c/0.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..1_000);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 1_000, 60);
    // Past a positions write (acknowledged progress is written within a second, the default
    // `sync_period`), so the restart resumes exactly.
    std::thread::sleep(Duration::from_millis(1_500));
    agent.kill();
    for k in 1..4u64 {
        crate::support::write_tagged(&mut w, 0, k * 1_000..(k + 1) * 1_000);
        w.rotate_kubelet().unwrap();
    }
    crate::support::write_tagged(&mut w, 0, 4_000..4_500);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 4_500, 60);
    std::thread::sleep(Duration::from_millis(500));
    crate::support::assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 4_500)]), &agent);
    agent.stop();
}

/// A positions file truncated while the agent was down (a full disk, a bad block) does not stop the
/// agent: it is moved aside, the previous version (`.bak`) is used, and the lines after its offsets
/// are shipped again — duplicates, never a loss — and with `start_at: end` nothing written while the
/// agent was down is skipped.
#[test]
fn corrupt_positions_at_start_fall_back_to_the_backup() {
    let env = Env::new();
    let config = env.config("app/*.log", "tail:\n  start_at: end\n  rescan_interval: 1s\n");
    let positions = env.path("positions.json");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    let agent = Agent::start(&config);
    crate::support::write_tagged(&mut w, 0, 0..1_000);
    wait_entries(&env, &agent, 1_000, 60);
    // Past a positions write after everything was acknowledged (within a second, the default
    // `sync_period`): the next write's backup holds this offset.
    std::thread::sleep(Duration::from_millis(1_500));
    crate::support::write_tagged(&mut w, 0, 1_000..2_000);
    wait_entries(&env, &agent, 2_000, 60);
    agent.stop();
    let backup = env.path("positions.json.bak");
    assert!(backup.exists(), "every save keeps the previous version");
    crate::support::write_tagged(&mut w, 0, 2_000..3_000);
    // Damaged within its snapshot (the first record): nothing of it can be used.
    let text = std::fs::read(&positions).unwrap();
    std::fs::write(&positions, &text[..shipper::checkpoint::POSITIONS_MAGIC.len() + 20]).unwrap();

    let agent = Agent::start(&config);
    let account = crate::support::wait_all(&env, &agent, &[(0, 3_000)], 60);
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    eprintln!("corrupt positions: {account}");
    assert!(
        account.duplicated() <= 2_000,
        "only lines after the backup's offset again: {account}"
    );
    let log = agent.log();
    assert!(
        log.contains("positions file is corrupt") && log.contains("recovered from the backup"),
        "{}",
        agent.log_tail()
    );
    assert!(env.path("positions.corrupt").exists(), "kept for inspection");
    agent.assert_peak_rss_below(64, "corrupt positions at start");
    agent.stop();
}

/// A file of the positions that was deleted while the agent was down (as kubelet deletes old rotated
/// files) cannot be read any more: at start it is named in a warning and counted, never skipped
/// silently; the file that is still there is not counted.
#[test]
fn a_saved_file_deleted_while_down_is_named_and_counted() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let mut a = LogWriter::create(env.path("app/a.log"), Format::Cri).unwrap();
    let mut b = LogWriter::create(env.path("app/b.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut a, 0, 0..1_000);
    crate::support::write_tagged(&mut b, 1, 0..1_000);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 2_000, 60);
    agent.stop();
    // While it is down: more lines to a.log, then a.log is deleted.
    crate::support::write_tagged(&mut a, 0, 1_000..1_500);
    drop(a);
    std::fs::remove_file(env.path("app/a.log")).unwrap();
    crate::support::write_tagged(&mut b, 1, 1_000..1_200);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 2_200, 60);
    let warning = the_one_deleted_while_down(&agent);
    assert!(warning.contains("a.log") && !warning.contains("b.log"), "{warning}");
    agent.stop();
}

/// The crash loop of a starved agent, made deterministic: the agent read a file but Loki had
/// acknowledged none of it (saved at offset 0) when it was killed; while it was down kubelet rotated
/// the file and removed it (its `containerLogMaxFiles` reached), and the runtime's new `0.log` got
/// the freed inode number. The new file is not taken for the saved one: the saved one is named as
/// deleted while the agent was down, with its inode and offset, and counted — never dropped in
/// silence.
#[test]
fn a_saved_file_gone_while_down_whose_inode_the_new_file_reuses_is_named_and_counted() {
    gone_while_down_with_its_inode_reused(true);
}

/// The same with a file saved while it was still empty (a new `0.log`, killed before the positions
/// learned its first bytes): nothing tells the new file that took its inode number from it but its
/// birth, after the positions were written.
#[test]
fn a_file_saved_empty_gone_while_down_whose_inode_the_new_file_reuses_is_named_and_counted() {
    gone_while_down_with_its_inode_reused(false);
}

fn gone_while_down_with_its_inode_reused(lines_before_the_save: bool) {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let path = env.path("pods/ns_p_u/c/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    if lines_before_the_save {
        crate::support::write_tagged(&mut w, 0, 0..1_000);
    }
    let saved_ino = std::fs::metadata(&path).unwrap().ino();
    env.loki.set_down(true);
    let agent = Agent::start(&config);
    // Saved at once (the files found at start), at offset 0: nothing is acknowledged.
    let saved = crate::positions::wait_saved(&env, &agent, saved_ino, 20);
    assert_eq!(saved["offset"], 0, "{saved}");
    agent.kill();
    if !lines_before_the_save {
        crate::support::write_tagged(&mut w, 0, 0..1_000);
    }
    let rotated = w.rotate_kubelet().unwrap();
    drop(w);
    std::fs::remove_file(&rotated).unwrap();
    std::fs::remove_file(&path).unwrap();
    crate::support::create_reusing_inode(&path, saved_ino);
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_000..1_200);
    env.loki.set_down(false);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 200, 60);
    let warning = the_one_deleted_while_down(&agent);
    assert!(
        warning.contains(&format!("ino={saved_ino}")) && warning.contains("saved_offset=0"),
        "{warning}"
    );
    // The new file is read from its start.
    let account = Account::from_streams(&env.loki.streams(), [(0, 1_200)]);
    assert_eq!(account.file(0).unwrap().missing_ranges(), vec![(0, 999)], "{account}");
    agent.stop();
}

/// The one warning about a saved file deleted while the agent was down, which the metric counts.
fn the_one_deleted_while_down(agent: &Agent) -> String {
    let series = "shipper_files_deleted_while_down_total";
    assert_eq!(agent.metric(series), 1.0, "{}", agent.log_tail());
    let log = agent.log();
    let warning = log.lines().find(|l| l.contains("deleted while the agent was down"));
    warning
        .unwrap_or_else(|| panic!("no warning:\n{}", agent.log_tail()))
        .to_string()
}

/// kubelet compresses every rotated file but the newest: the file the agent had not finished when it
/// stopped is, two rotations later, only a `.gz`. Its rest is read from there (found by its first
/// bytes), before the newer files, so nothing is lost, nothing sent twice, and the stream stays in
/// order.
#[test]
fn a_saved_file_kubelet_compressed_while_down_is_read_from_its_gz() {
    let (env, config, mut w) = shipped_then_stopped("pods/*/*/*.log", "pods/ns_p_u/c/0.log", 1_000);
    // While it is down: more lines, a rotation, more lines, a second rotation (the first rotated
    // file gzipped, its original removed), more lines.
    crate::support::write_tagged(&mut w, 0, 1_000..1_500);
    w.rotate_kubelet_retiring(5).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_500..1_700);
    w.rotate_kubelet_retiring(5).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_700..1_800);
    let gz = std::fs::read_dir(w.path().parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".gz"))
        .count();
    assert_eq!(gz, 1, "kubelet's rotation gzips the older rotated file");
    restart_reads_one_gz_and_all_lines_once(&env, &config, 1_800);
}

/// A log `file` (CRI) with lines `0..n` of file 0, tailed through `glob`, all shipped by an agent
/// that then stopped (SIGTERM: its positions are exact).
fn shipped_then_stopped(glob: &str, file: &str, n: u64) -> (Env, std::path::PathBuf, LogWriter) {
    let env = Env::new();
    let config = env.config(glob, "");
    let mut w = LogWriter::create(env.path(file), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..n);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, n as usize, 60);
    agent.stop();
    (env, config, w)
}

/// Starts the agent and waits until lines `0..n` of file 0 all arrived, once each and in order,
/// with one file read from a `.gz` and none reported deleted.
fn restart_reads_one_gz_and_all_lines_once(env: &Env, config: &std::path::Path, n: u64) {
    let agent = Agent::start(config);
    crate::support::wait_all(env, &agent, &[(0, n)], 60);
    // Any duplicate would arrive with the rest.
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), [(0, n)]);
    crate::support::assert_exact_or_log(&account, &agent);
    let series = "shipper_files_inflated_total";
    assert_eq!(agent.metric(series), 1.0, "{}", agent.log_tail());
    assert_eq!(agent.metric("shipper_files_deleted_while_down_total"), 0.0);
    agent.stop();
}

/// A file created, rotated and compressed while the agent was down (two rotations): no positions
/// named it, but its lines were written after the last ones were, so it is read whole from its
/// `.gz`, in order, and nothing is sent twice.
#[test]
fn a_file_kubelet_created_rotated_and_compressed_while_down_is_read_from_its_gz() {
    let (env, config, mut w) = shipped_then_stopped("pods/*/*/*.log", "pods/ns_p_u/c/0.log", 1_000);
    // While it is down: three rotations; the file written between the first two is compressed by the
    // third, without the agent ever having seen it.
    w.rotate_kubelet_retiring(5).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_000..1_500);
    w.rotate_kubelet_retiring(5).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_500..1_600);
    w.rotate_kubelet_retiring(5).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_600..1_700);
    // One `.gz` read: the one no positions named (the saved file was read to its end before it was
    // compressed, so it is not inflated again).
    restart_reads_one_gz_and_all_lines_once(&env, &config, 1_700);
}

/// A crash while a record of changes was being appended leaves a torn record at the end of the
/// positions file: the records before it are used (a warning says so), nothing is lost and no line
/// is shipped twice. A positions file in the JSON of earlier versions is read too: an upgrade
/// resumes where the old version stopped.
#[test]
fn a_torn_last_record_and_the_json_of_earlier_versions_resume_where_they_stopped() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let positions = env.path("positions.json");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..1_000);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 1_000, 60);
    agent.stop();
    let saved = crate::support::saved_positions(&env);
    assert_eq!(
        saved["files"][0]["offset"].as_u64(),
        Some(std::fs::metadata(w.path()).unwrap().len()),
        "{saved}"
    );

    // Torn: a record's frame and the first bytes of its body, as a crash mid-write leaves them.
    let mut torn = std::fs::read(&positions).unwrap();
    torn.extend_from_slice(&[120, 0, 0, 0, 1, 2, 3, 4, b'{', b'"', b's']);
    std::fs::write(&positions, &torn).unwrap();
    crate::support::write_tagged(&mut w, 0, 1_000..2_000);
    let agent = Agent::start(&config);
    crate::support::wait_all(&env, &agent, &[(0, 2_000)], 60);
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), [(0, 2_000)]);
    assert_eq!((account.lost(), account.duplicated()), (0, 0), "{account}");
    assert!(agent.log().contains("torn or damaged record"), "{}", agent.log_tail());
    agent.stop();

    // The JSON an earlier version wrote (as `shipper positions` prints it, plus its version).
    let mut old = crate::support::saved_positions(&env);
    old["version"] = 1.into();
    std::fs::write(&positions, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    std::fs::remove_file(env.path("positions.json.bak")).unwrap();
    crate::support::write_tagged(&mut w, 0, 2_000..3_000);
    let agent = Agent::start(&config);
    crate::support::wait_all(&env, &agent, &[(0, 3_000)], 60);
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), [(0, 3_000)]);
    assert_eq!((account.lost(), account.duplicated()), (0, 0), "{account}");
    agent.stop();
    let now = crate::support::saved_positions(&env);
    assert_eq!(
        now["files"][0]["offset"].as_u64(),
        Some(std::fs::metadata(w.path()).unwrap().len()),
        "rewritten in this version's format: {now}"
    );
}
