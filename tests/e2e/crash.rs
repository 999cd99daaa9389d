//! The crash loop: the agent is killed with SIGKILL over and over while containers log and kubelet
//! rotates (and gzips) their files; each restart resumes from the positions. Nothing is lost, each
//! stream stays in order, and duplicates stay within what at-least-once allows.

use crate::pressure::CpuQuota;
use crate::support::{wait_all, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter};
use std::time::{Duration, Instant};

const FILES: u32 = 50;
const PER_FILE: u64 = 20_000;
const KILLS: u64 = 20;

/// How the containers log and rotate.
struct Load {
    files: u32,
    per_file: u64,
    /// Lines written to each file in turn before the next one's.
    step: u64,
    /// Each file is rotated like kubelet once it has grown by this much...
    rotate_at: u64,
    /// ...keeping this many files (older ones gzipped, see `rotate_kubelet_retiring`); None keeps
    /// every rotated file as it is.
    keep: Option<usize>,
    /// All lines are spread over this time.
    over: Duration,
}

/// What one file at a container's path held before it was rotated: which inode it was, and the
/// offset where each of its lines starts (lines `first..first + starts.len()`).
pub struct Segment {
    pub ino: u64,
    pub first: u64,
    pub starts: Vec<u64>,
}

/// One writer for all the containers of `load`, round-robin, paced to spread the lines over its time.
/// Returns, per container, the files its lines went into, in order.
fn write_all(env: &Env, load: Load) -> std::thread::JoinHandle<Vec<Vec<Segment>>> {
    use std::os::unix::fs::MetadataExt;
    let paths: Vec<_> = (0..load.files)
        .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")))
        .collect();
    std::thread::spawn(move || {
        let segment = |w: &LogWriter, first| Segment {
            ino: std::fs::metadata(w.path()).expect("stat log").ino(),
            first,
            starts: Vec::new(),
        };
        let mut ws: Vec<(LogWriter, u64, Vec<Segment>)> = paths
            .iter()
            .map(|p| {
                let w = LogWriter::create(p, Format::Cri).unwrap();
                let first = vec![segment(&w, 0)];
                (w, 0, first)
            })
            .collect();
        let started = Instant::now();
        let passes = load.per_file / load.step;
        for pass in 0..passes {
            for (f, (w, since_rotation, segments)) in ws.iter_mut().enumerate() {
                let current = segments.last_mut().expect("a segment");
                for s in pass * load.step..(pass + 1) * load.step {
                    let line = tag_line(f as u32, s, varied_len(s, 80, 300));
                    *since_rotation += line.len() as u64 + 40;
                    current.starts.push(w.position());
                    w.write_line("stdout", &line).unwrap();
                }
                w.flush().unwrap();
                if *since_rotation >= load.rotate_at {
                    match load.keep {
                        Some(keep) => w.rotate_kubelet_retiring(keep).unwrap(),
                        None => w.rotate_kubelet().unwrap(),
                    };
                    *since_rotation = 0;
                    let next = segment(w, (pass + 1) * load.step);
                    segments.push(next);
                }
            }
            let due = started + load.over * (pass + 1) as u32 / passes as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        ws.into_iter().map(|(_, _, segments)| segments).collect()
    })
}

/// 1M lines across 50 files with kubelet rotation and compression; SIGKILL at a random moment every
/// 1–3 s, 20 times, with an immediate restart each time.
#[test]
fn twenty_sigkills_while_fifty_files_rotate_lose_nothing_unreported() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let (account, reported) = kill_loop(&env, &config, &[]);
    // Per kill: what was acknowledged since the last positions write (progress is written at most
    // every second, the default `sync_period`) plus the batches in flight (1 sending + 2 queued,
    // 256 KiB ≈ 1,300 lines each).
    let bound = KILLS * 8_000;
    assert!(
        account.duplicated() <= bound,
        "duplicates {} > {bound}: {account}; {reported}",
        account.duplicated()
    );
}

/// The same crash loop with the agent held to a quarter of a core (a pod's CPU limit, a busy node):
/// it falls behind the writers, so kubelet gzips and deletes rotated files it has not finished while
/// it is down. What kubelet deleted is lost — and only that: every missing line lies in a file the
/// agent named as deleted while it was down, after the offset it named.
#[test]
fn twenty_sigkills_of_a_cpu_starved_agent_lose_only_what_kubelet_deleted() {
    let Some(quota) = CpuQuota::new("crash-starved", 250) else {
        return;
    };
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    let wrapper = quota.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let (account, reported) = kill_loop(&env, &config, &wrapper);
    let throttled = quota.throttled_seconds();
    eprintln!("starved crash loop: the quota held the agents back {throttled:.1} s; {account}; {reported}");
    assert!(
        throttled > 1.0,
        "the quota never held the agent back ({throttled} s): no pressure was tested"
    );
}

/// Runs the 50-file load while killing the agent (started through `wrapper`) `KILLS` times, then
/// lets an agent started as is (no wrapper) finish. Asserts that every line arrived in order, but
/// for those in files an agent reported as deleted while it was down, after the reported offset.
/// Returns the account and what the agents reported.
fn kill_loop(env: &Env, config: &std::path::Path, wrapper: &[&str]) -> (Account, Reported) {
    // Steps of 100 lines, 1M lines over ~45 s; 5 files kept, rotated every 256 KiB.
    let load = Load {
        files: FILES,
        per_file: PER_FILE,
        step: 100,
        rotate_at: 256 << 10,
        keep: Some(5),
        over: Duration::from_secs(45),
    };
    let writer = write_all(env, load);
    // A fixed pseudo-random sequence, so a failure can be replayed.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for kill in 0..KILLS {
        let agent = Agent::start_via(config, wrapper);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(1_000 + x % 2_000));
        agent.kill();
        // What the next agent starts from, kept for a failure's post-mortem.
        let positions = env.dir.path().join("positions.json");
        let _ = std::fs::copy(
            &positions,
            env.dir.path().join(format!("positions-at-kill-{kill}.json")),
        );
    }
    let segments = writer.join().unwrap();
    let agent = Agent::start(config);
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    let paths: Vec<String> = (0..FILES)
        .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")).display().to_string())
        .collect();
    // Until every line that was not reported deleted has arrived.
    let deadline = Instant::now() + Duration::from_secs(300);
    let reported = loop {
        let reported = Reported::from_logs(&env.agent_logs());
        let account = Account::from_streams(&env.loki.streams(), expected.iter().copied());
        let unexplained = reported.unexplained(&account, &segments, &paths);
        if unexplained.is_empty() || Instant::now() >= deadline {
            if !unexplained.is_empty() {
                keep_segments(env, &segments);
            }
            assert!(
                unexplained.is_empty(),
                "lines lost that no agent reported deleted, after 300 s: {unexplained:?}; {account}; {reported}\nlast agent: {}",
                agent.log_tail()
            );
            break reported;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // Duplicates still in flight arrive too.
    std::thread::sleep(Duration::from_millis(1_500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    let rss = agent.peak_rss();
    eprintln!("{account}; {reported}; last run's peak RSS {} MiB", rss >> 20);
    assert_eq!(account.out_of_order(), 0, "{account}");
    assert!(rss < 128 << 20, "peak RSS {} MiB", rss >> 20);
    agent.stop();
    (account, reported)
}

/// For a failure's post-mortem: which inode each file's lines went to and at which offsets
/// (`segments.txt` in the kept scratch directory: `file first_line inode start_offsets...`).
fn keep_segments(env: &Env, segments: &[Vec<Segment>]) {
    let mut out = String::new();
    for (f, file) in segments.iter().enumerate() {
        for s in file {
            let starts: Vec<String> = s.starts.iter().map(u64::to_string).collect();
            out += &format!("{f} {} {} {}\n", s.first, s.ino, starts.join(" "));
        }
    }
    std::fs::write(env.dir.path().join("segments.txt"), out).expect("write segments.txt");
}

/// The saved files agents reported as deleted while they were down: (the path it was tailed at,
/// inode, saved offset), from their WARN or INFO lines.
struct Reported(Vec<(String, u64, u64)>);

impl Reported {
    fn from_logs(logs: &[String]) -> Reported {
        let mut files = Vec::new();
        for line in logs.iter().flat_map(|l| l.lines()) {
            if !line.contains("was deleted while the agent was down") {
                continue;
            }
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                    .map(str::to_string)
            };
            let num = |key: &str| field(key).and_then(|v| v.parse::<u64>().ok());
            let (Some(file), Some(ino), Some(offset)) = (field("file"), num("ino"), num("saved_offset")) else {
                panic!("a deletion report without file, ino and saved_offset: {line}");
            };
            files.push((file, ino, offset));
        }
        Reported(files)
    }

    /// Lost lines `(file, seq)` that no report explains: not in a file reported deleted (by path
    /// and inode) at or after its reported offset.
    fn unexplained(&self, account: &Account, segments: &[Vec<Segment>], paths: &[String]) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        for (&f, file) in account.files() {
            for seq in file.missing() {
                let segment = segments[f as usize]
                    .iter()
                    .rfind(|s| s.first <= seq)
                    .expect("every line is in a segment");
                let start = segment.starts[(seq - segment.first) as usize];
                let explained = self
                    .0
                    .iter()
                    .any(|(p, ino, offset)| *p == paths[f as usize] && *ino == segment.ino && *offset <= start);
                if !explained {
                    out.push((f, seq));
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} files reported deleted while the agent was down", self.0.len())
    }
}

/// The crash loop of README's reliability table, with the defaults (the harness sets no timing that
/// decides what survives): 10 files, 200,000 lines written at 10,000 lines/s, each file renamed to
/// `<name>.<timestamp>` and recreated every 1 MiB (kubelet's rotation, fast); the agent is SIGKILLed
/// at random after 0.3–3 s — faster than any of its intervals (`positions.sync_period`,
/// `tail.rescan_interval`, `client.batch_wait` of the defaults) — or, every third time, within its
/// first 300 ms, and restarted at once. Every line arrives, each stream in order.
#[test]
fn crash_loop_with_the_defaults_loses_nothing() {
    const FILES: u32 = 10;
    const PER_FILE: u64 = 20_000;
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    // 10 lines per file per step, 2,000 steps: 10,000 lines/s over 20 s; every rotated file kept.
    let load = Load {
        files: FILES,
        per_file: PER_FILE,
        step: 10,
        rotate_at: 1 << 20,
        keep: None,
        over: Duration::from_secs(20),
    };
    let writer = write_all(&env, load);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut kills, mut unready) = (0u64, 0u64);
    while !writer.is_finished() || kills < 10 {
        let agent = Agent::spawn(&config);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every third one within its first 300 ms: while it loads positions, finds the files or
        // recovers the ones rotated away (it is ready in about 100 ms here).
        let after = if kills % 3 == 1 { x % 300 } else { 300 + x % 2_700 };
        std::thread::sleep(Duration::from_millis(after));
        unready += u64::from(!agent.is_ready());
        agent.kill();
        kills += 1;
    }
    writer.join().unwrap();
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    wait_all(&env, &agent, &expected, 300);
    std::thread::sleep(Duration::from_millis(2_500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    eprintln!(
        "crash loop with the defaults: {kills} kills ({unready} before the agent was ready): {account}; {} duplicates per kill",
        account.duplicated() / kills
    );
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    agent.stop();
}
