//! `cargo xtask cluster up|down|status|restart`: a real single-node Kubernetes on this machine —
//! etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc + CNI and a
//! kubelet whose pods log to /var/log/pods as on any node. Kubernetes 1.34 is built from the Go
//! module proxy (`release`), or 1.20 from Debian's source package (`build`, `--version 1.20`); the
//! rest comes from Debian's packages. The binaries are built once into a cache outside the repo, the
//! images without a registry (`image`). `down` stops exactly what `up` started and undoes what it
//! changed on the host (`host`). Facts and pitfalls: `../shared/kubernetes-from-debian.md`.

mod build;
mod config;
mod host;
mod image;
mod nodes;
mod pki;
mod procs;
mod release;

use procs::{start, wait_for};
pub use release::{Release, DEFAULT};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use crate::apt_install;

/// What `up` runs, from Debian: the node's runtime, etcd, and what the images are built with.
const RUN_PACKAGES: [&str; 14] = [
    "curl",
    "etcd-server",
    "etcd-client",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "conntrack",
    "iproute2",
    "busybox-static",
    "openssl",
    "gcc",
    "libc6-dev",
    "util-linux",
];
const API_PORT: u16 = 6443;
/// Audit only the agent's ServiceAccount (namespace monitoring, as the chart installs it), at
/// Metadata level, once per request (when its response completes; a watch when it starts).
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [\"system:serviceaccount:monitoring:shipper\"]
  - level: None
";
const ETCD_CLIENT: &str = "127.0.0.1:23790";
const ETCD_PEER: &str = "127.0.0.1:23800";

/// Where built binaries and downloaded sources are kept across clones and runs (outside the repo).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SHIPPER_CLUSTER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/shipper-cluster"))
}

/// The cluster's files on this machine.
pub struct Layout {
    /// Certificates, kubeconfigs, etcd's data, containerd's root, logs, `cluster.json`.
    pub state: PathBuf,
    /// Pid files and containerd's socket and state (tmpfs).
    pub run: PathBuf,
    pub pki: PathBuf,
    pub logs: PathBuf,
    pub node_name: String,
    /// A non-loopback address of this machine: the API server must advertise one (Endpoints refuse
    /// loopback); nothing needs to reach it.
    pub node_ip: String,
}

impl Layout {
    fn new() -> Result<Layout, String> {
        let state = std::env::var_os("SHIPPER_CLUSTER_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/lib/shipper-cluster"));
        let node_name = sh("hostname")?.trim().to_lowercase();
        let node_ip = sh("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1")?
            .trim()
            .to_string();
        if node_ip.is_empty() {
            return Err("this machine has no non-loopback IPv4 address for the API server to advertise".into());
        }
        Ok(Layout {
            pki: state.join("pki"),
            logs: state.join("logs"),
            run: PathBuf::from("/run/shipper-cluster"),
            state,
            node_name,
            node_ip,
        })
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{API_PORT}")
    }

    pub fn containerd_sock(&self) -> PathBuf {
        self.run.join("containerd.sock")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("admin.kubeconfig")
    }

    /// The cache's kubectl with the admin kubeconfig.
    pub fn kubectl(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd
    }
}

/// Runs a shell snippet, returning its stdout (its failure is an error naming it).
pub fn sh(script: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .map_err(|e| format!("sh -c {script:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sh -c {script:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let l = Layout::new()?;
    match args.first().map(String::as_str) {
        Some("up") => {
            let nodes = match args.iter().position(|a| a == "--nodes") {
                Some(i) => args
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .ok_or("--nodes takes a number: cargo xtask cluster up --nodes 20")?,
                None => 0,
            };
            let release = match args.iter().position(|a| a == "--version") {
                Some(i) => Release::parse(args.get(i + 1).ok_or("--version takes a version: --version 1.34")?)?,
                None => release::DEFAULT,
            };
            up(&l, nodes, release)
        }
        Some("down") => down(&l),
        Some("status") => status(&l),
        Some("restart") => {
            let name = args.get(1).ok_or("usage: cargo xtask cluster restart <component>")?;
            procs::restart(&l, name)?;
            if name == "kube-apiserver" {
                let bin = Release::running(&l).bin_dir();
                wait_for("kube-apiserver", &log(&l, name), Duration::from_secs(60), || {
                    api_ready(&l, &bin)
                })?;
            }
            Ok(())
        }
        Some("nodes") => {
            let n = args
                .get(1)
                .and_then(|n| n.parse().ok())
                .ok_or("usage: cargo xtask cluster nodes N (0 removes them)")?;
            nodes::set(&l, &Release::running(&l).bin_dir(), n)
        }
        Some("keep-nodes") => nodes::keep(&l, args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)),
        Some("build") => {
            let release = args.get(1).map_or(Ok(release::DEFAULT), |v| Release::parse(v))?;
            release.binaries().map(|bin| println!("{}", bin.display()))
        }
        _ => Err("usage: cargo xtask cluster <up [--nodes N] [--version 1.34|1.20]|down|status|restart COMPONENT|nodes N|build [VERSION]>".into()),
    }
}

/// Whether a cluster `up` started is running (its API server answers).
pub fn is_up() -> bool {
    let Ok(l) = Layout::new() else { return false };
    let bin = Release::running(&l).bin_dir();
    l.state.join("cluster.json").exists() && procs::running(&l, "kube-apiserver").is_some() && api_ready(&l, &bin)
}

fn log(l: &Layout, name: &str) -> String {
    procs::log_file(l, name).display().to_string()
}

fn is_root() -> bool {
    sh("id -u").is_ok_and(|u| u.trim() == "0")
}

/// What `up` needs before it starts anything: the Debian packages the node runs and the release's
/// binaries (Go builds: minutes on a new machine, nothing once built). Returns the binaries'
/// directory. `cargo xtask test` runs it beside the Rust builds and tests, `up` again (then instantly).
pub fn prepare(release: Release) -> Result<PathBuf, String> {
    if !is_root() {
        return Err("`cargo xtask cluster up` runs containers and a kubelet: run it as root".into());
    }
    let fresh: Vec<&str> = ["containerd", "etcd-server"]
        .into_iter()
        .filter(|p| {
            !sh(&format!("dpkg-query -W -f='${{Status}}' {p} 2>/dev/null")).is_ok_and(|s| s.contains("ok installed"))
        })
        .collect();
    apt_install(&RUN_PACKAGES)?;
    // Debian enables the services it installs where systemd runs: the cluster runs its own.
    if Path::new("/run/systemd/system").exists() {
        for svc in fresh.iter().map(|p| p.trim_end_matches("-server")) {
            let _ = sh(&format!("systemctl disable --now {svc} 2>/dev/null"));
        }
    }
    release.binaries()
}

fn up(l: &Layout, nodes: u32, release: Release) -> Result<(), String> {
    let bin = prepare(release)?;
    let pause = release.pause_c()?;
    host::record(l)?;
    release.record(l)?;
    pki::ensure(l)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eprintln!("building the agent's release binary for its image");
    crate::run(
        crate::cargo()
            .args(["build", "--release", "-p", "shipper"])
            .current_dir(&root),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let agent = target.join("release/shipper");

    let p = |f: &str| l.pki.join(f).display().to_string();
    let s = |f: &str| l.state.join(f).display().to_string();
    let etcd = vec![
        "etcd".to_string(),
        "--name=shipper".into(),
        format!("--data-dir={}", s("etcd")),
        format!("--listen-client-urls=http://{ETCD_CLIENT}"),
        format!("--advertise-client-urls=http://{ETCD_CLIENT}"),
        format!("--listen-peer-urls=http://{ETCD_PEER}"),
        format!("--initial-advertise-peer-urls=http://{ETCD_PEER}"),
        format!("--initial-cluster=shipper=http://{ETCD_PEER}"),
    ];
    start(l, "etcd", &etcd)?;
    wait_for("etcd", &log(l, "etcd"), Duration::from_secs(30), || {
        sh(&format!(
            "ETCDCTL_API=3 etcdctl --endpoints=http://{ETCD_CLIENT} endpoint health 2>/dev/null"
        ))
        .is_ok()
    })?;
    let b = |name: &str| bin.join(name).display().to_string();
    // The agents' requests, one line each (tests attribute the API server's load to them).
    std::fs::write(l.state.join("audit-policy.yaml"), AUDIT_POLICY).map_err(|e| e.to_string())?;
    let apiserver = vec![
        b("kube-apiserver"),
        format!("--etcd-servers=http://{ETCD_CLIENT}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={API_PORT}"),
        format!("--advertise-address={}", l.node_ip),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        format!("--kubelet-client-certificate={}", p("apiserver-kubelet-client.crt")),
        format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
        "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--allow-privileged=true".into(),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
        format!("--audit-policy-file={}", s("audit-policy.yaml")),
        format!("--audit-log-path={}", l.logs.join("audit.log").display()),
        "--audit-log-maxsize=100".into(),
    ];
    let mut apiserver = apiserver;
    if release.before_1_24() {
        apiserver.push("--insecure-port=0".into());
    }
    start(l, "kube-apiserver", &apiserver)?;
    wait_for(
        "kube-apiserver",
        &log(l, "kube-apiserver"),
        Duration::from_secs(90),
        || api_ready(l, &bin),
    )?;
    // Both run as admin, and check their own clients against the API server with it.
    let kubeconfig = l.kubeconfig().display().to_string();
    let kubeconfig_flags =
        ["kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig"].map(|f| format!("--{f}={kubeconfig}"));
    // 1.20's controller manager and scheduler serve plain HTTP unless told not to.
    let no_insecure_port: &[String] = if release.before_1_24() {
        &["--port=0".to_string()]
    } else {
        &[]
    };
    start(
        l,
        "kube-controller-manager",
        &[
            b("kube-controller-manager"),
            kubeconfig_flags[0].clone(),
            kubeconfig_flags[1].clone(),
            kubeconfig_flags[2].clone(),
            "--use-service-account-credentials".into(),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            format!("--cluster-signing-cert-file={}", p("ca.crt")),
            format!("--cluster-signing-key-file={}", p("ca.key")),
            format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
            "--leader-elect=false".into(),
        ]
        .into_iter()
        .chain(no_insecure_port.iter().cloned())
        .collect::<Vec<_>>(),
    )?;
    start(
        l,
        "kube-scheduler",
        &[
            b("kube-scheduler"),
            kubeconfig_flags[0].clone(),
            kubeconfig_flags[1].clone(),
            kubeconfig_flags[2].clone(),
            "--leader-elect=false".into(),
        ]
        .into_iter()
        .chain(no_insecure_port.iter().cloned())
        .collect::<Vec<_>>(),
    )?;

    let write = |path: PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(l.state.join("containerd.toml"), config::containerd(l))?;
    write(l.state.join("cni/10-shipper.conflist"), config::cni(l))?;
    write(l.state.join("kubelet.yaml"), config::kubelet(l))?;
    start_containerd(l, &s("containerd.toml"))?;
    let sock = l.containerd_sock().display().to_string();
    wait_for("containerd", &log(l, "containerd"), Duration::from_secs(30), || {
        sh(&format!("ctr --address {sock} version >/dev/null 2>&1")).is_ok()
    })?;
    let images = image::build_all(l, &pause, &root, &agent)?;
    eprintln!("images imported: {}", images.join(", "));
    start(
        l,
        "kubelet",
        &[
            b("kubelet"),
            format!("--config={}", s("kubelet.yaml")),
            format!("--kubeconfig={}", s("kubelet.kubeconfig")),
            format!("--container-runtime-endpoint=unix://{sock}"),
            format!("--node-ip={}", l.node_ip),
            format!("--hostname-override={}", l.node_name),
            "--v=1".into(),
        ]
        .into_iter()
        .chain(release.before_1_24().then(|| "--container-runtime=remote".to_string()))
        .collect::<Vec<_>>(),
    )?;
    wait_for("node", &log(l, "kubelet"), Duration::from_secs(120), || {
        node_ready(l, &bin, &l.node_name)
    })?;
    // Pods need the default ServiceAccount (and before 1.24 its token Secret).
    let wanted = if release.before_1_24() {
        "{.secrets[0].name}"
    } else {
        "{.metadata.name}"
    };
    wait_for(
        "the default ServiceAccount",
        &log(l, "kube-controller-manager"),
        Duration::from_secs(60),
        || {
            l.kubectl(&bin)
                .args(["get", "serviceaccount", "default", "-o", &format!("jsonpath={wanted}")])
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
        },
    )?;
    if nodes > 0 {
        nodes::set(l, &bin, nodes)?;
    }
    let info = serde_json::json!({
        "server": l.server(),
        "api_port": API_PORT,
        "kubeconfig": l.kubeconfig(),
        "kubectl": bin.join("kubectl"),
        "node": l.node_name,
        "node_ip": l.node_ip,
        "etcd": format!("http://{ETCD_CLIENT}"),
        "state": l.state,
        "logs": l.logs,
        "images": {"shipper": image::shipper_ref(&root)?, "busybox": image::BUSYBOX, "pause": image::PAUSE},
        "container_log_max_size": config::LOG_MAX_SIZE,
        "container_log_max_files": config::LOG_MAX_FILES,
        "fake_nodes": nodes,
        "kubernetes": release.version(),
        // Tests restart components through it (`cluster restart kube-apiserver`).
        "xtask": std::env::current_exe().map_err(|e| e.to_string())?,
    });
    let path = l.state.join("cluster.json");
    std::fs::write(&path, serde_json::to_string_pretty(&info).unwrap()).map_err(|e| e.to_string())?;
    println!(
        "cluster up: node {} Ready; export KUBECONFIG={}",
        l.node_name,
        l.kubeconfig().display()
    );
    Ok(())
}

/// containerd on the cluster's own config. One left running by an earlier `up` whose pid file is
/// gone (a machine stopped mid-run) would hold the metadata database's lock: it is stopped first.
/// If containerd then dies at once, what it printed is shown, its run-time state (sockets, task
/// state: nothing a new start needs) is set aside, and it is started once more.
fn start_containerd(l: &Layout, config: &str) -> Result<(), String> {
    if procs::running(l, "containerd").is_none() {
        let _ = sh(&format!("pkill -9 -x -f 'containerd --config {config}'"));
    }
    let argv = ["containerd".to_string(), "--config".into(), config.into()];
    let Err(first) = start(l, "containerd", &argv) else {
        return Ok(());
    };
    eprintln!("{first}");
    let state = l.run.join("containerd");
    if state.exists() {
        let aside = l.run.join(format!("containerd.set-aside-{}", std::process::id()));
        std::fs::rename(&state, &aside).map_err(|e| format!("{first}\nsetting {} aside: {e}", state.display()))?;
        eprintln!("containerd's state set aside as {}", aside.display());
    }
    for sock in [l.containerd_sock(), l.run.join("containerd.sock.ttrpc")] {
        let _ = std::fs::remove_file(sock);
    }
    eprintln!("starting containerd once more");
    start(l, "containerd", &argv).map(|_| ())
}

fn api_ready(l: &Layout, bin: &Path) -> bool {
    l.kubectl(bin)
        .args(["get", "--raw", "/readyz"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn node_ready(l: &Layout, bin: &Path, node: &str) -> bool {
    l.kubectl(bin)
        .args([
            "get",
            "node",
            node,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ])
        .output()
        .is_ok_and(|o| o.stdout == b"True")
}

/// Stops what `up` started, pods first, then undoes its changes to the host.
fn down(l: &Layout) -> Result<(), String> {
    if !is_root() {
        return Err("`cargo xtask cluster down` must run as root, like `up`".into());
    }
    nodes::stop(l);
    procs::stop(l, "kubelet");
    let sock = l.containerd_sock().display().to_string();
    if procs::running(l, "containerd").is_some() {
        let tasks = sh(&format!("ctr --address {sock} -n k8s.io tasks ls -q 2>/dev/null")).unwrap_or_default();
        for task in tasks.lines().filter(|t| !t.is_empty()) {
            let _ = sh(&format!(
                "ctr --address {sock} -n k8s.io tasks kill -a -s SIGKILL {task} 2>/dev/null"
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
        for task in tasks.lines().filter(|t| !t.is_empty()) {
            let _ = sh(&format!(
                "ctr --address {sock} -n k8s.io tasks delete -f {task} >/dev/null 2>&1"
            ));
        }
    }
    // Whatever still runs in kubelet's cgroups (a shim that lost its containerd, say).
    let _ = sh("cat $(find /sys/fs/cgroup/memory/kubepods /sys/fs/cgroup/pids/kubepods -name cgroup.procs 2>/dev/null) 2>/dev/null | sort -u | xargs -r kill -9");
    procs::stop(l, "containerd");
    let _ = sh(&format!("pkill -9 -f 'containerd-shim.*-address {sock}'"));
    for name in ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"] {
        procs::stop(l, name);
    }
    std::thread::sleep(Duration::from_millis(500));
    host::restore(l)?;
    println!("cluster down: every process stopped, the host restored");
    Ok(())
}

fn status(l: &Layout) -> Result<(), String> {
    let names = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "containerd",
        "kubelet",
    ];
    let mut all = true;
    for name in names {
        match procs::running(l, name) {
            Some(pid) => println!("{name:<24} running (pid {pid}), log {}", log(l, name)),
            None => {
                all = false;
                println!("{name:<24} stopped");
            }
        }
    }
    if all {
        let release = Release::running(l);
        println!("Kubernetes {}", release.version());
        let bin = release.bin_dir();
        println!("API server ready: {}", api_ready(l, &bin));
        println!("node {} Ready: {}", l.node_name, node_ready(l, &bin, &l.node_name));
        println!("export KUBECONFIG={}", l.kubeconfig().display());
        Ok(())
    } else {
        Err("the cluster is not (fully) up: `cargo xtask cluster up`".into())
    }
}
