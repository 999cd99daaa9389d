//! The API server side of the pod cache: one watch of the pods on this node
//! (`fieldSelector=spec.nodeName=<node>`) and, if configured, one of namespaces, through kube's
//! watcher (bookmarks, resume from the last resourceVersion, backoff on errors, relist on a 410 Gone
//! in the stream) and [`relisting`] (relist on a 410 as the answer to the watch request). No periodic full
//! lists. When the API server cannot be reached or RBAC says no, the agent keeps shipping with
//! path labels: one warning, errors counted, retries in the background.

use super::PodCache;
use crate::config::KubernetesConfig;
use crate::metrics::Metrics;
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Starts the watches on the current tokio runtime. Without a node name there is nothing to watch
/// that would not load the API server with every pod of the cluster: path labels only.
pub fn spawn(cfg: &KubernetesConfig, cache: Arc<PodCache>, metrics: Arc<Metrics>) {
    let Some(node) = cfg.node() else {
        tracing::warn!(
            "kubernetes.node_name is not set and $NODE_NAME is empty: not watching pods at the API server, labels come from paths only (set NODE_NAME from the downward API: fieldRef spec.nodeName)"
        );
        return;
    };
    let kubeconfig = cfg.kubeconfig.clone();
    let namespaces = cfg.watch_namespaces;
    tokio::spawn(async move {
        let client = connect(kubeconfig, &metrics).await;
        tracing::info!(node = %node, "watching this node's pods at the API server");
        if namespaces {
            tokio::spawn(watch_namespaces(client.clone(), cache.clone(), metrics.clone()));
        }
        tokio::spawn(expire(cache.clone(), metrics.clone()));
        watch_pods(client, node, cache, metrics).await;
    });
}

/// A client from the kubeconfig, else in-cluster config; retried with backoff until it works.
async fn connect(kubeconfig: Option<std::path::PathBuf>, metrics: &Metrics) -> Client {
    let mut delay = Duration::from_secs(1);
    let mut warned = false;
    loop {
        match try_connect(kubeconfig.as_deref()).await {
            Ok(c) => return c,
            Err(e) => {
                metrics.kube_watch_errors.get_or_create(&resource("config")).inc();
                if !warned {
                    tracing::warn!(error = %e,
                        "no Kubernetes API access (kubernetes.kubeconfig, or the in-cluster service account): shipping with labels from paths only; retrying in the background");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn try_connect(kubeconfig: Option<&std::path::Path>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubernetes.kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("kubernetes.kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

fn resource(name: &str) -> crate::metrics::ResourceLabel {
    crate::metrics::ResourceLabel {
        resource: name.to_string(),
    }
}

/// Logs the first error of a streak as a warning (later ones at debug) and counts every one.
struct Errors {
    resource: &'static str,
    failing: bool,
}

impl Errors {
    fn failed(&mut self, metrics: &Metrics, e: &watcher::Error) {
        metrics.kube_watch_errors.get_or_create(&resource(self.resource)).inc();
        if self.failing {
            tracing::debug!(resource = self.resource, error = %e, "watch failed again");
            return;
        }
        self.failing = true;
        tracing::warn!(resource = self.resource, error = %e,
            "watch at the API server failed; shipping goes on with the labels known so far and the watch is retried with backoff (if this says forbidden, grant get/list/watch on {} to the agent's ServiceAccount)", self.resource);
    }

    fn ok(&mut self) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(resource = self.resource, "watch at the API server works again");
        }
    }
}

/// kube's watcher, replaced by a new one (which lists again) where kube would not list again by
/// itself after the API server said the resourceVersion is gone (410).
///
/// kube-runtime 5 relists by itself on a 410 `ERROR` event inside a watch stream, which is how
/// kube-apiserver says it, and after a failed list. Proxies and other API servers answer the watch
/// request itself with a 410 status instead: kube's watcher then yields `WatchStartFailed` and
/// stays in its `InitListed` state with the expired resourceVersion, retrying that watch forever,
/// so nothing that changes afterwards (a new pod) is ever seen. Only there does this start over
/// with a fresh watcher: `Init`, the list, `InitDone`, then a watch from the new version. So each
/// 410 costs one LIST, however it came. The error itself is passed on first, to be counted and
/// backed off like any other.
fn relisting<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let first = watcher::watcher(api.clone(), config.clone()).boxed();
    futures_util::stream::unfold((first, api, config), |(mut inner, api, config)| async move {
        let item = inner.next().await?;
        if item.as_ref().is_err_and(watch_refused_as_gone) {
            tracing::debug!("watch refused with 410 (resourceVersion gone): listing again");
            inner = watcher::watcher(api.clone(), config.clone()).boxed();
        }
        Some((item, (inner, api, config)))
    })
}

/// Whether `e` is the API server's 410 (Gone, or Expired) for a resourceVersion it no longer has,
/// as the answer to the watch request: the one 410 after which kube's watcher does not list again.
fn watch_refused_as_gone(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410)
}

async fn watch_pods(client: Client, node: String, cache: Arc<PodCache>, metrics: Arc<Metrics>) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = relisting(api, config).default_backoff().boxed();
    let mut errors = Errors {
        resource: "pods",
        failing: false,
    };
    let mut listed = HashSet::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                if let Some(info) = info(&cache, &pod) {
                    listed.insert(info.uid.clone());
                    cache.apply(info);
                }
            }
            Ok(Event::InitDone) => {
                cache.retain_listed(&std::mem::take(&mut listed));
                metrics.kube_cache_pods.set(cache.len() as i64);
                errors.ok();
                tracing::info!(pods = cache.len(), "pods on this node listed");
            }
            Ok(Event::Apply(pod)) => {
                if let Some(info) = info(&cache, &pod) {
                    cache.apply(info);
                }
                metrics.kube_cache_pods.set(cache.len() as i64);
                errors.ok();
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = &pod.metadata.uid {
                    cache.delete(uid);
                }
                errors.ok();
            }
            Err(e) => errors.failed(&metrics, &e),
        }
    }
}

/// What the cache keeps of a pod; None for an object without a uid (not a real pod).
fn info(cache: &PodCache, pod: &Pod) -> Option<super::PodInfo> {
    let m = &pod.metadata;
    let uid = m.uid.as_deref()?;
    let empty = BTreeMap::new();
    let mut containers = Vec::new();
    if let Some(status) = &pod.status {
        let all = [
            &status.container_statuses,
            &status.init_container_statuses,
            &status.ephemeral_container_statuses,
        ];
        for cs in all.into_iter().flatten().flatten() {
            if let Some(id) = cs.container_id.as_deref().and_then(container_id) {
                containers.push((cs.name.clone(), id.to_string()));
            }
        }
    }
    let mut images = Vec::new();
    if let Some(spec) = &pod.spec {
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            images.extend(c.image.clone().map(|i| (c.name.clone(), i)));
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            images.extend(c.image.clone().map(|i| (c.name.clone(), i)));
        }
    }
    let controller = m.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    Some(cache.info(super::PodMeta {
        uid,
        namespace: m.namespace.as_deref().unwrap_or_default(),
        name: m.name.as_deref().unwrap_or_default(),
        labels: m.labels.as_ref().unwrap_or(&empty),
        annotations: m.annotations.as_ref().unwrap_or(&empty),
        containers,
        images,
        controller: controller.map(|o| (o.kind.clone(), o.name.clone())),
    }))
}

/// `docker://0123…` → `0123…` (the scheme names the runtime; the id is what the paths use).
fn container_id(s: &str) -> Option<&str> {
    let id = s.split_once("://").map_or(s, |(_, id)| id);
    (!id.is_empty()).then_some(id)
}

async fn watch_namespaces(client: Client, cache: Arc<PodCache>, metrics: Arc<Metrics>) {
    let api: Api<Namespace> = Api::all(client);
    let mut stream = relisting(api, watcher::Config::default()).default_backoff().boxed();
    let mut errors = Errors {
        resource: "namespaces",
        failing: false,
    };
    let mut listed = HashSet::new();
    let excluded = |ns: &Namespace| {
        ns.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::EXCLUDE_ANNOTATION))
            .is_some_and(|v| super::is_true(v))
    };
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(ns)) => {
                if excluded(&ns) {
                    listed.extend(ns.metadata.name.clone());
                }
            }
            Ok(Event::InitDone) => {
                cache.set_excluded_namespaces(std::mem::take(&mut listed));
                errors.ok();
            }
            Ok(Event::Apply(ns)) => {
                if let Some(name) = &ns.metadata.name {
                    cache.set_namespace_excluded(name, excluded(&ns));
                }
                errors.ok();
            }
            Ok(Event::Delete(ns)) => {
                if let Some(name) = &ns.metadata.name {
                    cache.set_namespace_excluded(name, false);
                }
                errors.ok();
            }
            Err(e) => errors.failed(&metrics, &e),
        }
    }
}

/// Forgets deleted pods once their grace period is over.
async fn expire(cache: Arc<PodCache>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        metrics.kube_cache_pods.set(cache.expire() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::{container_id, watch_refused_as_gone as refused};
    use kube::core::Status;
    use kube::runtime::watcher::Error as E;

    #[test]
    fn only_a_watch_refused_with_410_starts_a_new_watcher() {
        let status = |code, reason| Status::failure("too old resource version: 1 (2)", reason).with_code(code);
        let api = |code, reason| kube::Error::Api(status(code, reason).boxed());
        assert!(refused(&E::WatchStartFailed(api(410, "Expired"))));
        assert!(refused(&E::WatchStartFailed(api(410, "Gone"))));
        // kube's watcher lists again by itself after these.
        assert!(!refused(&E::WatchError(status(410, "Expired").boxed())));
        assert!(!refused(&E::InitialListFailed(api(410, "Expired"))));
        // The stream goes on; if it ends, the watch request that follows is refused (above).
        assert!(!refused(&E::WatchFailed(api(410, "Gone"))));
        assert!(!refused(&E::WatchStartFailed(api(403, "Forbidden"))));
        assert!(!refused(&E::WatchError(status(500, "InternalError").boxed())));
        assert!(!refused(&E::NoResourceVersion));
    }

    #[test]
    fn container_ids_lose_their_runtime_scheme() {
        assert_eq!(container_id("docker://0123abc"), Some("0123abc"));
        assert_eq!(container_id("containerd://fe12"), Some("fe12"));
        assert_eq!(container_id("plain"), Some("plain"));
        assert_eq!(container_id("docker://"), None);
    }
}
