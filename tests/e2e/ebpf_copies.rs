//! Writes that do not go through `write(2)`: `pwritev2`, `sendfile`, `copy_file_range`, `splice`
//! and io_uring writes into a tailed file wake the reader through eBPF, with the periodic safety
//! check an hour away (so nothing else could have found them).

use crate::ebpf::may_load_bpf;
use crate::support::{assert_exact_or_log, wait_all, Agent, Env};
use shipper_testkit::{tag_line, Account};
use std::os::unix::io::AsRawFd;

const EVENTS_ONLY: &str = "tail:\n  start_at: beginning\n  watch: ebpf\n  rescan_interval: 1h\n";

/// Lines `range` of file `f`, as one block of text.
fn block(f: u32, range: std::ops::Range<u64>) -> Vec<u8> {
    range
        .map(|s| tag_line(f, s, 80) + "\n")
        .collect::<String>()
        .into_bytes()
}

/// A file holding `bytes`, open for reading from its start.
fn source(env: &Env, name: &str, bytes: &[u8]) -> std::fs::File {
    let path = env.path(&format!("staging/{name}"));
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::open(path).unwrap()
}

fn check(rc: isize, len: usize, what: &str) {
    assert_eq!(rc, len as isize, "{what}: {}", std::io::Error::last_os_error());
}

#[test]
fn copies_vectored_and_io_uring_writes_into_tailed_files_wake_the_reader() {
    if !may_load_bpf("copies_vectored_and_io_uring_writes_into_tailed_files_wake_the_reader") {
        return;
    }
    let env = Env::new();
    let names = ["pwritev2", "sendfile", "copy_file_range", "splice", "io_uring"];
    // Each file starts with one line, read before the agent is past its start.
    for (f, name) in names.iter().enumerate() {
        std::fs::write(env.path(&format!("app/{name}.log")), block(f as u32, 0..1)).unwrap();
    }
    let agent = Agent::start(&env.config("app/*.log", EVENTS_ONLY));
    assert_eq!(agent.metric("shipper_watcher_mode{mode=\"ebpf\"}"), 1.0);
    let firsts: Vec<(u32, u64)> = (0..names.len() as u32).map(|f| (f, 1)).collect();
    wait_all(&env, &agent, &firsts, 30);

    // Open for writing at the end, not with O_APPEND (which sendfile, copy_file_range and splice
    // refuse).
    let open = |name: &str| {
        use std::io::Seek;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(env.path(&format!("app/{name}.log")))
            .unwrap();
        f.seek(std::io::SeekFrom::End(0)).unwrap();
        f
    };
    let rest = 1..500u64;
    // pwritev2 at the file's current offset (-1), as appenders using vectored I/O do.
    let (out, data) = (open("pwritev2"), block(0, rest.clone()));
    let iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: one iovec over `data`, which outlives the call; the fd is open for writing.
    check(
        unsafe { libc::pwritev2(out.as_raw_fd(), &iov, 1, -1, 0) },
        data.len(),
        "pwritev2",
    );
    // sendfile from a staged file.
    let (out, data) = (open("sendfile"), block(1, rest.clone()));
    let input = source(&env, "sendfile", &data);
    // SAFETY: both fds are open; a null offset reads from the input's own position.
    let rc = unsafe { libc::sendfile(out.as_raw_fd(), input.as_raw_fd(), std::ptr::null_mut(), data.len()) };
    check(rc, data.len(), "sendfile");
    // copy_file_range from a staged file.
    let (out, data) = (open("copy_file_range"), block(2, rest.clone()));
    let input = source(&env, "copy_file_range", &data);
    // SAFETY: both fds are open; null offsets use (and move) the files' own positions.
    let rc = unsafe {
        libc::copy_file_range(
            input.as_raw_fd(),
            std::ptr::null_mut(),
            out.as_raw_fd(),
            std::ptr::null_mut(),
            data.len(),
            0,
        )
    };
    check(rc as isize, data.len(), "copy_file_range");
    // splice from a pipe.
    let (out, data) = (open("splice"), block(3, rest.clone()));
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for the two fds.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let mut sent = 0;
    while sent < data.len() {
        let chunk = &data[sent..data.len().min(sent + 16 * 1024)];
        // SAFETY: writes `chunk`, which outlives the call, into the pipe's write end.
        let n = unsafe { libc::write(pipe[1], chunk.as_ptr() as *const libc::c_void, chunk.len()) };
        check(n, chunk.len(), "write to the pipe");
        // SAFETY: moves what the pipe holds into the file; null offsets use the file's position.
        let moved = unsafe {
            libc::splice(
                pipe[0],
                std::ptr::null_mut(),
                out.as_raw_fd(),
                std::ptr::null_mut(),
                chunk.len(),
                0,
            )
        };
        check(moved, chunk.len(), "splice");
        sent += chunk.len();
    }
    // SAFETY: closing the two pipe fds made above.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }

    // An io_uring write at the file's position (offset -1), in two requests.
    let (out, data) = (open("io_uring"), block(4, rest.clone()));
    let mut ring = io_uring::IoUring::new(2).unwrap();
    for half in data.chunks(data.len().div_ceil(2)) {
        let write =
            io_uring::opcode::Write::new(io_uring::types::Fd(out.as_raw_fd()), half.as_ptr(), half.len() as u32)
                .offset(u64::MAX)
                .build();
        // SAFETY: the buffer (`data`) and the fd (`out`) outlive the request, which is waited for
        // below before either is dropped.
        unsafe { ring.submission().push(&write) }.unwrap();
        ring.submit_and_wait(1).unwrap();
        let done = ring.completion().next().expect("the write's completion");
        check(done.result() as isize, half.len(), "io_uring write");
    }

    let all: Vec<(u32, u64)> = (0..names.len() as u32).map(|f| (f, 500)).collect();
    wait_all(&env, &agent, &all, 30);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), all), &agent);
    agent.stop();
}
