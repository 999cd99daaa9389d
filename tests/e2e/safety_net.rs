//! The safety net under the file events: while its rounds find nothing the events missed they are
//! spaced out, up to `tail.max_rescan_interval`; data the events did not report is still read, the
//! miss is counted and logged, and the rounds come back to `tail.rescan_interval`.

use crate::ebpf::may_load_bpf;
use crate::support::{assert_exact_or_log, wait_all, Agent, Env};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// Waits until the agent's metric `series` satisfies `ok`, for up to `secs`; its last value.
fn wait_metric(agent: &Agent, series: &str, secs: u64, ok: impl Fn(f64) -> bool) -> f64 {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = agent.metric(series);
        if ok(v) || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Linux AIO's `struct iocb` (include/uapi/linux/aio_abi.h), little-endian.
#[repr(C)]
#[derive(Default)]
struct Iocb {
    aio_data: u64,
    aio_key: u32,
    aio_rw_flags: i32,
    aio_lio_opcode: u16,
    aio_reqprio: i16,
    aio_fildes: u32,
    aio_buf: u64,
    aio_nbytes: u64,
    aio_offset: i64,
    aio_reserved2: u64,
    aio_flags: u32,
    aio_resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Default)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

const IOCB_CMD_PWRITE: u16 = 1;

/// Appends `lines` to `path` with a Linux AIO write (`io_submit`), which no eBPF hook sees (it
/// reaches the file system through neither a write syscall, `vfs_write` nor io_uring): only the
/// safety net can notice these lines.
fn append_unseen(_env: &Env, path: &std::path::Path, lines: &str) {
    let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let end = file.metadata().unwrap().len();
    let mut ctx: u64 = 0;
    // SAFETY: io_setup writes the new context into `ctx`, which lives through this function.
    let rc = unsafe { libc::syscall(libc::SYS_io_setup, 1, &mut ctx as *mut u64) };
    assert_eq!(rc, 0, "io_setup: {}", std::io::Error::last_os_error());
    let mut iocb = Iocb {
        aio_lio_opcode: IOCB_CMD_PWRITE,
        aio_fildes: file.as_raw_fd() as u32,
        aio_buf: lines.as_ptr() as u64,
        aio_nbytes: lines.len() as u64,
        aio_offset: end as i64,
        ..Iocb::default()
    };
    let mut list = [&mut iocb as *mut Iocb];
    // SAFETY: one iocb whose buffer (`lines`) and fd (`file`) outlive the request, which is waited
    // for below; the context is the one io_setup made.
    let rc = unsafe { libc::syscall(libc::SYS_io_submit, ctx, 1, list.as_mut_ptr()) };
    assert_eq!(rc, 1, "io_submit: {}", std::io::Error::last_os_error());
    let mut done = IoEvent::default();
    // SAFETY: room for the one event asked for; no timeout.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_getevents,
            ctx,
            1,
            1,
            &mut done as *mut IoEvent,
            std::ptr::null_mut::<libc::timespec>(),
        )
    };
    assert_eq!(rc, 1, "io_getevents: {}", std::io::Error::last_os_error());
    assert_eq!(done.res, lines.len() as i64, "AIO write: errno {}", -done.res);
    // SAFETY: destroys the context made above, with no request left in it.
    unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
}

/// Appends `n` lines to file `f` (`pods/ns_p{f}_u/c/0.log`, which holds 1 line) in a way no event
/// reports, waits until every expected line arrived exactly once, and returns
/// `shipper_missed_events_total` once it is at least 1 (or `secs` passed).
fn unseen_lines_arrive(env: &Env, agent: &Agent, expected: &mut [(u32, u64)], f: u32, n: u64, secs: u64) -> f64 {
    let path = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
    let lines: String = (1..=n).map(|i| shipper_testkit::tag_line(f, i, 60) + "\n").collect();
    append_unseen(env, &path, &lines);
    expected[f as usize].1 = n + 1;
    let account = wait_all(env, agent, expected, 15);
    assert_exact_or_log(&account, agent);
    wait_metric(agent, "shipper_missed_events_total", secs, |v| v >= 1.0)
}

#[test]
fn the_net_backs_off_while_events_miss_nothing_and_reads_what_they_missed() {
    if !may_load_bpf("the_net_backs_off_while_events_miss_nothing_and_reads_what_they_missed") {
        return;
    }
    let env = Env::new();
    for f in 0..20u32 {
        let p = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
        std::fs::write(p, shipper_testkit::tag_line(f, 0, 60) + "\n").unwrap();
    }
    // The two options this test is about, short enough to watch the net back off.
    let config = env.config(
        "pods/*/*/*.log",
        "tail:\n  start_at: beginning\n  watch: ebpf\n  rescan_interval: 1s\n  max_rescan_interval: 4s\n",
    );
    let agent = Agent::start(&config);
    let mut expected: Vec<(u32, u64)> = (0..20).map(|f| (f, 1)).collect();
    wait_all(&env, &agent, &expected, 60);
    let interval = "shipper_rescan_interval_seconds";
    let backed_off = wait_metric(&agent, interval, 30, |v| v >= 4.0);
    assert_eq!(backed_off, 4.0, "clean rounds space the net up to max_rescan_interval");
    assert_eq!(agent.metric("shipper_missed_events_total"), 0.0, "{}", agent.log_tail());

    // Lines the events cannot report: read by the next round of the net, within max_rescan_interval.
    let path = env.path("pods/ns_p3_u/c/0.log");
    let missed = unseen_lines_arrive(&env, &agent, &mut expected, 3, 5, 5);
    assert_eq!(missed, 1.0, "one file had data no event reported");
    assert!(
        agent.metric(interval) <= 2.0,
        "a miss brings the net back to rescan_interval: {}",
        agent.metric(interval)
    );
    assert!(
        agent
            .log()
            .contains("the safety net found changes no file event reported"),
        "{}",
        agent.log_tail()
    );

    // Events still wake the reader for an ordinary append.
    let mut out = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(out, "{}", shipper_testkit::tag_line(3, 6, 60)).unwrap();
    expected[3].1 = 7;
    let account = wait_all(&env, &agent, &expected, 5);
    assert_exact_or_log(&account, &agent);
    // Busy files, each written every 5 ms across several rounds of the net: at a round the latest
    // write's event of some may still be on its way, which is not a miss.
    let mut busy: Vec<_> = (10..20u32)
        .map(|f| {
            let p = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
            (f, std::fs::OpenOptions::new().append(true).open(p).unwrap())
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(8);
    let mut n = 1;
    while Instant::now() < until {
        for (f, out) in &mut busy {
            writeln!(out, "{}", shipper_testkit::tag_line(*f, n, 60)).unwrap();
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    for (f, _) in &busy {
        expected[*f as usize].1 = n;
    }
    let account = wait_all(&env, &agent, &expected, 10);
    assert_exact_or_log(&account, &agent);
    assert_eq!(
        agent.metric("shipper_missed_events_total"),
        1.0,
        "evented writes are no misses: {}",
        agent.log_tail()
    );
    agent.stop();
}

/// A round of the net that finds unread data written less than a second before cannot tell yet
/// whether the write's event is on its way (events are drained once per sweep gap). A second later
/// it knows: no event came, so it was a miss, counted then, and the rounds come back to
/// `rescan_interval`. (The other way round — quiet files on a busy node whose events did come — is
/// what lets the net back off there.)
#[test]
fn data_found_within_a_second_of_its_write_is_a_miss_once_no_event_followed() {
    if !may_load_bpf("data_found_within_a_second_of_its_write_is_a_miss_once_no_event_followed") {
        return;
    }
    let env = Env::new();
    let path = env.path("pods/ns_p0_u/c/0.log");
    std::fs::write(&path, shipper_testkit::tag_line(0, 0, 60) + "\n").unwrap();
    // A round every second: the round after the write comes within a second of it.
    let config = env.config(
        "pods/*/*/*.log",
        "tail:\n  start_at: beginning\n  watch: ebpf\n  rescan_interval: 1s\n  max_rescan_interval: 1s\n",
    );
    let agent = Agent::start(&config);
    let mut expected = vec![(0u32, 1u64)];
    wait_all(&env, &agent, &expected, 60);
    assert_eq!(agent.metric("shipper_missed_events_total"), 0.0, "{}", agent.log_tail());
    let missed = unseen_lines_arrive(&env, &agent, &mut expected, 0, 3, 10);
    assert_eq!(missed, 1.0, "the write no event reported: {}", agent.log_tail());
    agent.stop();
}
