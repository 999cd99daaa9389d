//! The cluster `cargo xtask cluster up` started (its `cluster.json`), driven with the kubectl built
//! beside it. Tests take it one at a time: they install the same chart into the same namespace.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const NAMESPACE: &str = "monitoring";
pub const SELECTOR: &str = "app.kubernetes.io/name=shipper";

pub struct Cluster {
    pub info: Value,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    pub node: String,
    pub api_port: u64,
}

static LOCK: Mutex<()> = Mutex::new(());

/// The running cluster and exclusive use of it; `None` (with the reason printed) when there is none
/// outside CI. Under CI a missing cluster fails the test: `cargo xtask test` starts one there.
pub fn cluster() -> Option<(Cluster, MutexGuard<'static, ()>)> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::env::var_os("SHIPPER_CLUSTER_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/shipper-cluster"));
    let file = state.join("cluster.json");
    let why = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let info: Value = serde_json::from_str(&text).expect("cluster.json");
            let c = Cluster {
                kubectl: PathBuf::from(info["kubectl"].as_str().unwrap()),
                kubeconfig: PathBuf::from(info["kubeconfig"].as_str().unwrap()),
                node: info["node"].as_str().unwrap().to_owned(),
                api_port: info["api_port"].as_u64().unwrap(),
                info,
            };
            if c.kubectl(&["get", "--raw", "/readyz"]).status.success() {
                return Some((c, guard));
            }
            format!("the cluster of {} does not answer", file.display())
        }
        Err(_) => format!("no cluster is up ({} is missing)", file.display()),
    };
    if std::env::var_os("CI").is_some() {
        panic!("{why}: under CI `cargo xtask test` starts one with `cargo xtask cluster up`");
    }
    eprintln!("skipped: {why}; run `cargo xtask cluster up` as root first (CI does)");
    None
}

impl Cluster {
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// kubectl's stdout; a failure panics with its stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        stdout_of("kubectl", args, self.kubectl(args))
    }

    /// `kubectl ARGS -f -` with `yaml` on stdin: stdout, or stderr as the error.
    pub fn with_stdin(&self, args: &[&str], yaml: &str) -> Result<String, String> {
        let mut all = args.to_vec();
        all.extend(["-f", "-"]);
        let out = self.kubectl_in(&all, Some(yaml));
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn image(&self, name: &str) -> String {
        self.info["images"][name].as_str().unwrap().to_owned()
    }

    /// Polls `f` every 500 ms until it gives a value; panics naming `what` after `timeout`.
    pub fn wait<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        self.wait_ok(what, timeout, || f().ok_or_else(String::new))
    }

    /// `wait` for a check that says why it does not hold yet: the last reason is in the panic.
    pub fn wait_ok<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
        let start = Instant::now();
        loop {
            let why = match f() {
                Ok(v) => return v,
                Err(why) => why,
            };
            assert!(start.elapsed() < timeout, "{what}: not after {timeout:?} {why}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `xtask ARGS` (the binary that started the cluster): `cluster restart kube-apiserver`,
    /// `cluster nodes 20`.
    pub fn xtask(&self, args: &[&str]) {
        let xtask = self.info["xtask"]
            .as_str()
            .expect("cluster.json from a current `cargo xtask cluster up`");
        let out = Command::new(xtask).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "xtask {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// etcdctl (v3 API) against the cluster's etcd; stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let endpoint = format!("--endpoints={}", self.info["etcd"].as_str().unwrap());
        let out = Command::new("etcdctl")
            .arg(endpoint)
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `helm ARGS` (the pinned Helm `cargo xtask setup` builds) against this cluster.
    pub fn helm(&self, args: &[&str]) -> Output {
        crate::render::helm_with(Some(&self.kubeconfig), args)
    }

    /// Helm's stdout; a failure panics with its stderr.
    pub fn helm_ok(&self, args: &[&str]) -> String {
        stdout_of("helm", args, self.helm(args))
    }

    pub fn ensure_namespace(&self) {
        let _ = self.kubectl(&["create", "namespace", NAMESPACE]);
    }

    /// `kubectl get pods -n monitoring -l app.kubernetes.io/name=shipper`, as a user checks it,
    /// shows `pod` Running with its one container ready.
    pub fn assert_listed_running(&self, pod: &str) {
        let listed = self.ok(&["get", "pods", "-n", NAMESPACE, "-l", SELECTOR]);
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(pod) && l.contains("Running") && l.contains("1/1")),
            "{listed}"
        );
    }

    /// The agent's pods on the real node (fake nodes' pods never run).
    pub fn agent_pods(&self) -> Vec<Value> {
        let list = self.json(&["get", "pods", "-n", NAMESPACE, "-l", SELECTOR]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["spec"]["nodeName"] == self.node.as_str())
            .cloned()
            .collect()
    }

    /// The name of the agent's pod once it is Running and Ready (kubelet's readiness probe on
    /// `/ready` passed), other than `not`.
    pub fn agent_ready(&self, not: Option<&str>) -> String {
        let start = Instant::now();
        loop {
            let pods = self.agent_pods();
            let found = pods.iter().find_map(|p| {
                let name = p["metadata"]["name"].as_str()?.to_owned();
                let ready = ready(p) && p["metadata"]["deletionTimestamp"].is_null();
                (ready && Some(name.as_str()) != not).then_some(name)
            });
            if let Some(name) = found {
                return name;
            }
            if start.elapsed() > Duration::from_secs(120) {
                panic!("the agent's pod is not Ready after 120 s:\n{}", self.explain(&pods));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// What a test that waited in vain needs to see: each pod's phase, conditions and container
    /// states, the namespace's events, and the end of each agent container's log.
    pub fn explain(&self, pods: &[Value]) -> String {
        let mut out = String::new();
        if pods.is_empty() {
            out.push_str("no agent pod on this node\n");
        }
        for p in pods {
            let name = p["metadata"]["name"].as_str().unwrap_or("?");
            out.push_str(&format!(
                "pod {name}: phase {} conditions {} containers {}\n",
                p["status"]["phase"], p["status"]["conditions"], p["status"]["containerStatuses"]
            ));
            for previous in ["false", "true"] {
                let logs = self.kubectl(&[
                    "logs",
                    "-n",
                    NAMESPACE,
                    name,
                    "--tail",
                    "40",
                    &format!("--previous={previous}"),
                ]);
                out.push_str(&format!(
                    "--- logs (previous={previous}) ---\n{}{}\n",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                ));
            }
        }
        let events = self.kubectl(&["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"]);
        out.push_str(&format!("--- events ---\n{}", String::from_utf8_lossy(&events.stdout)));
        out
    }

    /// Removes what the chart installed, waits for the pods to go, and clears the agent's positions
    /// on the node, so the next install is a first start.
    pub fn uninstall(&self) {
        // A Helm release of the chart (what the Helm tests and `install` leave), then whatever
        // `kubectl apply` put there.
        let _ = self.helm(&["uninstall", "shipper", "-n", NAMESPACE, "--ignore-not-found", "--wait"]);
        let _ = self.kubectl(&[
            "delete",
            "daemonset,configmap,serviceaccount,service",
            "-n",
            NAMESPACE,
            "-l",
            SELECTOR,
            "--wait",
        ]);
        let _ = self.kubectl(&["delete", "clusterrole,clusterrolebinding", "-l", SELECTOR]);
        // The DaemonSet's pods, at once rather than when the garbage collector gets to them.
        let _ = self.kubectl(&["delete", "pods", "-n", NAMESPACE, "-l", SELECTOR, "--wait=false"]);
        // The pods' grace period is 40 s; kubelet may still be creating one it must then tear down.
        let gone = Duration::from_secs(180);
        let start = Instant::now();
        while start.elapsed() < gone && !self.agent_pods().is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
        let left = self.agent_pods();
        if !left.is_empty() {
            let describe = self.kubectl(&["describe", "pods", "-n", NAMESPACE, "-l", SELECTOR]);
            let names: Vec<&str> = left.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
            let log = self.info["logs"].as_str().map(|d| format!("{d}/kubelet.log"));
            let kubelet = log.and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
            let about: Vec<&str> = kubelet
                .lines()
                .filter(|l| names.iter().any(|n| l.contains(n)))
                .collect();
            panic!(
                "the agent's pods still there {gone:?} after the DaemonSet's deletion: {}\n{}\nkubelet on them:\n{}",
                left.iter().map(pod_state).collect::<Vec<_>>().join("; "),
                String::from_utf8_lossy(&describe.stdout),
                about[about.len().saturating_sub(60)..].join("\n")
            );
        }
        let _ = std::fs::remove_dir_all("/var/lib/shipper");
    }
}

/// The stdout of `tool args`; a failure panics with what it printed.
fn stdout_of(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A pod's name, phase, whether it is being deleted, and each container's state, for a failure.
pub fn pod_state(pod: &Value) -> String {
    let containers: Vec<String> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}={}", c["name"].as_str().unwrap_or("?"), c["state"]))
        .collect();
    format!(
        "{} {} deletion={} [{}]",
        pod["metadata"]["name"].as_str().unwrap_or("?"),
        pod["status"]["phase"].as_str().unwrap_or("?"),
        pod["metadata"]["deletionTimestamp"],
        containers.join(", ")
    )
}

/// A pod's or a node's Ready condition.
pub fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Merges `over` into `base` (objects key by key; anything else replaced), as Helm merges values.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}
