use super::*;
use shipper_testkit::{client, Format, LogWriter, Receiver};
use std::ffi::CString;
use std::io::{Error, Result};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// A `Key=` of the unit (the last one, as systemd takes it).
fn directive(unit: &str, key: &str) -> String {
    let mut values = unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('='));
    values.next_back().unwrap_or_else(|| panic!("no {key}=")).trim().into()
}

/// A field of /proc/PID/status.
fn status(pid: &str, field: &str) -> String {
    let s = read(format!("/proc/{pid}/status"));
    let value = s.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    value.unwrap().trim().into()
}

fn caps(pid: &str, field: &str) -> u64 {
    u64::from_str_radix(&status(pid, field), 16).unwrap()
}

/// The unit's capabilities, less those this machine lacks (said on stderr): as a bit set, and as
/// setpriv's --bounding-set.
fn unit_caps(unit: &str) -> (u64, String) {
    let known = Command::new("setpriv").arg("--list-caps").output().unwrap();
    let known = String::from_utf8(known.stdout).unwrap(); // in bit order
    let (mut set, mut arg) = (0, String::from("-all"));
    for name in directive(unit, "CapabilityBoundingSet").split_whitespace() {
        let short = name.trim_start_matches("CAP_").to_lowercase();
        let bit = known.lines().position(|k| k == short).expect(name);
        if caps("self", "CapBnd") & (1 << bit) == 0 {
            eprintln!("{name} is not in this machine's bounding set: the agent runs without it");
            continue;
        }
        set |= 1 << bit;
        arg += &format!(",+{short}");
    }
    (set, arg)
}

fn bpf(code: u32, k: u32, jt: usize, jf: usize) -> libc::sock_filter {
    let (code, jt, jf) = (code as u16, jt as u8, jf as u8);
    libc::sock_filter { code, jt, jf, k }
}

/// The unit's seccomp filter as systemd builds it: SystemCallArchitectures=native, its
/// RestrictAddressFamilies (socket(2) of another family: EAFNOSUPPORT) and its SystemCallFilter
/// deny list (SystemCallErrorNumber=EPERM), groups expanded by systemd-analyze.
fn seccomp_filter(unit: &str) -> Vec<libc::sock_filter> {
    assert_eq!(directive(unit, "SystemCallArchitectures"), "native");
    assert_eq!(directive(unit, "SystemCallErrorNumber"), "EPERM");
    let filter = directive(unit, "SystemCallFilter");
    let groups = filter.strip_prefix('~').expect("a deny list (the only kind emulated)");
    let mut cmd = Command::new("systemd-analyze");
    let out = cmd.arg("syscall-filter").args(groups.split_whitespace()).output();
    let out = String::from_utf8(out.unwrap().stdout).unwrap();
    let names: Vec<&str> = out.lines().filter(|l| l.starts_with(' ')).map(str::trim).collect();
    assert!(!names.iter().any(|n| n.starts_with('@')), "nested groups: {names:?}");
    let table = read("/usr/include/x86_64-linux-gnu/asm/unistd_64.h");
    let nr = |name: &&str| {
        let define = format!("#define __NR_{name} ");
        table.lines().find_map(|l| l.strip_prefix(&define)?.parse::<u32>().ok())
    };
    let denied: Vec<u32> = names.iter().filter_map(nr).collect();
    assert!(denied.len() >= 20, "denied {denied:?} of {names:?}");
    let families = directive(unit, "RestrictAddressFamilies");
    let family = |f: &str| match f {
        "AF_UNIX" => libc::AF_UNIX as u32,
        "AF_INET" => libc::AF_INET as u32,
        "AF_INET6" => libc::AF_INET6 as u32,
        "AF_NETLINK" => libc::AF_NETLINK as u32,
        _ => panic!("add {f} to the families"),
    };
    let families: Vec<u32> = families.split_whitespace().map(family).collect();
    let (ld, ret) = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, libc::BPF_RET | libc::BPF_K);
    let (eq, ge) = (libc::BPF_JMP | libc::BPF_JEQ, libc::BPF_JMP | libc::BPF_JGE);
    let errno = |e: i32| bpf(ret, libc::SECCOMP_RET_ERRNO | e as u32, 0, 0);
    let allow = bpf(ret, libc::SECCOMP_RET_ALLOW, 0, 0);
    // seccomp_data: nr at 0, arch at 4, args[0] at 16 (its low half: little-endian). Only
    // x86_64 (AUDIT_ARCH_X86_64), not its x32 ABI (nr with bit 30).
    let mut f = vec![bpf(ld, 4, 0, 0), bpf(eq, 0xc000_003e, 1, 0), errno(libc::EPERM)];
    f.extend([bpf(ld, 0, 0, 0), bpf(ge, 0x4000_0000, 0, 1), errno(libc::EPERM)]);
    let socket = libc::SYS_socket as u32;
    f.extend([bpf(eq, socket, 0, 2 * families.len() + 2), bpf(ld, 16, 0, 0)]);
    for family in families {
        f.extend([bpf(eq, family, 0, 1), allow]);
    }
    f.push(errno(libc::EAFNOSUPPORT));
    for nr in denied {
        f.extend([bpf(eq, nr, 0, 1), errno(libc::EPERM)]);
    }
    f.push(allow);
    f
}

/// Whether the unit leaves a mount point writable: /dev, /proc (options of their own) and
/// the state directory.
fn writable(point: &str, state: &str) -> bool {
    let under = |dir: &str| point == dir || point.starts_with(&format!("{dir}/"));
    under("/dev") || under("/proc") || point == state
}

/// (mount point, mount options) of a process.
fn mounts(pid: &str) -> Vec<(String, String)> {
    let info = read(format!("/proc/{pid}/mountinfo"));
    let fields = info.lines().map(|l| l.split(' ').collect::<Vec<_>>());
    fields.map(|f| (f[4].to_string(), f[5].to_string())).collect()
}

fn ok(rc: i32) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    Err(Error::last_os_error())
}

/// In the child, between fork and exec (so only syscalls, on memory prepared before the fork):
/// a mount namespace with `read_only` remounted read-only and `state` a writable bind mount,
/// then NoNewPrivileges and the seccomp filter.
fn enter(read_only: &[CString], state: &CString, filter: &[libc::sock_filter]) -> Result<()> {
    let (none, data) = (std::ptr::null(), std::ptr::null());
    let (len, filter) = (filter.len() as u16, filter.as_ptr().cast_mut());
    let prog = libc::sock_fprog { len, filter };
    let (private, remount) = (libc::MS_REC | libc::MS_PRIVATE, libc::MS_REMOUNT | libc::MS_BIND);
    // SAFETY: syscalls given NUL-terminated strings and a filter that outlive them.
    unsafe {
        ok(libc::unshare(libc::CLONE_NEWNS))?;
        ok(libc::mount(none, c"/".as_ptr(), none, private, data))?;
        ok(libc::mount(state.as_ptr(), state.as_ptr(), none, libc::MS_BIND, data))?;
        for point in read_only {
            ok(libc::mount(none, point.as_ptr(), none, remount | libc::MS_RDONLY, data))?;
        }
        ok(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0))?;
        let mode = libc::SECCOMP_MODE_FILTER as libc::c_ulong;
        ok(libc::prctl(libc::PR_SET_SECCOMP, mode, &prog as *const _))
    }
}

/// Kills the agent if the test fails before stopping it.
struct Agent(std::process::Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write(writers: &mut [(LogWriter, &str)], lines: std::ops::Range<u32>) {
    for (w, what) in writers {
        for i in lines.clone() {
            w.write_line("stdout", &format!("{what} line {i}")).unwrap();
        }
        w.flush().unwrap();
    }
}

#[test]
fn the_agent_ships_with_ebpf_in_the_units_sandbox() {
    let test = "the_agent_ships_with_ebpf_in_the_units_sandbox";
    if caps("self", "CapEff") & (1 << 21) == 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: {test} must run");
        eprintln!("skipping {test}: building the sandbox needs root (CAP_SYS_ADMIN)");
        return;
    }
    if !have("systemd-analyze", test) || !have("setpriv", test) {
        return;
    }
    let root = installed();
    let r = root.path();
    let unit = read(r.join(UNIT));
    assert_eq!(directive(&unit, "NoNewPrivileges"), "yes");
    let mut config = read(r.join(CONFIG));
    for dir in ["/var/log/pods/", "/var/lib/docker/containers/", "/var/lib/shipper/"] {
        assert!(config.contains(dir), "the example config has no {dir}");
        config = config.replace(dir, &format!("{}{dir}", r.display()));
    }
    fs::write(r.join(CONFIG), config).unwrap();
    // A pod's log that only its owner (uid 65534) may read: CAP_DAC_READ_SEARCH reads it.
    let pod = r.join("var/log/pods/ns_web-0_6f1c9a4e-5b2d-4c8e-9f7a-1b2c3d4e5f60/app/0.log");
    let docker = r.join("var/lib/docker/containers/c0ffee/c0ffee-json.log");
    let pod_w = LogWriter::create(&pod, Format::Cri).unwrap();
    let docker_w = LogWriter::create(&docker, Format::Docker).unwrap();
    let mut writers = [(pod_w, "pod"), (docker_w, "docker")];
    write(&mut writers, 0..100);
    let (container, pod_dir) = (pod.parent().unwrap(), pod.parent().unwrap().parent().unwrap());
    for (p, m) in [(pod_dir, 0o700), (container, 0o700), (&pod, 0o600)] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }
    // ExecStart and Environment= with the root's paths, plus the test's receiver and port.
    let loki = Receiver::start();
    let free = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let listen = free.unwrap().to_string();
    let exec = directive(&unit, "ExecStart").replace(" /", &format!(" {}/", r.display()));
    let env = directive(&unit, "Environment").replace("%H", "node-a");
    let (key, value) = env.split_once('=').expect("Environment=KEY=VALUE");
    let state = r.join(STATE).to_str().unwrap().to_string();
    let read_only = mounts("self").into_iter().filter(|m| !writable(&m.0, &state));
    let read_only: Vec<CString> = read_only.map(|m| CString::new(m.0).unwrap()).collect();
    let (want_caps, bounding) = unit_caps(&unit);
    let (state_c, filter) = (CString::new(state.clone()).unwrap(), seccomp_filter(&unit));
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--bounding-set={bounding}")).arg("--inh-caps=-all");
    cmd.arg("--").args(format!("{}{exec}", r.display()).split_whitespace());
    let url = loki.url();
    cmd.args(["--loki", &url, "--http-listen", &listen]);
    cmd.args(["--start-at", "beginning"]);
    cmd.env(key, value).stdout(std::process::Stdio::null());
    cmd.stderr(fs::File::create(r.join("agent.log")).unwrap());
    // SAFETY: `enter` only makes syscalls (see there).
    unsafe { cmd.pre_exec(move || enter(&read_only, &state_c, &filter)) };
    let mut agent = Agent(cmd.spawn().expect("start setpriv"));
    let log = || read(r.join("agent.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client::get(&format!("http://{listen}/ready")).is_ok_and(|r| r.status == 200) {
        let exited = agent.0.try_wait().unwrap();
        assert!(exited.is_none() && Instant::now() < deadline, "{exited:?}:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The sandbox is there: setpriv has exec'd the agent in it.
    let pid = agent.0.id().to_string();
    assert_eq!((caps(&pid, "CapEff"), caps(&pid, "CapBnd")), (want_caps, want_caps));
    assert_eq!(status(&pid, "NoNewPrivs") + &status(&pid, "Seccomp"), "12");
    for (point, options) in mounts(&pid) {
        let rw = writable(&point, &state);
        assert_eq!(options.starts_with("rw"), rw, "{point} {options}");
    }
    // Appends after the start reach the reader through eBPF events.
    write(&mut writers, 100..150);
    let all = loki.wait_for_entries(300, Duration::from_secs(30));
    assert!(all, "{} of 300 lines:\n{}", loki.entry_count(), log());
    let pod_labels = r#"container="app", job="ns/app", namespace="ns", pod="web-0""#;
    for (path, labels, what) in [(&pod, pod_labels, "pod"), (&docker, r#"job="docker""#, "docker")] {
        let common = format!(r#"filename="{}", node_name="node-a", stream="stdout""#, path.display());
        let stream = loki.stream(&format!("{{{common}, {labels}}}"));
        let lines: Vec<String> = stream.into_iter().map(|e| e.line).collect();
        let want: Vec<String> = (0..150).map(|i| format!("{what} line {i}")).collect();
        assert_eq!(lines, want, "{labels} of {:?}", loki.streams().keys());
    }
    let metrics = client::get(&format!("http://{listen}/metrics")).unwrap().text();
    let value = |series: &str| {
        let mut lines = metrics.lines();
        lines.find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    if cfg!(feature = "ebpf") {
        let ebpf = value(r#"shipper_watcher_mode{mode="ebpf"}"#);
        assert_eq!(ebpf, Some(1.0), "{metrics}\n{}", log());
        let events = value("shipper_ebpf_events_total").unwrap_or(0.0);
        assert!(events >= 1.0, "{metrics}");
    }
    if value(r#"shipper_reader_mode{mode="io_uring"}"#) != Some(1.0) {
        assert!(std::env::var_os("CI").is_none(), "no io_uring:\n{metrics}\n{}", log());
        eprintln!("io_uring is not available here: not checked");
    }
    // SIGTERM: a clean stop, with the positions written into the state directory.
    assert_eq!(unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) }, 0);
    let exit = agent.0.wait().unwrap();
    assert!(exit.success(), "agent exited with {exit}:\n{}", log());
    // No warnings: nothing the agent tried was refused (bar io_uring's, checked above).
    let warned = |l: &&str| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("pread");
    assert!(!log().lines().any(|l| warned(&l)), "{}", log());
    let saved = crate::render::positions(Path::new(&format!("{state}/positions.json")));
    assert!(saved.to_string().contains("0.log"), "{saved}\n{}", log());
}
