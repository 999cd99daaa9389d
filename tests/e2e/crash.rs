//! The crash loop: the agent is killed with SIGKILL over and over while containers log and kubelet
//! rotates (and gzips) their files; each restart resumes from the positions. Nothing is lost, each
//! stream stays in order, and duplicates stay within what at-least-once allows.

use crate::support::{wait_all, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter};
use std::time::{Duration, Instant};

const FILES: u32 = 50;
const PER_FILE: u64 = 20_000;
const KILLS: u64 = 20;

/// One writer for all the containers, round-robin in steps of 100 lines, paced to spread 1M lines
/// over ~45 s; each file rotates like kubelet (5 kept, older gzipped) every 256 KiB.
fn write_all(env: &Env) -> std::thread::JoinHandle<()> {
    let paths: Vec<_> = (0..FILES)
        .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")))
        .collect();
    std::thread::spawn(move || {
        let mut ws: Vec<(LogWriter, u64)> = paths
            .iter()
            .map(|p| (LogWriter::create(p, Format::Cri).unwrap(), 0))
            .collect();
        let started = Instant::now();
        let passes = PER_FILE / 100;
        for pass in 0..passes {
            for (f, (w, since_rotation)) in ws.iter_mut().enumerate() {
                for s in pass * 100..(pass + 1) * 100 {
                    let line = tag_line(f as u32, s, varied_len(s, 80, 300));
                    *since_rotation += line.len() as u64 + 40;
                    w.write_line("stdout", &line).unwrap();
                }
                w.flush().unwrap();
                if *since_rotation >= 256 << 10 {
                    w.rotate_kubelet_retiring(5).unwrap();
                    *since_rotation = 0;
                }
            }
            let due = started + Duration::from_millis(45_000 * (pass + 1) / passes);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    })
}

/// 1M lines across 50 files with kubelet rotation and compression; SIGKILL at a random moment every
/// 1–3 s, 20 times, with an immediate restart each time.
#[test]
fn twenty_sigkills_while_fifty_files_rotate_lose_nothing() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let writer = write_all(&env);
    // A fixed pseudo-random sequence, so a failure can be replayed.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..KILLS {
        let agent = Agent::start(&config);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(1_000 + x % 2_000));
        agent.kill();
    }
    writer.join().unwrap();
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    wait_all(&env, &agent, &expected, 300);
    std::thread::sleep(Duration::from_millis(1_500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    let rss = agent.peak_rss();
    eprintln!("{account}; last run's peak RSS {} MiB", rss >> 20);
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    // Per kill: what was acknowledged since the last positions write (every 200 ms here, later when
    // the disk is busy) plus the batches in flight (1 sending + 2 queued, 256 KiB ≈ 1,300 lines each):
    // ~1,100 a kill measured alone, ~4,800 beside the 2-minute outage test writing hundreds of MiB.
    let bound = KILLS * 8_000;
    assert!(
        account.duplicated() <= bound,
        "duplicates {} > {bound}: {account}",
        account.duplicated()
    );
    assert!(rss < 128 << 20, "peak RSS {} MiB", rss >> 20);
    agent.stop();
}
