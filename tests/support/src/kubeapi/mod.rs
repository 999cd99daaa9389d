//! A fake Kubernetes API server for end-to-end tests of shipper's pod and namespace metadata.
//!
//! [`KubeApi`] listens on `127.0.0.1:<ephemeral port>` and serves, over real HTTP/1.1 (hyper),
//! the part of the core/v1 API a log shipper reads: list, watch and get of pods (all
//! namespaces or one) and namespaces, plus `GET /version`. It follows the API server's wire
//! protocol closely enough for kube-runtime's `watcher`: one global resourceVersion counter,
//! `fieldSelector`/`labelSelector`, `limit`/`continue` pagination at a consistent version,
//! `resourceVersion`/`resourceVersionMatch`, chunked watch streams of one JSON event per line
//! that replay history from a version, bookmarks, `sendInitialEvents`, `timeoutSeconds`, and
//! Kubernetes `Status` errors (403, 404, 410 both as a response and as a watch `ERROR` event).
//!
//! Tests change the cluster ([`apply_pod`](KubeApi::apply_pod), ...) and script failures a
//! real client must survive: watches cut mid-stream ([`drop_watches`](KubeApi::drop_watches)),
//! history compacted away so resuming gets 410 and the client must relist
//! ([`compact`](KubeApi::compact); the 410 comes in the stream, or as the response as from a
//! proxy with [`answer_410_as_status`](KubeApi::answer_410_as_status)), RBAC denial
//! ([`forbid`](KubeApi::forbid)) and an outage
//! ([`set_down`](KubeApi::set_down)). [`requests`](KubeApi::requests) shows what the client
//! asked, with which parameters.
//!
//! Like the Loki [`Receiver`](crate::Receiver), the API is synchronous and the server runs a
//! single-threaded tokio runtime on a thread of its own, so it serves plain `#[test]`s driving
//! an agent process as well as `#[tokio::test]`s. Every method returns at once except
//! [`set_down`](KubeApi::set_down) (briefly) and the `wait_*` methods, which block the calling
//! thread; inside a tokio runtime call those from `spawn_blocking` or `block_in_place`.
//!
//! ```no_run
//! use std::time::Duration;
//! use shipper_testkit::{KubeApi, Pod};
//!
//! let api = KubeApi::start();
//! let dir = tempfile::tempdir().unwrap();
//! api.write_kubeconfig(&dir.path().join("kubeconfig"));
//! api.apply_pod(&Pod::new("default", "web-0", "uid-1", "node-a").container("nginx", Some("containerd://0123")));
//! // ... run the agent with KUBECONFIG pointing there ...
//! assert!(api.wait_for_watches("pods", 1, Duration::from_secs(10)));
//! ```

mod objects;
mod select;
mod server;
mod status;
mod store;
mod watch;

use crate::net::{ServeFn, ServerThread};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use objects::{Namespace, Pod};

use server::Shared;
use store::Resource;

/// The bearer token of the user in [`KubeApi::kubeconfig`].
pub const TOKEN: &str = "test-token";

/// One request the fake API server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// Query parameters, decoded, in request order.
    pub query: Vec<(String, String)>,
    /// `watch=true` (or `watch=1`) was set.
    pub watch: bool,
    /// Status answered (200 for a watch that started, even one that then sent a 410 `ERROR`;
    /// 410 for one refused under [`KubeApi::answer_410_as_status`]).
    pub status: u16,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
}

impl ApiRequest {
    /// The first value of query parameter `name` (the [`query`](Self::query) field has them
    /// all).
    pub fn param(&self, name: &str) -> Option<&str> {
        server::first(&self.query, name)
    }

    /// A list: a GET of a collection (`/api/v1/pods`, `/api/v1/namespaces/NS/pods`,
    /// `/api/v1/namespaces`) without `watch`.
    pub fn is_list(&self) -> bool {
        let segments: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let collection = matches!(
            segments.as_slice(),
            ["api", "v1", "pods"] | ["api", "v1", "namespaces"] | ["api", "v1", "namespaces", _, "pods"]
        );
        self.method == "GET" && !self.watch && collection
    }
}

/// A running fake API server. Dropping it closes the socket and stops its thread.
pub struct KubeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: ServerThread,
}

impl KubeApi {
    /// Starts an empty API server (no pods, no namespaces) on `127.0.0.1:0`.
    ///
    /// Panics if the runtime thread or the socket cannot be created: a test cannot go on
    /// without it.
    pub fn start() -> KubeApi {
        let shared = Arc::new(Shared::new());
        let s = shared.clone();
        let serve: ServeFn = Box::new(move |listener, stop| {
            tokio::spawn(server::accept_loop(listener, s.clone(), stop));
        });
        let server = ServerThread::start("kubeapi", serve);
        KubeApi {
            shared,
            addr: server.addr,
            server,
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash); it stays the same across
    /// [`set_down`](Self::set_down).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server: cluster `fake` at [`url`](Self::url), user `shipper` with
    /// bearer token [`TOKEN`], and a current context `fake` joining them (namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: shipper\n  user:\n    token: {TOKEN}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: shipper\n    namespace: default\n\
             current-context: fake\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `path`. Panics if it cannot.
    pub fn write_kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig())
            .unwrap_or_else(|e| panic!("kubeapi: writing the kubeconfig {}: {e}", path.display()));
    }

    /// Creates the pod (watchers get `ADDED`) or replaces it, by namespace and name (`MODIFIED`;
    /// or `ADDED`/`DELETED` for a watch whose selector it enters/leaves), at a new
    /// resourceVersion. The namespace need not exist.
    pub fn apply_pod(&self, pod: &Pod) {
        self.shared.lock().store.apply(Resource::Pods, pod.to_json());
    }

    /// Deletes the pod (watchers get `DELETED` with its last state at a new resourceVersion).
    /// Deleting a pod that does not exist does nothing.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.shared.lock().store.delete(Resource::Pods, &key);
    }

    /// Creates or replaces the namespace, like [`apply_pod`](Self::apply_pod).
    pub fn apply_namespace(&self, ns: &Namespace) {
        self.shared.lock().store.apply(Resource::Namespaces, ns.to_json());
    }

    /// Deletes the namespace, like [`delete_pod`](Self::delete_pod). Its pods stay: delete
    /// them too to model the namespace controller.
    pub fn delete_namespace(&self, name: &str) {
        self.shared
            .lock()
            .store
            .delete(Resource::Namespaces, &(String::new(), name.to_owned()));
    }

    /// Sends a `BOOKMARK` at the current resourceVersion to every open watch that asked for
    /// bookmarks (`allowWatchBookmarks=true`), of either resource.
    pub fn bookmark(&self) {
        let mut inner = self.shared.lock();
        let rv = inner.store.resource_version();
        inner.store.watches.bookmark(rv);
    }

    /// Forgets the event history and moves the resourceVersion on by one, as an etcd
    /// compaction plus other writes would: every version handed out so far becomes too old.
    /// Open watches go on; a watch from an older version then gets a 410 `ERROR` event, and a
    /// list at an exact older version (or with an older continue token) a 410 response, so a
    /// client that resumes must relist.
    pub fn compact(&self) {
        self.shared.lock().store.compact();
    }

    /// `true`: refuse a watch from a compacted resourceVersion with an HTTP 410 response (a
    /// `Status`, reason `Expired`) instead of a 200 whose stream starts with a 410 `ERROR` event,
    /// as proxies and API servers other than kube-apiserver do. Either way the client must relist;
    /// kube-runtime's watcher only does on the `ERROR` event. `false` (the default): like
    /// kube-apiserver.
    pub fn answer_410_as_status(&self, as_status: bool) {
        self.shared.lock().gone_as_status = as_status;
    }

    /// Ends every open watch abruptly: the connection is closed without the final chunk, as
    /// when an API server restarts or a load balancer drops it. Clients must watch again from
    /// the last version they saw.
    pub fn drop_watches(&self) {
        self.shared.lock().store.watches.abort_all();
        self.shared.changed.notify_all();
    }

    /// `true`: close the listening socket (new connections are refused) and every open
    /// connection, watches included, before returning. `false`: bind the same port again,
    /// retrying for up to 10 s while it is briefly unavailable. The objects and history stay,
    /// and writes while down are replayed to clients that resume. Idempotent.
    pub fn set_down(&self, down: bool) {
        self.server.set_down(down);
    }

    /// Whether the listener is down.
    pub fn is_down(&self) -> bool {
        self.server.is_down()
    }

    /// `forbidden`: answer list, watch and get of `resource` ("pods" or "namespaces") with 403
    /// Forbidden, as RBAC would without a ClusterRole granting them. Watches already open go
    /// on, as on a real server; [`drop_watches`](Self::drop_watches) makes clients hit it.
    pub fn forbid(&self, resource: &str, forbidden: bool) {
        let mut inner = self.shared.lock();
        if forbidden {
            inner.forbidden.insert(resource.to_owned());
        } else {
            inner.forbidden.remove(resource);
        }
    }

    /// The newest resourceVersion (what a list now would report).
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.resource_version()
    }

    /// Every request answered so far, in order (a watch is recorded when its stream starts).
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.shared.lock().requests.clone()
    }

    /// Watches of `resource` ("pods" or "namespaces") open now.
    pub fn open_watches(&self, resource: &str) -> usize {
        self.shared.lock().store.watches.count(resource)
    }

    /// Waits until at least `n` watches of `resource` are open; returns whether they are.
    pub fn wait_for_watches(&self, resource: &str, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |inner| {
            (inner.store.watches.count(resource) >= n).then_some(())
        })
        .is_some()
    }

    /// Waits until a request that satisfies `pred` was answered, and returns the first one
    /// (`None` after `timeout`).
    pub fn wait_for_request(&self, mut pred: impl FnMut(&ApiRequest) -> bool, timeout: Duration) -> Option<ApiRequest> {
        self.wait(timeout, |inner| inner.requests.iter().find(|r| pred(r)).cloned())
    }

    /// Checks `check` under the lock now and after every recorded request or closed watch,
    /// until it gives `Some` or `timeout` passes.
    fn wait<T>(&self, timeout: Duration, mut check: impl FnMut(&server::Inner) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.lock();
        loop {
            if let Some(found) = check(&inner) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            inner = match self.shared.changed.wait_timeout(inner, left) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("addr", &self.addr)
            .field("down", &self.is_down())
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}
