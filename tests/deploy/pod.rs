//! The chart's DaemonSet and ConfigMap run "as the pod would": every volume the container mounts is
//! materialised under a scratch root (hostPath directories, the ConfigMap's keys, the Secret's items),
//! the ConfigMap's `shipper.yaml` has its absolute paths re-rooted there (each must lie on a volume:
//! the image's root filesystem is read-only and holds no data), and the real binary runs with exactly
//! the container's `args` and `env` against a Loki receiver (requiring the Secret's basic auth) and a
//! fake API server (through `KUBECONFIG`, the chart leaving `kubernetes.kubeconfig` unset).

use crate::render::{find, render, BIN};
use base64::Engine;
use serde_json::Value;
use shipper_testkit::receiver::labels::parse_labels;
use shipper_testkit::{client, tag_line, varied_len, Account, ApiRequest, Format, KubeApi, LogWriter, Pod, Receiver};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const VALUES: &str = r#"
loki:
  externalLabels: {cluster: test}
  basicAuth: {username: shipper, secretName: loki-auth, passwordKey: pw}
kubernetes:
  podLabels: {team: team}
"#;
/// The cluster's Secrets: (name, key, value).
const SECRETS: [(&str, &str, &str); 1] = [("loki-auth", "pw", "s3cret-from-the-secret")];
const NODE: &str = "node-a";
const UID: &str = "6b1f0c2e-0000-4000-8000-00000000a11d";
const LINES: u64 = 400;

/// One volumeMount of the agent's container.
struct Mount {
    path: String,
    read_only: bool,
    host_path: Option<String>,
}

/// A scratch node as the pod sees it: `<dir>/rootfs` holds every mounted volume at its mountPath.
struct Node {
    dir: tempfile::TempDir,
    mounts: Vec<Mount>,
    /// The ConfigMap's `shipper.yaml` as rendered (the pod's paths).
    config: Value,
    /// The container port the probes use, and the free port standing in for it.
    ports: (u64, u16),
}

impl Node {
    /// Materialises the container's volumes; the config points at `loki_url` and the free port.
    fn new(objects: &[Value], loki_url: &str) -> Node {
        let spec = &find(objects, "DaemonSet")["spec"]["template"]["spec"];
        let volumes = spec["volumes"].as_array().expect("volumes");
        let volume = |name: &Value| volumes.iter().find(|v| &v["name"] == name).expect("the volume");
        let mount_list = spec["containers"][0]["volumeMounts"].as_array().expect("volumeMounts");
        let mounts = (mount_list.iter())
            .map(|m| Mount {
                path: m["mountPath"].as_str().unwrap().to_owned(),
                read_only: m["readOnly"] == true,
                host_path: volume(&m["name"])["hostPath"]["path"].as_str().map(str::to_owned),
            })
            .collect();
        let configmap = find(objects, "ConfigMap");
        let config = serde_yaml_ng::from_str(configmap["data"]["shipper.yaml"].as_str().unwrap()).unwrap();
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let ports = (
            probe(&spec["containers"][0], "readinessProbe").1,
            shipper_testkit::prom::free_port(),
        );
        let node = Node {
            dir,
            mounts,
            config,
            ports,
        };
        for m in mount_list {
            let (v, at) = (volume(&m["name"]), node.reroot(m["mountPath"].as_str().unwrap()));
            std::fs::create_dir_all(&at).unwrap();
            let mut files = Vec::new();
            if let Some(name) = v["configMap"]["name"].as_str() {
                assert_eq!(configmap["metadata"]["name"], name, "the config volume's ConfigMap");
                files.push((at.join("shipper.yaml"), node.pod_config(loki_url)));
            }
            if let Some(name) = v["secret"]["secretName"].as_str() {
                for item in v["secret"]["items"].as_array().expect("secret items") {
                    let (key, file) = (item["key"].as_str().unwrap(), item["path"].as_str().unwrap());
                    let secret = SECRETS.iter().find(|s| (s.0, s.1) == (name, key));
                    let secret = secret.unwrap_or_else(|| panic!("the pod mounts key {key} of Secret {name}"));
                    files.push((at.join(file), secret.2.to_owned()));
                }
            }
            for (path, content) in files {
                std::fs::write(path, content).unwrap();
            }
        }
        node
    }

    /// The volume holding the pod's `path` (the deepest mount); panics if none does.
    fn mount_of(&self, path: &str) -> &Mount {
        let on = self.mounts.iter().filter(|m| Path::new(path).starts_with(&m.path));
        on.max_by_key(|m| m.path.len())
            .unwrap_or_else(|| panic!("{path} is on no volume of the pod (the image's read-only root)"))
    }

    /// Where the pod's `path` is on the scratch node.
    fn reroot(&self, path: &str) -> PathBuf {
        self.mount_of(path);
        self.dir.path().join("rootfs").join(path.trim_start_matches('/'))
    }

    /// Where the pod sees the node's `host` path: through the hostPath volume holding it.
    fn through_host_path(&self, host: &str) -> PathBuf {
        let (m, from) = (self.mounts.iter())
            .filter_map(|m| Some((m, m.host_path.as_deref()?)))
            .filter(|(_, from)| Path::new(host).starts_with(from))
            .max_by_key(|(_, from)| from.len())
            .unwrap_or_else(|| panic!("the node's {host} is not mounted into the pod"));
        let pod_path = Path::new(&m.path).join(Path::new(host).strip_prefix(from).unwrap());
        self.reroot(pod_path.to_str().unwrap())
    }

    /// The config with its paths re-rooted, Loki at `loki_url` (for the cluster DNS name) and the
    /// listen port (which must be the probes' container port) replaced.
    fn pod_config(&self, loki_url: &str) -> String {
        let mut config = self.config.clone();
        self.reroot_strings(&mut config);
        config["client"]["url"] = loki_url.into();
        let listen = self.config["server"]["http_listen"].as_str().unwrap();
        let (host, port) = listen.rsplit_once(':').unwrap();
        assert_eq!(port, self.ports.0.to_string(), "http_listen vs the probes");
        config["server"]["http_listen"] = format!("{host}:{}", self.ports.1).into();
        serde_yaml_ng::to_string(&config).unwrap()
    }

    fn reroot_strings(&self, v: &mut Value) {
        match v {
            Value::String(s) if s.starts_with('/') => *s = self.reroot(s).display().to_string(),
            Value::Array(a) => a.iter_mut().for_each(|x| self.reroot_strings(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.reroot_strings(x)),
            _ => {}
        }
    }
}

/// The HTTP path and container port of the container's `which` probe (a named port resolved).
fn probe(container: &Value, which: &str) -> (String, u64) {
    let get = &container[which]["httpGet"];
    let port = match &get["port"] {
        Value::String(name) => (container["ports"].as_array().into_iter().flatten())
            .find(|p| &p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64()),
        number => number.as_u64(),
    };
    let path = get["path"].as_str().unwrap().to_owned();
    (path, port.expect("the probe's port"))
}

/// The container's env as the kubelet sets it: values, and the downward API's node name.
fn container_env(container: &Value) -> Vec<(String, String)> {
    let env = container["env"].as_array().into_iter().flatten();
    let value = |e: &Value| match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
        (Value::String(v), _) => v.clone(),
        (_, field) if field == "spec.nodeName" => NODE.to_owned(),
        _ => panic!("env {e}: neither a value nor spec.nodeName"),
    };
    let name = |e: &Value| e["name"].as_str().unwrap().to_owned();
    env.map(|e| (name(e), value(e))).collect()
}

/// The agent started as the container: its `args` (absolute paths re-rooted) and `env` only, plus
/// `KUBECONFIG` for the fake API server.
struct Agent {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Agent {
    fn start(node: &Node, container: &Value, kubeconfig: &Path) -> Agent {
        let args = container["args"].as_array().expect("args").iter();
        let args = args.map(|a| match a.as_str().unwrap() {
            path if path.starts_with('/') => node.reroot(path).into_os_string(),
            arg => arg.into(),
        });
        let log = node.dir.path().join("agent.log");
        let mut cmd = Command::new(BIN);
        let env = container_env(container);
        cmd.args(args).env_clear().envs(env);
        cmd.env("KUBECONFIG", kubeconfig);
        let stderr = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().expect("start shipper");
        Agent {
            child,
            log,
            port: node.ports.1,
        }
    }

    /// `GET path` on the agent's port, as the kubelet probes it (None: no answer).
    fn get(&self, path: &str) -> Option<client::HttpResponse> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        client::get(&url).ok()
    }

    fn metric(&self, series: &str) -> Option<f64> {
        shipper_testkit::prom::series(&self.get("/metrics")?.text(), series)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ok` every 20 ms for up to `bound`; panics naming `what`, with the agent's log, if it
    /// never holds or the agent exits first.
    fn wait(&mut self, what: &str, bound: Duration, mut ok: impl FnMut(&mut Agent) -> bool) {
        let deadline = Instant::now() + bound;
        while !ok(self) {
            let exit = self.child.try_wait().unwrap();
            if exit.is_some() || Instant::now() >= deadline {
                panic!("{what}: not within {bound:?}, exit {exit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as the kubelet sends it; the exit status within `grace` (then the kubelet would SIGKILL).
    fn terminate(&mut self, grace: Duration) -> ExitStatus {
        // SAFETY: kill(2) of our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        let mut status = None;
        self.wait("exit after SIGTERM", grace, |a| {
            status = a.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every request the agent made to the API server is a verb on a resource the ClusterRole grants,
/// and its pod lists and watches select this node's pods only.
fn assert_rbac_allows(objects: &[Value], requests: &[ApiRequest]) {
    let rules = find(objects, "ClusterRole")["rules"].as_array().expect("rules");
    let has = |list: &Value, item: &str| list.as_array().into_iter().flatten().any(|x| x == item);
    for r in requests {
        let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let (resource, named) = match segments.as_slice() {
            ["api", "v1", "pods"] | ["api", "v1", "namespaces", _, "pods"] => ("pods", false),
            ["api", "v1", "namespaces", _, "pods", _] => ("pods", true),
            ["api", "v1", "namespaces"] => ("namespaces", false),
            ["api", "v1", "namespaces", _] => ("namespaces", true),
            _ => panic!("{} {}: no resource of the ClusterRole", r.method, r.path),
        };
        assert_eq!(r.method, "GET", "the agent only reads: {r:?}");
        let verb = match (named, r.watch) {
            (true, _) => "get",
            (false, true) => "watch",
            (false, false) => "list",
        };
        let grants = |rule: &&Value| has(&rule["apiGroups"], "") && has(&rule["resources"], resource);
        assert!(
            rules.iter().filter(grants).any(|rule| has(&rule["verbs"], verb)),
            "the agent did `{verb} {resource}` ({}), which the ClusterRole does not grant: {rules:?}",
            r.path
        );
        if resource == "pods" && !named {
            let (selector, want) = (r.param("fieldSelector"), format!("spec.nodeName={NODE}"));
            assert_eq!(selector, Some(&*want), "not only this node's pods: {r:?}");
        }
    }
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path());
    let nested = |p: PathBuf| if p.is_dir() { files_under(&p) } else { vec![p] };
    entries.flat_map(nested).collect()
}

/// The chart's pod on a scratch node: ready and live on its probes' port; a pod's CRI lines arrive
/// exactly once and in order with its metadata, the mapped pod label, the external label and the
/// node's name, pushed with the Secret's password; every API request is within the ClusterRole and
/// this node; SIGTERM ends it within the grace period with every offset saved in the positions file
/// on the writable hostPath, and nothing written to read-only volumes.
#[test]
fn the_charts_pod_ships_a_pods_lines_within_its_rbac_and_stops_on_sigterm() {
    let objects = render(Some(VALUES));
    let spec = &find(&objects, "DaemonSet")["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let loki = Receiver::start();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("shipper:{}", SECRETS[0].2));
    loki.set_auth(Some(&format!("Basic {token}")));
    let api = KubeApi::start();
    let pod = Pod::new("shop", "logger-0", UID, NODE).label("app.kubernetes.io/name", "logger");
    api.apply_pod(
        &pod.label("team", "core")
            .container("logger", Some("containerd://c0ffee")),
    );
    let node = Node::new(&objects, &loki.url());
    let kubeconfig = node.dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let rootfs = node.dir.path().join("rootfs");
    let provided = files_under(&rootfs);
    let mut agent = Agent::start(&node, container, &kubeconfig);

    // The kubelet's probes: ready within a bound, live before the liveness probe would restart it.
    let ready = probe(container, "readinessProbe").0;
    let ok = |agent: &Agent, path: &str| agent.get(path).is_some_and(|r| r.status == 200);
    agent.wait("readiness probe", Duration::from_secs(30), |a| ok(a, &ready));
    let (live, p) = (probe(container, "livenessProbe").0, &container["livenessProbe"]);
    let secs = |k: &str, default: u64| p[k].as_u64().unwrap_or(default);
    let restart = secs("initialDelaySeconds", 0) + secs("periodSeconds", 10) * secs("failureThreshold", 3);
    agent.wait("liveness probe", Duration::from_secs(restart), |a| ok(a, &live));

    // The pod is known before its file appears (README: else its first lines have path labels only).
    let cached = |a: &mut Agent| a.metric("shipper_kube_cache_pods") == Some(1.0);
    agent.wait("the pod in the agent's cache", Duration::from_secs(20), cached);
    let file = node.through_host_path(&format!("/var/log/pods/shop_logger-0_{UID}/logger/0.log"));
    let pods_root = node.config["kubernetes"]["pods_root"].as_str().unwrap();
    let seen = file.starts_with(node.reroot(pods_root));
    assert!(seen, "kubelet's logs are outside {pods_root}");
    let mut writer = LogWriter::create(&file, Format::Cri).unwrap();
    for seq in 0..LINES {
        let line = tag_line(0, seq, varied_len(seq, 40, 200));
        writer.write_line("stdout", &line).unwrap();
    }
    writer.flush().unwrap();
    let arrived = |_: &mut Agent| loki.entry_count() as u64 >= LINES;
    agent.wait("every line at Loki", Duration::from_secs(30), arrived);
    let watched = |resource| api.wait_for_watches(resource, 1, Duration::from_secs(10));
    assert!(watched("pods"), "no pod watch");
    if node.config["kubernetes"]["watch_namespaces"] == true {
        assert!(watched("namespaces"), "no namespace watch");
    }

    let grace = Duration::from_secs(spec["terminationGracePeriodSeconds"].as_u64().unwrap());
    let status = agent.terminate(grace);
    assert!(status.success(), "{status} after SIGTERM; agent log:\n{}", agent.log());

    let streams = loki.streams();
    let account = Account::from_streams(&streams, [(0, LINES)]);
    assert!(account.is_exact() && account.out_of_order() == 0, "{account}");
    let sets: Vec<_> = streams.keys().map(|s| parse_labels(s).unwrap()).collect();
    assert_eq!(sets.len(), 1, "one stream: {:?}", streams.keys());
    let want = "namespace=shop pod=logger-0 container=logger app=logger job=shop/logger team=core cluster=test";
    let want = format!("{want} node_name={NODE}");
    for (k, v) in want.split(' ').filter_map(|kv| kv.split_once('=')) {
        assert!(sets[0].contains(&(k.into(), v.into())), "no {k}={v:?} in {:?}", sets[0]);
    }
    assert_rbac_allows(&objects, &api.requests());

    // Positions on a writable hostPath, with every line acknowledged; read-only volumes untouched.
    let positions = node.config["positions"]["filename"].as_str().unwrap();
    let mount = node.mount_of(positions);
    let on_host = !mount.read_only && mount.host_path.is_some();
    assert!(on_host, "positions not on a writable hostPath");
    let saved = crate::render::positions(&node.reroot(positions));
    let ours = (saved["files"].as_array().into_iter().flatten()).find(|f| f["path"] == file.to_str().unwrap());
    let size = std::fs::metadata(&file).unwrap().len();
    let offset = ours.map(|f| f["offset"].clone());
    assert_eq!(offset, Some(size.into()), "positions: {saved}");
    for path in files_under(&rootfs) {
        let in_pod = Path::new("/").join(path.strip_prefix(&rootfs).unwrap());
        let read_only = node.mount_of(in_pod.to_str().unwrap()).read_only;
        let ours = path == file || provided.contains(&path);
        assert!(!read_only || ours, "the agent wrote {in_pod:?} on a read-only volume");
    }
}
