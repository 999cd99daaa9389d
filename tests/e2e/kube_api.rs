//! `discovery: kubernetes` with the API server: the agent's real kube client watches a fake API
//! server (`shipper_testkit::KubeApi`, real list/watch JSON over HTTP) for the pods of its node and
//! labels their lines like the Alloy setup (`app`, `job`, mapped labels), honours exclusion, keeps
//! shipping with path labels while the API server is away, and stays API-server friendly.

use crate::support::{metric_value, wait_metric, write_tagged, Agent, Env};
use shipper_testkit::{Account, Format, KubeApi, LogWriter, Pod};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Cluster {
    env: Env,
    api: KubeApi,
    pods: PathBuf,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let env = Env::new();
        let pods = env.path("pods");
        std::fs::create_dir_all(&pods).unwrap();
        let api = KubeApi::start();
        let kubeconfig = env.path("kubeconfig");
        api.write_kubeconfig(&kubeconfig);
        Cluster {
            env,
            api,
            pods,
            kubeconfig,
        }
    }

    /// Starts the agent on node `node-a`; `kube` is YAML added under `kubernetes:` (indented).
    fn start(&self, kube: &str) -> Agent {
        let extra = format!(
            "discovery: kubernetes\nkubernetes:\n  pods_root: {}\n  node_name: node-a\n  kubeconfig: {}\n{kube}",
            self.pods.display(),
            self.kubeconfig.display()
        );
        Agent::start(&self.env.config("none/*.log", &extra))
    }

    /// A container log in kubelet's layout.
    fn writer(&self, ns: &str, pod: &str, uid: &str, container: &str) -> LogWriter {
        let p = self.pods.join(format!("{ns}_{pod}_{uid}/{container}/0.log"));
        LogWriter::create(p, Format::Cri).unwrap()
    }

    /// The streams whose label set contains every one of `labels`, merged.
    fn lines_with(&self, labels: &[(&str, &str)]) -> Vec<String> {
        let mut out = Vec::new();
        for (set, entries) in self.env.loki.streams() {
            if labels.iter().all(|(k, v)| set.contains(&format!("{k}=\"{v}\""))) {
                out.extend(entries.into_iter().map(|e| e.line));
            }
        }
        out
    }
}

/// Writes tagged lines of file `f` from `*next` on, a few at a time, until one arrives carrying
/// `labels`; returns the sequence number of the first such line.
fn write_until_labelled(
    c: &Cluster,
    agent: &Agent,
    w: &mut LogWriter,
    f: u32,
    next: &mut u64,
    labels: &[(&str, &str)],
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        write_tagged(w, f, *next..*next + 5);
        *next += 5;
        std::thread::sleep(Duration::from_millis(100));
        let seqs = seqs(&c.lines_with(labels), f);
        if let Some(first) = seqs.first() {
            return *first;
        }
    }
    panic!("no line with {labels:?} after 20 s; agent log: {}", agent.log_tail());
}

/// The sorted sequence numbers of file `f`'s tagged lines among `lines`.
fn seqs(lines: &[String], f: u32) -> Vec<u64> {
    let mut s: Vec<u64> = lines
        .iter()
        .filter_map(|l| shipper_testkit::parse_tag(l))
        .filter(|(file, _)| *file == f)
        .map(|(_, seq)| seq)
        .collect();
    s.sort_unstable();
    s
}

/// Every line `0..n` of each file arrived exactly once, whatever its labels.
fn assert_all_arrived(c: &Cluster, agent: &Agent, expected: &[(u32, u64)]) {
    let account = crate::support::wait_all(&c.env, agent, expected, 30);
    assert_eq!((account.lost(), account.duplicated()), (0, 0), "{account}");
}

#[test]
fn pods_from_the_api_server_give_app_job_and_mapped_labels() {
    let c = Cluster::new();
    c.api.apply_pod(
        &Pod::new("monitoring", "logger-7f9", "uid-1", "node-a")
            .label("app.kubernetes.io/name", "logger")
            .label("team", "core")
            .label("pod-template-hash", "7f9")
            .annotation("example.com/owner", "ops")
            .container("logger", Some("containerd://c0ffee")),
    );
    // Another node's pod is never asked for.
    c.api
        .apply_pod(&Pod::new("monitoring", "elsewhere", "uid-2", "node-b").label("app", "x"));
    // No RBAC for namespaces: pods work all the same, and the warning says what to grant.
    c.api.forbid("namespaces", true);
    let agent = c.start(
        "  pod_labels: {team: team}\n  pod_annotations: {example.com/owner: owner}\n  structured_metadata: [pod_uid, container_id, image]\n",
    );
    wait_metric(&agent, "shipper_kube_cache_pods", 1.0, 20);
    let mut w = c.writer("monitoring", "logger-7f9", "uid-1", "logger");
    write_tagged(&mut w, 0, 0..300);
    assert_all_arrived(&c, &agent, &[(0, 300)]);
    let streams = c.env.loki.streams();
    let want = format!(
        "{{app=\"logger\", container=\"logger\", filename=\"{}\", job=\"monitoring/logger\", namespace=\"monitoring\", node_name=\"node-a\", owner=\"ops\", pod=\"logger-7f9\", stream=\"stdout\", team=\"core\"}}",
        w.path().display()
    );
    assert_eq!(
        streams.keys().collect::<Vec<_>>(),
        vec![&want],
        "only allowlisted labels, one stream"
    );
    // Structured metadata on every line, not in the labels.
    let meta = |k: &str, v: &str| (k.to_string(), v.to_string());
    let want_meta = vec![
        meta("pod_uid", "uid-1"),
        meta("container_id", "c0ffee"),
        meta("image", "example/logger:1"),
    ];
    for e in &streams[&want] {
        assert_eq!(e.structured_metadata, want_meta);
    }
    let log = agent.log();
    assert!(
        log.contains("forbidden") && log.contains("grant get/list/watch on namespaces"),
        "{}",
        agent.log_tail()
    );
    assert_eq!(metric_value(&agent.metrics(), "shipper_kube_cache_pods"), 1.0);
    // One list and one watch of this node's pods: nothing else loads the API server.
    let pod_requests: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert!(
        pod_requests
            .iter()
            .all(|r| r.param("fieldSelector") == Some("spec.nodeName=node-a")),
        "{pod_requests:?}"
    );
    assert_eq!(pod_requests.iter().filter(|r| !r.watch).count(), 1, "{pod_requests:?}");
    agent.stop();
}

#[test]
fn a_file_before_its_pod_ships_at_once_then_gains_app() {
    let c = Cluster::new();
    let agent = c.start("");
    assert!(c.api.wait_for_watches("pods", 1, Duration::from_secs(20)));
    let mut w = c.writer("default", "web-1", "uid-w", "nginx");
    write_tagged(&mut w, 0, 0..100);
    assert_all_arrived(&c, &agent, &[(0, 100)]);
    assert_eq!(c.lines_with(&[("job", "default/nginx"), ("pod", "web-1")]).len(), 100);

    c.api
        .apply_pod(&Pod::new("default", "web-1", "uid-w", "node-a").label("app", "web"));
    let mut next = 100;
    let first = write_until_labelled(
        &c,
        &agent,
        &mut w,
        0,
        &mut next,
        &[("app", "web"), ("job", "default/web")],
    );
    write_tagged(&mut w, 0, next..next + 100);
    next += 100;
    assert_all_arrived(&c, &agent, &[(0, next)]);
    // The switch happens between two reads: lines before it have path labels, every line after
    // it has `app`.
    let with_app = seqs(&c.lines_with(&[("app", "web")]), 0);
    let without: Vec<u64> = seqs(&c.lines_with(&[("job", "default/nginx")]), 0);
    assert_eq!(with_app.first(), Some(&first));
    assert!(
        without.last().is_some_and(|&l| l < first),
        "{without:?} vs first {first}"
    );
    assert_eq!(with_app.len() + without.len(), next as usize);
    agent.stop();
}

#[test]
fn excluded_pods_and_namespaces_ship_nothing_until_included_again() {
    let c = Cluster::new();
    c.api
        .apply_namespace(&shipper_testkit::Namespace::new("quiet").annotation("shipper.io/exclude", "true"));
    c.api.apply_namespace(&shipper_testkit::Namespace::new("default"));
    let opted_out = Pod::new("default", "noisy", "uid-a", "node-a").annotation("shipper.io/exclude", "true");
    c.api.apply_pod(&opted_out);
    c.api.apply_pod(&Pod::new("quiet", "q", "uid-b", "node-a"));
    c.api.apply_pod(&Pod::new("skipme", "s", "uid-c", "node-a"));
    c.api.apply_pod(&Pod::new("default", "kept", "uid-d", "node-a"));
    let agent = c.start("  exclude_namespaces: [skipme]\n");
    wait_metric(&agent, "shipper_kube_cache_pods", 4.0, 20);
    assert!(c.api.wait_for_watches("namespaces", 1, Duration::from_secs(20)));
    // The namespace watch has listed too once the agent reports its pods; give the reader a moment.
    std::thread::sleep(Duration::from_millis(500));
    let mut writers = [
        c.writer("default", "noisy", "uid-a", "c"),
        c.writer("quiet", "q", "uid-b", "c"),
        c.writer("skipme", "s", "uid-c", "c"),
        c.writer("default", "kept", "uid-d", "c"),
    ];
    for (f, w) in writers.iter_mut().enumerate() {
        write_tagged(w, f as u32, 0..100);
    }
    assert_all_arrived(&c, &agent, &[(3, 100)]);
    std::thread::sleep(Duration::from_secs(2));
    let streams = c.env.loki.streams();
    assert_eq!(streams.len(), 1, "only the kept pod ships: {:?}", streams.keys());
    assert!(streams.keys().all(|k| k.contains("pod=\"kept\"")));

    // The opt-out is lifted: the pod's file is tailed from its start.
    c.api.apply_pod(&Pod::new("default", "noisy", "uid-a", "node-a"));
    assert_all_arrived(&c, &agent, &[(0, 100), (3, 100)]);
    // And put back: the file is let go; what is written after that stays off Loki.
    let open = metric_value(&agent.metrics(), "shipper_open_files");
    c.api.apply_pod(&opted_out);
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_value(&agent.metrics(), "shipper_open_files") >= open && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        metric_value(&agent.metrics(), "shipper_open_files") < open,
        "{}",
        agent.log_tail()
    );
    write_tagged(&mut writers[0], 0, 100..200);
    write_tagged(&mut writers[3], 3, 100..200);
    assert_all_arrived(&c, &agent, &[(3, 200)]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        seqs(&c.lines_with(&[("pod", "noisy")]), 0),
        (0..100).collect::<Vec<_>>()
    );
    assert!(c.lines_with(&[("namespace", "quiet")]).is_empty());
    assert!(c.lines_with(&[("namespace", "skipme")]).is_empty());
    agent.stop();
}

#[test]
fn api_server_down_at_start_means_path_labels_then_enrichment() {
    let c = Cluster::new();
    c.api.set_down(true);
    let agent = c.start("");
    let mut w = c.writer("default", "api-1", "uid-x", "main");
    write_tagged(&mut w, 0, 0..100);
    assert_all_arrived(&c, &agent, &[(0, 100)]);
    assert_eq!(
        c.lines_with(&[("job", "default/main"), ("namespace", "default")]).len(),
        100
    );
    wait_metric(&agent, "shipper_kube_watch_errors_total{resource=\"pods\"}", 2.0, 30);
    let warnings = agent.log().matches("watch at the API server failed").count();
    assert_eq!(
        warnings, 2,
        "one warning per watch (pods, namespaces), not one per retry"
    );

    c.api
        .apply_pod(&Pod::new("default", "api-1", "uid-x", "node-a").label("k8s-app", "api"));
    c.api.set_down(false);
    let mut next = 100;
    write_until_labelled(
        &c,
        &agent,
        &mut w,
        0,
        &mut next,
        &[("app", "api"), ("job", "default/api")],
    );
    assert_all_arrived(&c, &agent, &[(0, next)]);
    assert!(agent.log().contains("watch at the API server works again"));
    agent.stop();
}

/// The LISTs of `path` (not watches) the API server has answered.
fn lists(c: &Cluster, path: &str) -> usize {
    c.api
        .requests()
        .iter()
        .filter(|r| r.path == path && r.is_list())
        .count()
}

/// Waits until each path was listed the expected number of times and its watch is open again, then
/// 5 s more (a second relist follows the first within the watcher's backoff, about a second): the
/// counts must not have grown.
fn settled_lists(c: &Cluster, expected: &[(&str, usize)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let reached = |c: &Cluster| expected.iter().all(|(p, n)| lists(c, p) >= *n);
    while !reached(c) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for resource in ["pods", "namespaces"] {
        assert!(
            c.api.wait_for_watches(resource, 1, Duration::from_secs(30)),
            "no {resource} watch open again"
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    for (path, n) in expected {
        assert_eq!(lists(c, path), *n, "LISTs of {path}: {:?}", c.api.requests());
    }
}

#[test]
fn the_watch_resumes_after_drops_and_relists_only_after_410_gone() {
    let c = Cluster::new();
    let pod = |app: &str| Pod::new("default", "svc", "uid-s", "node-a").label("app", app);
    c.api.apply_pod(&pod("v1"));
    let agent = c.start("");
    wait_metric(&agent, "shipper_kube_cache_pods", 1.0, 20);
    let mut w = c.writer("default", "svc", "uid-s", "main");
    let mut next = 0;
    write_until_labelled(&c, &agent, &mut w, 0, &mut next, &[("app", "v1")]);
    let lists = |c: &Cluster| lists(c, "/api/v1/pods");
    assert_eq!(lists(&c), 1);

    // A dropped watch resumes from the last resourceVersion: no new list, nothing missed.
    c.api.drop_watches();
    c.api.bookmark();
    c.api.apply_pod(&pod("v2"));
    write_until_labelled(&c, &agent, &mut w, 0, &mut next, &[("app", "v2")]);
    assert_eq!(lists(&c), 1, "{:?}", c.api.requests());

    // History compacted: resuming answers 410 Gone, and only then the agent lists again.
    c.api.compact();
    c.api.drop_watches();
    c.api.apply_pod(&pod("v3"));
    write_until_labelled(&c, &agent, &mut w, 0, &mut next, &[("app", "v3")]);
    // One LIST per 410, of pods and of namespaces, not one by kube's watcher and one more by ours.
    settled_lists(&c, &[("/api/v1/pods", 2), ("/api/v1/namespaces", 2)]);
    assert_all_arrived(&c, &agent, &[(0, next)]);
    agent.stop();
}

#[test]
fn a_watch_refused_with_410_as_a_status_relists_too() {
    // A proxy (or an API server other than kube-apiserver) in front: a watch from a compacted
    // resourceVersion is refused with an HTTP 410 Status, not started with a 410 `ERROR` event.
    let c = Cluster::new();
    c.api.answer_410_as_status(true);
    c.api
        .apply_pod(&Pod::new("default", "old", "uid-o", "node-a").label("app", "old"));
    let agent = c.start("");
    wait_metric(&agent, "shipper_kube_cache_pods", 1.0, 20);
    assert!(c.api.wait_for_watches("pods", 1, Duration::from_secs(20)));
    assert!(c.api.wait_for_watches("namespaces", 1, Duration::from_secs(20)));
    let mut old = c.writer("default", "old", "uid-o", "main");
    let mut next_old = 0;
    write_until_labelled(&c, &agent, &mut old, 0, &mut next_old, &[("app", "old")]);
    assert_eq!(lists(&c, "/api/v1/pods"), 1);
    assert_eq!(lists(&c, "/api/v1/namespaces"), 1);

    c.api.compact();
    c.api.drop_watches();
    // Created after the compaction: only a new list (or a watch from its version) brings it.
    c.api
        .apply_pod(&Pod::new("default", "new", "uid-n", "node-a").label("app", "new"));
    let mut new = c.writer("default", "new", "uid-n", "main");
    let mut next_new = 0;
    write_until_labelled(&c, &agent, &mut new, 1, &mut next_new, &[("app", "new")]);
    let requests = c.api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/api/v1/pods" && r.watch && r.status == 410),
        "the resume was refused with a 410 response: {requests:?}"
    );
    // The namespace watch was refused the same way and listed again too; once each.
    settled_lists(&c, &[("/api/v1/pods", 2), ("/api/v1/namespaces", 2)]);
    write_tagged(&mut old, 0, next_old..next_old + 50);
    next_old += 50;
    assert_all_arrived(&c, &agent, &[(0, next_old), (1, next_new)]);
    // The relist kept the pod listed before: its lines after it still carry its labels.
    assert_eq!(seqs(&c.lines_with(&[("app", "old")]), 0).last(), Some(&(next_old - 1)));
    agent.stop();
}

#[test]
fn deleted_pods_keep_their_labels_for_the_grace_period() {
    let c = Cluster::new();
    c.api
        .apply_pod(&Pod::new("default", "job-1", "uid-j", "node-a").label("app", "batch"));
    let agent = c.start("  deleted_pod_grace: 3s\n");
    wait_metric(&agent, "shipper_kube_cache_pods", 1.0, 20);
    c.api.delete_pod("default", "job-1");
    std::thread::sleep(Duration::from_millis(300));
    // A container log that turns up after the pod's deletion is still labelled with its app.
    let mut late = c.writer("default", "job-1", "uid-j", "late");
    write_tagged(&mut late, 0, 0..50);
    assert_all_arrived(&c, &agent, &[(0, 50)]);
    assert_eq!(c.lines_with(&[("app", "batch"), ("container", "late")]).len(), 50);
    // After the grace period the pod is forgotten: a new file has path labels only.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_value(&agent.metrics(), "shipper_kube_cache_pods") > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric_value(&agent.metrics(), "shipper_kube_cache_pods"), 0.0);
    let mut later = c.writer("default", "job-1", "uid-j", "later");
    write_tagged(&mut later, 1, 0..50);
    assert_all_arrived(&c, &agent, &[(0, 50), (1, 50)]);
    assert_eq!(
        c.lines_with(&[("job", "default/later"), ("container", "later")]).len(),
        50
    );
    assert!(c.lines_with(&[("app", "batch"), ("container", "later")]).is_empty());
    agent.stop();
}

#[test]
fn docker_logs_are_matched_to_their_pod_by_container_id() {
    let c = Cluster::new();
    let docker = c.env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let id = "4f2c0a9e1d3b5c7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
    let agent = c.start(&format!("  docker_root: {}\n", docker.display()));
    assert!(c.api.wait_for_watches("pods", 1, Duration::from_secs(20)));
    // dockerd writes the file before the pod's status names the container: nothing to label it
    // with yet, so it waits (and is read from its start once its pod is known).
    let mut w = LogWriter::create(docker.join(format!("{id}/{id}-json.log")), Format::Docker).unwrap();
    write_tagged(&mut w, 0, 0..100);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.env.loki.entry_count(), 0);
    c.api.apply_pod(
        &Pod::new("shop", "cart-5d", "uid-k", "node-a")
            .label("app", "cart")
            .container("cart", Some(&format!("docker://{id}"))),
    );
    write_tagged(&mut w, 0, 100..200);
    assert_all_arrived(&c, &agent, &[(0, 200)]);
    let lines = c.lines_with(&[
        ("app", "cart"),
        ("container", "cart"),
        ("job", "shop/cart"),
        ("namespace", "shop"),
        ("pod", "cart-5d"),
        ("node_name", "node-a"),
    ]);
    assert_eq!(lines.len(), 200, "{:?}", c.env.loki.streams().keys());
    let account = Account::from_streams(&c.env.loki.streams(), [(0, 200)]);
    assert_eq!(account.out_of_order(), 0, "{account}");
    agent.stop();
}
