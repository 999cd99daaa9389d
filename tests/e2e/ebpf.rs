//! The eBPF watcher, really loaded on this kernel: writes to tailed files wake the reader through the
//! BPF ring buffer (with the periodic safety check pushed out of the way), other files' writes never
//! reach userspace, and without the capability `watch: ebpf` fails clearly while `auto` falls back.

use crate::support::{assert_exact_or_log, wait_all, write_tagged, Agent, Env, BIN};
use shipper_testkit::{Account, Format, LogWriter};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

/// Whether this process may load BPF programs (CAP_BPF or CAP_SYS_ADMIN). Outside CI a test that needs
/// it skips itself, saying why; under CI it must run.
pub(crate) fn may_load_bpf(test: &str) -> bool {
    use crate::support::{has_any_cap, CAP_BPF, CAP_SYS_ADMIN};
    has_any_cap(
        CAP_BPF | CAP_SYS_ADMIN,
        test,
        "loading BPF programs needs root (CAP_BPF)",
    )
}

/// No periodic safety check or rescan during the test: only events can wake the reader.
const EVENTS_ONLY: &str = "tail:\n  start_at: beginning\n  watch: ebpf\n  rescan_interval: 1h\n";

#[test]
fn io_uring_and_ebpf_are_the_defaults_here() {
    if !may_load_bpf("io_uring_and_ebpf_are_the_defaults_here") {
        return;
    }
    let env = Env::new();
    let agent = Agent::start(&env.config("app/*.log", ""));
    let m = agent.metrics();
    let uring = m.contains("shipper_reader_mode{mode=\"io_uring\"} 1");
    if !uring {
        assert!(
            std::env::var_os("CI").is_none(),
            "io_uring must be used in CI (this kernel allows it):\n{m}"
        );
        eprintln!("skipping the io_uring assertion: io_uring is not available on this machine");
    }
    assert!(m.contains("shipper_watcher_mode{mode=\"ebpf\"} 1"), "{m}");
    agent.stop();
}

#[test]
fn ebpf_wakes_on_appends_creates_renames_and_unlinks() {
    if !may_load_bpf("ebpf_wakes_on_appends_creates_renames_and_unlinks") {
        return;
    }
    let env = Env::new();
    let agent = Agent::start(&env.config("app/*.log", EVENTS_ONLY));
    assert_eq!(agent.metric("shipper_watcher_mode{mode=\"ebpf\"}"), 1.0);
    // Appends in small bursts, each of which must wake the reader.
    let mut a = LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap();
    for k in 0..20u64 {
        write_tagged(&mut a, 0, k * 50..(k + 1) * 50);
        std::thread::sleep(Duration::from_millis(20));
    }
    // A file created under a tailed name by an absolute-path `mv` run from another directory.
    let staged = env.path("staging/b.txt");
    std::fs::write(
        &staged,
        (0..500)
            .map(|s| shipper_testkit::tag_line(1, s, 80) + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let moved = env.path("app/b.log");
    let mv = Command::new("mv")
        .current_dir("/")
        .arg(&staged)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(mv.success());
    // Appends to the moved file, then a file that is written and unlinked.
    let mut b = std::fs::OpenOptions::new().append(true).open(&moved).unwrap();
    for s in 500..1000 {
        writeln!(b, "{}", shipper_testkit::tag_line(1, s, 80)).unwrap();
    }
    b.flush().unwrap();
    let mut c = LogWriter::create(env.path("app/c.log"), Format::Raw).unwrap();
    write_tagged(&mut c, 2, 0..300);
    let account = wait_all(&env, &agent, &[(0, 1000), (1, 1000), (2, 300)], 30);
    std::fs::remove_file(env.path("app/c.log")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_exact_or_log(&account, &agent);
    assert_exact_or_log(
        &Account::from_streams(&env.loki.streams(), [(0, 1000), (1, 1000), (2, 300)]),
        &agent,
    );
    // Bursts coalesce while the reader is busy, so fewer events than bursts is fine; with the safety
    // check an hour away, the appends after each file's creation were seen only through eBPF.
    assert!(agent.metric("shipper_ebpf_events_total") >= 5.0, "{}", agent.metrics());
    agent.stop();
}

#[test]
fn writes_to_unwatched_files_never_reach_userspace() {
    if !may_load_bpf("writes_to_unwatched_files_never_reach_userspace") {
        return;
    }
    let env = Env::new();
    let agent = Agent::start(&env.config("app/*.log", EVENTS_ONLY));
    let mut w = LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap();
    write_tagged(&mut w, 0, 0..10);
    wait_all(&env, &agent, &[(0, 10)], 30);
    // The file is watched once it is open: this append wakes the reader through eBPF.
    write_tagged(&mut w, 0, 10..20);
    wait_all(&env, &agent, &[(0, 20)], 30);
    // A file in the same directory that no target matches, and one elsewhere. Creating the first is a
    // change in a watched directory, reported; writing to either is not.
    let mut noise: Vec<std::fs::File> = ["app/other.txt", "elsewhere/noise.log"]
        .iter()
        .map(|name| std::fs::File::create(env.path(name)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = agent.metric("shipper_ebpf_events_total");
    assert!(before >= 1.0, "the watched file's writes came through eBPF");
    // 5,000 writes to those two files.
    for f in &mut noise {
        for i in 0..2_500 {
            writeln!(f, "noise {i}").unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.metric("shipper_ebpf_events_total"), before, "{}", agent.metrics());
    // The counter does move for a watched file.
    write_tagged(&mut w, 0, 20..30);
    wait_all(&env, &agent, &[(0, 30)], 30);
    assert!(agent.metric("shipper_ebpf_events_total") > before);
    agent.stop();
}

#[test]
fn without_the_capability_ebpf_is_an_error_and_auto_falls_back_to_inotify() {
    if !may_load_bpf("without_the_capability_ebpf_is_an_error_and_auto_falls_back_to_inotify") {
        return;
    }
    // Root without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN: the kernel refuses to load BPF programs.
    let drop_caps = [
        "setpriv",
        "--bounding-set=-bpf,-perfmon,-sys_admin",
        "--inh-caps=-bpf,-perfmon,-sys_admin",
    ];
    let env = Env::new();
    let config = env.config("app/*.log", EVENTS_ONLY);
    let out = Command::new(drop_caps[0])
        .args(&drop_caps[1..])
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "watch: ebpf without the capability must fail:\n{stderr}"
    );
    assert!(stderr.contains("tail.watch: ebpf"), "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");

    let config = env.config(
        "app/*.log",
        "tail:\n  start_at: beginning\n  watch: auto\n  rescan_interval: 1h\n",
    );
    let agent = Agent::start_via(&config, &drop_caps);
    assert_eq!(
        agent.metric("shipper_watcher_mode{mode=\"inotify\"}"),
        1.0,
        "{}",
        agent.log()
    );
    let mut w = LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap();
    write_tagged(&mut w, 0, 0..2_000);
    let account = wait_all(&env, &agent, &[(0, 2_000)], 30);
    assert_exact_or_log(&account, &agent);
    assert!(
        agent.log().contains("eBPF file events are not available here"),
        "{}",
        agent.log()
    );
    agent.stop();
}

/// 10,000 tailed files, each watched in the BPF map (more than inotify's default per-user watch limit
/// of 8,192 on many systems): appends to 500 random ones all arrive, woken by eBPF alone, and the
/// agent, run with the Helm chart's defaults for what decides memory, stays within the chart's
/// memory limit.
#[test]
fn ten_thousand_watched_files_appends_to_random_ones_all_arrive() {
    if !may_load_bpf("ten_thousand_watched_files_appends_to_random_ones_all_arrive") {
        return;
    }
    let env = Env::new();
    let files = 10_000u32;
    let path = |f: u32| env.path(&format!("pods/ns_p{}_u/c/{f}.log", f / 100));
    for f in 0..files {
        std::fs::write(path(f), shipper_testkit::tag_line(f, 0, 60) + "\n").unwrap();
    }
    let config = env.config("pods/*/*/*.log", &(crate::memory::chart_client(&env) + EVENTS_ONLY));
    let agent = Agent::start(&config);
    let mut expected: Vec<u64> = vec![1; files as usize];
    wait_all(&env, &agent, &expected_of(&expected), 120);
    // A fixed pseudo-random choice of files, some appended to more than once.
    let mut x = 0x9e37_79b9_u32;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let f = x % files;
        let mut out = std::fs::OpenOptions::new().append(true).open(path(f)).unwrap();
        writeln!(out, "{}", shipper_testkit::tag_line(f, expected[f as usize], 60)).unwrap();
        expected[f as usize] += 1;
    }
    let account = wait_all(&env, &agent, &expected_of(&expected), 60);
    assert_exact_or_log(&account, &agent);
    assert_eq!(agent.metric("shipper_open_files"), f64::from(files));
    assert!(agent.metric("shipper_ebpf_events_total") >= 1.0);
    crate::memory::assert_within_chart_limit(&agent, "10,000 files");
    agent.stop();
}

fn expected_of(counts: &[u64]) -> Vec<(u32, u64)> {
    counts.iter().enumerate().map(|(f, &n)| (f as u32, n)).collect()
}

/// 1,000 watched idle files: the agent sleeps on events instead of polling. Over 10 idle seconds it
/// reads none of the files (a polling agent reads each of them every poll) and scans the targets only
/// at the rescan interval. What that costs in CPU is measured by `cargo xtask bench idle-1000`, not
/// here: a CPU bound in a test run beside others is a guess.
#[test]
fn a_thousand_idle_watched_files_are_not_read_while_idle() {
    if !may_load_bpf("a_thousand_idle_watched_files_are_not_read_while_idle") {
        return;
    }
    let env = Env::new();
    for f in 0..1_000u32 {
        let p = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
        std::fs::write(p, shipper_testkit::tag_line(f, 0, 60) + "\n").unwrap();
    }
    // Default timings (rescan every 10 s), as users run it.
    let config = env.config("pods/*/*/*.log", "tail:\n  start_at: beginning\n  watch: ebpf\n");
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..1_000).map(|f| (f, 1)).collect();
    wait_all(&env, &agent, &expected, 60);
    std::thread::sleep(Duration::from_secs(2));
    let reads = || {
        ["data", "empty", "error"]
            .iter()
            .map(|r| agent.metric(&format!("shipper_file_reads_total{{result=\"{r}\"}}")))
            .sum::<f64>()
    };
    let (reads_before, scans_before, cpu_before) = (reads(), agent.metric("shipper_scans_total"), agent.cpu_seconds());
    assert!(reads_before >= 1_000.0, "each file was read: {reads_before}");
    std::thread::sleep(Duration::from_secs(10));
    let (read, scans) = (
        reads() - reads_before,
        agent.metric("shipper_scans_total") - scans_before,
    );
    let cpu = agent.cpu_seconds() - cpu_before;
    eprintln!("idle 10 s: {read} reads, {scans} scans, {cpu:.3} CPU-seconds");
    assert_eq!(read, 0.0, "idle files were read");
    assert!(
        (1.0..=2.0).contains(&scans),
        "{scans} scans in 10 s at rescan_interval 10s"
    );
    // Still watching: one append is read at once, without waiting for a scan.
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(env.path("pods/ns_p7_u/c/0.log"))
        .unwrap();
    writeln!(out, "{}", shipper_testkit::tag_line(7, 1, 60)).unwrap();
    let mut expected = expected;
    expected[7].1 = 2;
    let account = wait_all(&env, &agent, &expected, 5);
    assert_exact_or_log(&account, &agent);
    agent.stop();
}

/// The agent's open inotify instances (anon_inode:inotify among its descriptors).
fn inotify_instances(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("inotify"))
        .count()
}

/// Directory changes come from the BPF programs, with no inotify at all: a pod directory made by an
/// absolute-path `mkdir -p`, its log created by absolute path, a kubelet-style rotation done by a `mv`
/// with bare names from inside the directory (resolved through the caller's cwd), the new file
/// created there, and an unlink of the rotated file. The rescan is an hour away, so only events can
/// find these files.
#[test]
fn directory_changes_come_from_bpf_without_inotify() {
    if !may_load_bpf("directory_changes_come_from_bpf_without_inotify") {
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(env.path("pods")).unwrap();
    let agent = Agent::start(&env.config("pods/*/*/*.log", EVENTS_ONLY));
    assert_eq!(
        inotify_instances(agent.pid()),
        0,
        "the eBPF watcher must not use inotify"
    );
    let dir = env.path("pods/ns_new_uid/app");
    let mkdir = Command::new("mkdir")
        .current_dir("/")
        .arg("-p")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(mkdir.success());
    let mut w = LogWriter::create(dir.join("0.log"), Format::Raw).unwrap();
    write_tagged(&mut w, 0, 0..500);
    wait_all(&env, &agent, &[(0, 500)], 30);
    // Rotation with names relative to the caller's cwd, then lines in the new file.
    write_tagged(&mut w, 0, 500..700);
    let mv = Command::new("mv")
        .current_dir(&dir)
        .args(["0.log", "0.log.20261130-010203"])
        .status()
        .unwrap();
    assert!(mv.success());
    write_tagged(&mut w, 0, 700..800);
    drop(w);
    let mut w = LogWriter::create(dir.join("0.log"), Format::Raw).unwrap();
    write_tagged(&mut w, 0, 800..1_000);
    let account = wait_all(&env, &agent, &[(0, 1_000)], 30);
    assert_exact_or_log(&account, &agent);
    // The rotated file is drained and closed; its unlink is seen too.
    std::fs::remove_file(dir.join("0.log.20261130-010203")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.metric("shipper_open_files") != 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent.metric("shipper_open_files"), 1.0, "{}", agent.log());
    assert_eq!(inotify_instances(agent.pid()), 0);
    agent.stop();
}

/// Writes are hooked by the best hook the kernel allows, ranked fexit → syscall tracepoints and
/// proven at start by a probe write; the metric and the log say which one runs and why a better one
/// does not. This kernel refuses fexit (EPERM), so here `auto` runs on tracepoints and forcing
/// `fexit` is a clear error; on a kernel that allows fexit the same test checks the other branch.
#[test]
fn the_write_hook_is_chosen_from_a_ranked_list_and_reported() {
    if !may_load_bpf("the_write_hook_is_chosen_from_a_ranked_list_and_reported") {
        return;
    }
    let env = Env::new();
    let agent = Agent::start(&env.config("app/*.log", EVENTS_ONLY));
    let fexit = agent.metric("shipper_ebpf_write_hook{mode=\"fexit\"}") == 1.0;
    let tracepoint = agent.metric("shipper_ebpf_write_hook{mode=\"tracepoint\"}") == 1.0;
    assert!(fexit != tracepoint, "exactly one write hook: {}", agent.metrics());
    if tracepoint {
        // Why fexit is not used is logged with the kernel's answer.
        assert!(
            agent
                .log()
                .contains("fexit: the kernel refused write_fexit on vfs_write"),
            "{}",
            agent.log()
        );
    }
    // Only events can wake the reader (rescan in an hour): the hook in use reports appends.
    let mut w = LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap();
    for k in 0..10u64 {
        write_tagged(&mut w, 0, k * 100..(k + 1) * 100);
        std::thread::sleep(Duration::from_millis(30));
    }
    let account = wait_all(&env, &agent, &[(0, 1_000)], 30);
    assert_exact_or_log(&account, &agent);
    agent.stop();

    // Forcing a hook: tracepoints work on every kernel with the syscall tracepoints.
    let env = Env::new();
    let forced =
        |hook: &str| EVENTS_ONLY.replace("watch: ebpf\n", &format!("watch: ebpf\n  ebpf_write_hook: {hook}\n"));
    let agent = Agent::start(&env.config("app/*.log", &forced("tracepoint")));
    assert_eq!(agent.metric("shipper_ebpf_write_hook{mode=\"tracepoint\"}"), 1.0);
    let mut w = LogWriter::create(env.path("app/a.log"), Format::Raw).unwrap();
    write_tagged(&mut w, 0, 0..500);
    let account = wait_all(&env, &agent, &[(0, 500)], 30);
    assert_exact_or_log(&account, &agent);
    agent.stop();

    // Forcing fexit where the kernel refuses it: the agent does not start, and says why and what to do.
    let env = Env::new();
    let config = env.config("app/*.log", &forced("fexit"));
    if fexit {
        let agent = Agent::start(&config);
        assert_eq!(agent.metric("shipper_ebpf_write_hook{mode=\"fexit\"}"), 1.0);
        agent.stop();
        return;
    }
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needed in [
        "tail.watch: ebpf",
        "write_fexit on vfs_write",
        "tail.ebpf_write_hook",
        "set it to auto",
    ] {
        assert!(stderr.contains(needed), "{needed:?} missing from:\n{stderr}");
    }
}

/// A create or mkdir is looked at when the syscall returns, once the change is made, not when it
/// starts. Here each path's text sits in a page of a fresh file mapping that nothing has touched: the
/// kernel faults it in while the syscall runs, but a BPF program at syscall entry cannot read it. The
/// same holds for a create under way in a directory whose watch is added meanwhile (a burst of new
/// pods): looked at on entry, such creates were missed until a periodic rescan (an hour here).
#[test]
fn creates_are_seen_once_made_even_when_their_path_was_unreadable_at_entry() {
    if !may_load_bpf("creates_are_seen_once_made_even_when_their_path_was_unreadable_at_entry") {
        return;
    }
    let env = Env::new();
    let mut w = LogWriter::create(env.path("pods/ns_a_u/c/0.log"), Format::Raw).unwrap();
    let agent = Agent::start(&env.config("pods/*/*/*.log", EVENTS_ONLY));
    write_tagged(&mut w, 0, 0..10);
    wait_all(&env, &agent, &[(0, 10)], 30);

    // A file created in a watched directory.
    let created = env.path("pods/ns_a_u/c/1.log");
    with_untouched_path(&env, &created, |p| {
        // SAFETY: `p` is a NUL-terminated path in a live mapping; the descriptor is closed at once.
        unsafe {
            let fd = libc::open(p, libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        }
    });
    append_tagged(&created, 1, 0..20);
    // A new pod directory; its container directory and file are made the usual way.
    let pod = env.path("pods/ns_b_u");
    // SAFETY: `p` is a NUL-terminated path in a live mapping.
    with_untouched_path(&env, &pod, |p| unsafe { libc::mkdir(p, 0o755) });
    std::fs::create_dir(pod.join("c")).unwrap();
    let mut w2 = LogWriter::create(pod.join("c/0.log"), Format::Raw).unwrap();
    write_tagged(&mut w2, 2, 0..30);
    let account = wait_all(&env, &agent, &[(0, 10), (1, 20), (2, 30)], 30);
    assert_exact_or_log(&account, &agent);
    assert_eq!(
        agent.metric("shipper_scans_total"),
        1.0,
        "found by events, not a rescan"
    );
    agent.stop();
}

/// Appends tagged raw lines to an existing file, opened without `O_CREAT` (which would itself report
/// the file).
fn append_tagged(path: &std::path::Path, f: u32, range: std::ops::Range<u64>) {
    let mut out = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for i in range {
        writeln!(out, "{}", shipper_testkit::tag_line(f, i, 80)).unwrap();
    }
}

/// Runs `op` (a syscall, which returns < 0 on failure) with `path` as C text in a fresh private file
/// mapping that no one has touched, after checking in /proc/self/pagemap that the page is not mapped.
fn with_untouched_path(env: &Env, path: &std::path::Path, op: impl FnOnce(*const libc::c_char) -> i32) {
    use std::io::{Read, Seek};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let text = env.path(&format!("path-text-{}", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&text, [path.as_os_str().as_bytes(), b"\0"].concat()).unwrap();
    let file = std::fs::File::open(&text).unwrap();
    let len = path.as_os_str().len() + 1;
    // SAFETY: a new private read-only mapping of a file of ours; nothing else refers to it, and it is
    // unmapped below after its last use.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(at, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    // Bit 63 of the page's pagemap entry: present in the page tables.
    let mut pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
    pagemap.seek(std::io::SeekFrom::Start(at as u64 / 4096 * 8)).unwrap();
    let mut entry = [0u8; 8];
    pagemap.read_exact(&mut entry).unwrap();
    assert_eq!(
        u64::from_ne_bytes(entry) >> 63,
        0,
        "the path's page must not be mapped yet"
    );
    let rc = op(at as *const libc::c_char);
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above, of `len` bytes, no longer used.
    unsafe { libc::munmap(at, len) };
    assert!(rc >= 0, "{}: {err}", path.display());
}
