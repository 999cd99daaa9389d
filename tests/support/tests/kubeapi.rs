//! The fake API server against the real `kube` client and kube-runtime's `watcher`, the way
//! shipper uses them: a watcher per resource with the default config (list, then watch from
//! the list's version, bookmarks on), pods restricted to one node by a field selector.
//!
//! Each scenario checks both sides: what the watcher yields, and (via `requests()`) what the
//! client asked for — a resume must be a watch from the last version seen, a relist a new list.
//! Every wait is bounded, so a broken fake or client fails instead of hanging.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod as K8sPod};
use kube::api::{Api, ListParams, VersionMatch, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Resource, ResourceExt};
use shipper_testkit::{ApiRequest, KubeApi, Namespace, Pod};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;

/// How long one expected watcher event may take (backoffs after errors included).
const STEP: Duration = Duration::from_secs(5);

/// How long recovery from an outage may take: the default backoff doubles from 0.8 s.
const RECOVERY: Duration = Duration::from_secs(15);

/// What the watcher yielded, reduced to what the tests compare.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Init,
    InitApply(String),
    InitDone,
    Apply(String),
    Delete(String),
    Error(String),
}

/// A watcher running in its own task, its events forwarded to a channel.
struct Watch {
    rx: UnboundedReceiver<Ev>,
    task: JoinHandle<()>,
    /// Errors skipped by [`next_ok`](Self::next_ok) and [`init`](Self::init).
    errors: Vec<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    fn spawn<K>(api: Api<K>, config: watcher::Config) -> Watch
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = kube::runtime::watcher(api, config).default_backoff().boxed();
            while let Some(item) = stream.next().await {
                let ev = match item {
                    Ok(Event::Init) => Ev::Init,
                    Ok(Event::InitApply(o)) => Ev::InitApply(o.name_any()),
                    Ok(Event::InitDone) => Ev::InitDone,
                    Ok(Event::Apply(o)) => Ev::Apply(o.name_any()),
                    Ok(Event::Delete(o)) => Ev::Delete(o.name_any()),
                    Err(e) => Ev::Error(e.to_string()),
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        Watch {
            rx,
            task,
            errors: Vec::new(),
        }
    }

    /// The next event, errors included.
    async fn next_within(&mut self, timeout: Duration) -> Ev {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("the watcher stream ended"),
            Err(_) => panic!("no watcher event within {timeout:?} (errors so far: {:?})", self.errors),
        }
    }

    /// The next event that is not an error.
    async fn next_ok_within(&mut self, timeout: Duration) -> Ev {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ev::Error(e) => self.errors.push(e),
                ev => return ev,
            }
        }
    }

    async fn next_ok(&mut self) -> Ev {
        self.next_ok_within(STEP).await
    }

    /// The next error (after a backoff, if the previous event was an error too).
    async fn next_error(&mut self) -> String {
        match self.next_within(RECOVERY).await {
            Ev::Error(e) => e,
            other => panic!("expected a watcher error, got {other:?}"),
        }
    }

    /// A whole initial list: `Init`, `InitApply`s, `InitDone`; returns the names listed.
    async fn init(&mut self) -> Vec<String> {
        assert_eq!(self.next_ok().await, Ev::Init);
        let mut names = Vec::new();
        loop {
            match self.next_ok().await {
                Ev::InitApply(name) => names.push(name),
                Ev::InitDone => return names,
                other => panic!("expected InitApply or InitDone, got {other:?}"),
            }
        }
    }

    /// Asserts that no event but errors arrives for `d`.
    async fn quiet(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(ev) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            match ev {
                Some(Ev::Error(e)) => self.errors.push(e),
                other => panic!("expected no watcher event, got {other:?}"),
            }
        }
    }
}

/// A client built from the kubeconfig the fake writes, as shipper builds it.
async fn client(api: &KubeApi) -> kube::Client {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("the kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("the kubeconfig makes a config");
    assert_eq!(config.cluster_url.to_string().trim_end_matches('/'), api.url());
    kube::Client::try_from(config).expect("a client")
}

fn pod(ns: &str, name: &str, node: &str) -> Pod {
    Pod::new(ns, name, &format!("uid-{name}"), node)
        .label("app", name)
        .container("main", Some(&format!("containerd://{:0>64}", name.len())))
}

fn node_a() -> watcher::Config {
    watcher::Config::default().fields("spec.nodeName=node-a")
}

/// Blocks on a fake-server wait without stalling the runtime (tests run multi-threaded).
fn wait_watches(api: &KubeApi, resource: &str, n: usize) {
    let ok = tokio::task::block_in_place(|| api.wait_for_watches(resource, n, STEP));
    assert!(ok, "{n} {resource} watch(es) did not open: {:#?}", api.requests());
}

fn lists(api: &KubeApi) -> Vec<ApiRequest> {
    api.requests().into_iter().filter(ApiRequest::is_list).collect()
}

fn watches(api: &KubeApi) -> Vec<ApiRequest> {
    api.requests().into_iter().filter(|r| r.watch).collect()
}

/// Prints the requests, for the record of what the client sends.
fn log_requests(api: &KubeApi) {
    for r in api.requests() {
        let query: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("{} {} {} -> {}", r.method, r.path, query.join("&"), r.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_watcher_sees_only_its_node_and_every_change() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns1", "a1", "node-a"));
    api.apply_pod(&pod("ns2", "a2", "node-a"));
    api.apply_pod(&pod("ns1", "b1", "node-b"));
    api.apply_pod(&pod("ns1", "unscheduled", ""));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.init().await, ["a1", "a2"]);
    wait_watches(&api, "pods", 1);

    // What the default watcher config sends.
    let list = &lists(&api)[0];
    assert_eq!((list.path.as_str(), list.status), ("/api/v1/pods", 200));
    assert_eq!(list.param("fieldSelector"), Some("spec.nodeName=node-a"));
    assert_eq!(list.param("limit"), Some("500"));
    assert_eq!(list.param("resourceVersion"), None);
    assert_eq!(list.authorization.as_deref(), Some("Bearer test-token"));
    let watch = &watches(&api)[0];
    assert_eq!(watch.param("resourceVersion"), Some("1004"), "the list's version");
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(watch.param("fieldSelector"), Some("spec.nodeName=node-a"));
    assert_eq!(watch.param("timeoutSeconds"), Some("290"));
    assert_eq!(watch.authorization.as_deref(), Some("Bearer test-token"));
    eprintln!("user-agent: {:?}, accept: {:?}", list.user_agent, list.accept);

    api.apply_pod(&pod("ns1", "a3", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a3".into()));
    // Another node's pod is not seen: the next event is the update after it.
    api.apply_pod(&pod("ns1", "b2", "node-b"));
    api.apply_pod(&pod("ns1", "a1", "node-a").annotation("updated", "yes"));
    assert_eq!(w.next_ok().await, Ev::Apply("a1".into()));
    api.delete_pod("ns2", "a2");
    assert_eq!(w.next_ok().await, Ev::Delete("a2".into()));
    // Moving into the selection is an ADDED, moving out a DELETED.
    api.apply_pod(&pod("ns1", "b1", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("b1".into()));
    api.apply_pod(&pod("ns1", "a3", "node-b"));
    assert_eq!(w.next_ok().await, Ev::Delete("a3".into()));

    // A bookmark moves the watcher's version past writes it did not see: the watch it opens
    // after a drop starts there.
    api.apply_pod(&pod("ns1", "b3", "node-b"));
    api.bookmark();
    api.apply_pod(&pod("ns1", "a4", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a4".into()));
    api.apply_pod(&pod("ns1", "b4", "node-b"));
    api.bookmark();
    let after = api.resource_version();
    // The watcher yields nothing for a bookmark: give it time to read this one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.drop_watches();
    let resumed = tokio::task::block_in_place(|| {
        api.wait_for_request(
            |r| r.watch && r.param("resourceVersion") == Some(&after.to_string()),
            STEP,
        )
    });
    assert!(
        resumed.is_some(),
        "no watch from the bookmark's version {after}: {:#?}",
        api.requests()
    );
    w.quiet(Duration::from_millis(300)).await;
    assert_eq!(lists(&api).len(), 1, "no relist");
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_watcher_resumes_after_dropped_watch_without_missing_events() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns", "a1", "node-a"));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.init().await, ["a1"]);
    wait_watches(&api, "pods", 1);
    api.apply_pod(&pod("ns", "a2", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a2".into()));
    let last_seen = api.resource_version().to_string();

    api.drop_watches();
    // Written while no watch is open: only a resume from `last_seen` delivers them.
    api.apply_pod(&pod("ns", "a3", "node-a"));
    api.delete_pod("ns", "a2");
    api.apply_pod(&pod("ns", "b1", "node-b"));
    assert_eq!(w.next_ok().await, Ev::Apply("a3".into()));
    assert_eq!(w.next_ok().await, Ev::Delete("a2".into()));
    wait_watches(&api, "pods", 1);
    let resumes: Vec<_> = watches(&api)
        .into_iter()
        .filter(|r| r.param("resourceVersion") == Some(last_seen.as_str()))
        .collect();
    assert_eq!(
        resumes.len(),
        1,
        "one watch from the last version seen: {:#?}",
        api.requests()
    );
    assert_eq!(resumes[0].status, 200);
    assert_eq!(lists(&api).len(), 1, "no relist");
    // Live events go on.
    api.apply_pod(&pod("ns", "a4", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a4".into()));
    eprintln!("errors on the dropped watch: {:?}", w.errors);
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_watcher_relists_after_compaction() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns", "a1", "node-a"));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.init().await, ["a1"]);
    wait_watches(&api, "pods", 1);
    let last_seen = api.resource_version().to_string();

    api.compact();
    api.drop_watches();
    api.apply_pod(&pod("ns", "a2", "node-a"));
    // The resume gets the 410 ERROR event; the watcher reports it and relists.
    let err = loop {
        let e = w.next_error().await;
        if e.contains("410") || e.contains("too old") {
            break e;
        }
    };
    assert!(err.contains(&format!("too old resource version: {last_seen}")), "{err}");
    assert_eq!(w.init().await, ["a1", "a2"]);
    assert_eq!(lists(&api).len(), 2, "a relist: {:#?}", api.requests());
    // The first watch and the resume both asked for `last_seen`; the resume got the 410 inside
    // a 200 response, as from a real API server.
    let from_last: Vec<_> = watches(&api)
        .into_iter()
        .filter(|r| r.param("resourceVersion") == Some(last_seen.as_str()))
        .collect();
    assert_eq!(from_last.len(), 2, "{:#?}", api.requests());
    assert_eq!(from_last[1].status, 200);
    wait_watches(&api, "pods", 1);
    api.apply_pod(&pod("ns", "a3", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a3".into()));

    // A list at an exact version from before the compaction is 410 too.
    let client = client(&api).await;
    let old = ListParams::default().at(&last_seen).matching(VersionMatch::Exact);
    match Api::<K8sPod>::all(client).list(&old).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    log_requests(&api);
}

/// What kube-runtime 5's watcher does when the resume is refused with a 410 response (as from a
/// proxy) rather than answered with a 410 `ERROR` event: it reports the failed watch start and
/// retries the same, expired version, never listing again. shipper's `relisting` wrapper in
/// `discover/kube/watch.rs` exists for this; if this test starts failing because the watcher
/// relists, kube fixed it upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_refused_with_410_as_a_status_is_retried_from_the_same_version() {
    let api = KubeApi::start();
    api.answer_410_as_status(true);
    api.apply_pod(&pod("ns", "a1", "node-a"));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.init().await, ["a1"]);
    wait_watches(&api, "pods", 1);
    let last_seen = api.resource_version().to_string();

    api.compact();
    api.drop_watches();
    api.apply_pod(&pod("ns", "a2", "node-a"));
    let mut refused = 0;
    while refused < 3 {
        let e = w.next_error().await;
        if e.contains("410") || e.contains("too old") {
            assert!(e.starts_with("failed to start watching object"), "{e}");
            refused += 1;
        }
    }
    assert_eq!(lists(&api).len(), 1, "no relist: {:#?}", api.requests());
    let resumes: Vec<_> = watches(&api).into_iter().skip(1).collect();
    assert!(resumes.len() >= 3, "{resumes:#?}");
    for r in &resumes {
        assert_eq!(
            (r.param("resourceVersion"), r.status),
            (Some(last_seen.as_str()), 410),
            "{r:?}"
        );
    }

    // The 410 is the answer to the watch request itself.
    let pods = Api::<K8sPod>::all(client(&api).await);
    match pods.watch(&WatchParams::default(), &last_seen).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        Err(e) => panic!("expected 410 Expired, got {e}"),
        Ok(_) => panic!("expected 410 Expired, got a watch stream"),
    }
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_watcher_reports_forbidden_until_allowed() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns", "a1", "node-a"));
    // Forbidden from the start: the initial list fails.
    api.forbid("pods", true);
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.next_within(STEP).await, Ev::Init);
    let err = w.next_error().await;
    assert!(err.contains("failed to perform initial object list"), "{err}");
    assert!(err.contains("cannot list resource \"pods\""), "{err}");
    let denied = lists(&api);
    assert_eq!(denied[0].status, 403);
    api.forbid("pods", false);
    assert_eq!(w.init().await, ["a1"]);
    assert_eq!(lists(&api).last().map(|r| r.status), Some(200));
    wait_watches(&api, "pods", 1);

    // Forbidden while watching: the open watch goes on until it is dropped; the resume fails.
    api.forbid("pods", true);
    api.apply_pod(&pod("ns", "a2", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a2".into()));
    api.drop_watches();
    let err = loop {
        let e = w.next_error().await;
        if e.contains("forbidden") {
            break e;
        }
    };
    assert!(err.contains("failed to start watching"), "{err}");
    assert!(watches(&api).iter().any(|r| r.status == 403));
    api.apply_pod(&pod("ns", "a3", "node-a"));
    api.forbid("pods", false);
    assert_eq!(w.next_ok_within(RECOVERY).await, Ev::Apply("a3".into()));
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_watcher_recovers_after_outage() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns", "a1", "node-a"));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a());
    assert_eq!(w.init().await, ["a1"]);
    wait_watches(&api, "pods", 1);
    let port = api.url();

    tokio::task::block_in_place(|| api.set_down(true));
    assert!(api.is_down());
    assert_eq!(api.open_watches("pods"), 0);
    api.apply_pod(&pod("ns", "a2", "node-a"));
    api.delete_pod("ns", "a1");
    // The watcher's resumes are refused meanwhile.
    let err = w.next_error().await;
    eprintln!("while down: {err}");
    tokio::task::block_in_place(|| api.set_down(false));
    assert_eq!(api.url(), port, "the same port");
    assert_eq!(w.next_ok_within(RECOVERY).await, Ev::Apply("a2".into()));
    assert_eq!(w.next_ok().await, Ev::Delete("a1".into()));
    assert_eq!(lists(&api).len(), 1, "resumed, not relisted");
    eprintln!("errors during the outage: {:?}", w.errors);
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_watchers() {
    let api = KubeApi::start();
    api.apply_namespace(&Namespace::new("default"));
    api.apply_namespace(&Namespace::new("kube-system").label("env", "system"));
    let client = client(&api).await;
    let mut all = Watch::spawn(Api::<K8sNamespace>::all(client.clone()), watcher::Config::default());
    let mut prod = Watch::spawn(
        Api::<K8sNamespace>::all(client.clone()),
        watcher::Config::default().labels("env=prod"),
    );
    assert_eq!(all.init().await, ["default", "kube-system"]);
    assert_eq!(prod.init().await, Vec::<String>::new());
    wait_watches(&api, "namespaces", 2);

    api.apply_namespace(&Namespace::new("team-a").label("env", "prod").annotation("owner", "a"));
    assert_eq!(all.next_ok().await, Ev::Apply("team-a".into()));
    assert_eq!(prod.next_ok().await, Ev::Apply("team-a".into()));
    api.apply_namespace(&Namespace::new("team-a").label("env", "dev"));
    assert_eq!(all.next_ok().await, Ev::Apply("team-a".into()));
    assert_eq!(prod.next_ok().await, Ev::Delete("team-a".into()), "left the selection");
    api.delete_namespace("team-a");
    assert_eq!(all.next_ok().await, Ev::Delete("team-a".into()));
    prod.quiet(Duration::from_millis(200)).await;

    let ns = Api::<K8sNamespace>::all(client).get("kube-system").await.expect("get");
    assert_eq!(
        ns.labels().get("kubernetes.io/metadata.name").map(String::as_str),
        Some("kube-system")
    );
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert!(ns.metadata.uid.is_some() && ns.metadata.creation_timestamp.is_some());
    let prod_watch = watches(&api).into_iter().find(|r| r.param("labelSelector").is_some());
    assert_eq!(
        prod_watch
            .and_then(|r| r.param("labelSelector").map(str::to_owned))
            .as_deref(),
        Some("env=prod")
    );
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher() {
    let api = KubeApi::start();
    api.apply_pod(&pod("ns", "a1", "node-a"));
    api.apply_pod(&pod("ns", "b1", "node-b"));
    let mut w = Watch::spawn(Api::<K8sPod>::all(client(&api).await), node_a().streaming_lists());
    assert_eq!(w.init().await, ["a1"]);
    let first = &watches(&api)[0];
    assert_eq!(first.param("sendInitialEvents"), Some("true"));
    assert_eq!(first.param("resourceVersionMatch"), Some("NotOlderThan"));
    assert!(lists(&api).is_empty(), "no list in streaming mode");
    api.apply_pod(&pod("ns", "a2", "node-a"));
    assert_eq!(w.next_ok().await, Ev::Apply("a2".into()));
    log_requests(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lists_pages_gets_and_watches_with_timeout() {
    let api = KubeApi::start();
    for i in 0..5 {
        api.apply_pod(&pod("ns", &format!("p{i}"), "node-a").phase("Pending"));
    }
    let client = client(&api).await;
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!((version.major.as_str(), version.git_version.as_str()), ("1", "v1.33.0"));

    let pods = Api::<K8sPod>::all(client.clone());
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = pods.list(&lp).await.expect("a page");
        pages += 1;
        names.extend(page.items.iter().map(|p| p.name_any()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(
        (pages, names.as_slice()),
        (3, ["p0", "p1", "p2", "p3", "p4"].map(String::from).as_slice())
    );

    api.apply_pod(&pod("other", "p1", "node-a"));
    let in_ns = Api::<K8sPod>::namespaced(client.clone(), "ns");
    let p1 = in_ns
        .list(&ListParams::default().labels("app=p1"))
        .await
        .expect("a list");
    assert_eq!(p1.items.len(), 1, "only namespace ns");
    assert_eq!(p1.items[0].namespace().as_deref(), Some("ns"));
    assert!(lists(&api)
        .last()
        .is_some_and(|r| r.path == "/api/v1/namespaces/ns/pods"));

    let one = in_ns.get("p3").await.expect("get");
    assert_eq!(one.spec.and_then(|s| s.node_name).as_deref(), Some("node-a"));
    let status = one.status.expect("a status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let cs = &status.container_statuses.expect("container statuses")[0];
    assert!(cs
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("containerd://")));
    match in_ns.get("missing").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("expected 404, got {other:?}"),
    }
    match pods.list(&ListParams::default().fields("spec.containers=x")).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest")),
        other => panic!("expected 400, got {other:?}"),
    }

    // A raw watch with timeoutSeconds=1: synthetic ADDED for the 6 pods, then a clean end.
    let started = std::time::Instant::now();
    let stream = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("a watch");
    let events: Vec<_> = tokio::time::timeout(STEP, stream.collect::<Vec<_>>())
        .await
        .expect("the watch ends by its timeout");
    let added = events.iter().filter(|e| matches!(e, Ok(WatchEvent::Added(_)))).count();
    assert_eq!((added, events.len()), (6, 6), "{events:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    log_requests(&api);
}
