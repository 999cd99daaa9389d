//! The pod metadata cache: what the API server says about the pods on this node, kept by one watch
//! (`watch.rs`) and read by the reader when it labels a file. Labels never wait for it: a file is
//! labelled from its path at once and gains `app` and the mapped labels when its pod arrives.
//!
//! Memory is bounded by the pods on the node: per pod only the few strings the labels need, and
//! deleted pods are forgotten after `deleted_pod_grace`.

#[cfg(feature = "kubernetes")]
mod watch;

#[cfg(feature = "kubernetes")]
pub use watch::spawn;

/// The `resource` of `shipper_kube_watch_errors_total`: no client could be built (`config`), or the
/// watch of pods or namespaces failed.
pub const ERROR_RESOURCES: [&str; 3] = ["config", "pods", "namespaces"];

/// The pod and container a docker container id belongs to (what kubelet's path says for its files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
}

impl Owner {
    pub fn pod_path(&self) -> super::kubelet::PodPath<'_> {
        super::kubelet::PodPath {
            namespace: &self.namespace,
            pod: &self.pod,
            uid: &self.uid,
            container: &self.container,
        }
    }
}

use crate::config::{KubernetesConfig, PodField};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::labels::sanitize_label_name;

/// The annotation (on a pod or its namespace) that keeps its logs off Loki.
pub const EXCLUDE_ANNOTATION: &str = "shipper.io/exclude";

/// What the labels need of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `app.kubernetes.io/name`, else `app`, else `k8s-app`.
    pub app: Option<String>,
    /// The configured pod label and annotation mappings: Loki label name → value.
    pub mapped: BTreeMap<String, String>,
    /// The pod carries `shipper.io/exclude: "true"`.
    pub excluded: bool,
    /// (container name, container id without the `docker://` scheme) of started containers.
    pub containers: Vec<(String, String)>,
    /// (container name, image) from the pod's spec.
    pub images: Vec<(String, String)>,
    /// All its labels and annotations, for relabel rules (`__meta_kubernetes_pod_label_*`).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The kind and name of its controller (the owner reference marked `controller`).
    pub controller: Option<(String, String)>,
}

/// A pod as the API server describes it, before the cache picks what it keeps.
pub struct PodMeta<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    /// (container name, container id without scheme).
    pub containers: Vec<(String, String)>,
    /// (container name, image).
    pub images: Vec<(String, String)>,
    /// (kind, name) of the controller that owns it.
    pub controller: Option<(String, String)>,
}

#[derive(Debug)]
struct Entry {
    pod: PodInfo,
    deleted_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// Container id → pod uid.
    by_container: HashMap<String, String>,
    /// Namespaces annotated `shipper.io/exclude: "true"`.
    excluded_namespaces: HashSet<String>,
}

/// What changed since the reader last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Pods whose labels or exclusion changed: their open files are labelled again.
    pub pods: HashSet<String>,
    /// A file may have become eligible or ineligible (exclusion, a new container id): rescan.
    pub rescan: bool,
}

pub struct PodCache {
    inner: RwLock<Inner>,
    changes: Mutex<Changes>,
    changed: AtomicBool,
    grace: Duration,
    pod_labels: BTreeMap<String, String>,
    pod_annotations: BTreeMap<String, String>,
    include_namespaces: HashSet<String>,
    exclude_namespaces: HashSet<String>,
    /// What goes to structured metadata.
    fields: Vec<PodField>,
    /// Called after a change, to wake the reader.
    wake: Box<dyn Fn() + Send + Sync>,
}

impl PodCache {
    pub fn new(cfg: &KubernetesConfig, wake: Box<dyn Fn() + Send + Sync>) -> PodCache {
        let sanitized = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| (k.clone(), sanitize_label_name(if v.is_empty() { k } else { v })))
                .collect()
        };
        PodCache {
            inner: RwLock::default(),
            changes: Mutex::default(),
            changed: AtomicBool::new(false),
            grace: cfg.deleted_pod_grace.0,
            pod_labels: sanitized(&cfg.pod_labels),
            pod_annotations: sanitized(&cfg.pod_annotations),
            include_namespaces: cfg.include_namespaces.iter().cloned().collect(),
            exclude_namespaces: cfg.exclude_namespaces.iter().cloned().collect(),
            fields: cfg.structured_metadata.clone(),
            wake,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes since the last call, if any (cheap when there are none: one atomic load).
    pub fn take_changes(&self) -> Option<Changes> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(std::mem::take(&mut *self.pending()))
    }

    fn note(&self, uid: Option<&str>, rescan: bool) {
        {
            let mut c = self.pending();
            c.pods.extend(uid.map(str::to_string));
            c.rescan |= rescan;
        }
        self.changed.store(true, Ordering::Release);
        (self.wake)();
    }

    /// Builds what the labels need from a pod's metadata.
    pub fn info(&self, m: PodMeta<'_>) -> PodInfo {
        let PodMeta {
            uid,
            namespace,
            name,
            labels,
            annotations,
            containers,
            images,
            controller,
        } = m;
        let app = ["app.kubernetes.io/name", "app", "k8s-app"]
            .iter()
            .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()).cloned());
        let mut mapped = BTreeMap::new();
        for (from, to) in &self.pod_labels {
            if let Some(v) = labels.get(from) {
                mapped.insert(to.clone(), v.clone());
            }
        }
        for (from, to) in &self.pod_annotations {
            if let Some(v) = annotations.get(from) {
                mapped.insert(to.clone(), v.clone());
            }
        }
        PodInfo {
            uid: uid.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            app,
            mapped,
            excluded: annotations.get(EXCLUDE_ANNOTATION).is_some_and(|v| is_true(v)),
            containers,
            images,
            labels: labels.clone(),
            annotations: annotations.clone(),
            controller,
        }
    }

    /// A pod was added or changed (or is alive again after a relist).
    pub fn apply(&self, pod: PodInfo) {
        let uid = pod.uid.clone();
        let (relabel, rescan) = {
            let mut inner = self.write();
            let old = inner.pods.get(&uid);
            let relabel = old.is_none_or(|e| {
                e.pod.app != pod.app
                    || e.pod.mapped != pod.mapped
                    || e.pod.excluded != pod.excluded
                    || e.pod.labels != pod.labels
                    || e.pod.annotations != pod.annotations
            });
            let excluded_changed = old.map_or(pod.excluded, |e| e.pod.excluded != pod.excluded);
            let new_containers = pod
                .containers
                .iter()
                .any(|(_, id)| inner.by_container.get(id) != Some(&uid));
            for (_, id) in &pod.containers {
                inner.by_container.insert(id.clone(), uid.clone());
            }
            inner.pods.insert(uid.clone(), Entry { pod, deleted_at: None });
            (relabel, excluded_changed || new_containers)
        };
        if relabel || rescan {
            self.note(Some(&uid), rescan);
        }
    }

    /// A pod was deleted: its metadata stays for the grace period, so lines still being read from
    /// its files keep their labels.
    pub fn delete(&self, uid: &str) {
        if let Some(e) = self.write().pods.get_mut(uid) {
            e.deleted_at.get_or_insert_with(Instant::now);
        }
    }

    /// After a relist: pods missing from it were deleted while the watch was down.
    pub fn retain_listed(&self, listed: &HashSet<String>) {
        let now = Instant::now();
        for (uid, e) in self.write().pods.iter_mut() {
            if !listed.contains(uid) {
                e.deleted_at.get_or_insert(now);
            }
        }
    }

    /// Forgets pods deleted longer than the grace period ago. Returns how many pods are cached.
    pub fn expire(&self) -> usize {
        let mut inner = self.write();
        let grace = self.grace;
        let gone: Vec<String> = inner
            .pods
            .iter()
            .filter(|(_, e)| e.deleted_at.is_some_and(|t| t.elapsed() >= grace))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            if let Some(e) = inner.pods.remove(uid) {
                for (_, id) in &e.pod.containers {
                    if inner.by_container.get(id) == Some(uid) {
                        inner.by_container.remove(id);
                    }
                }
            }
        }
        inner.pods.len()
    }

    /// A namespace's `shipper.io/exclude` annotation as now known.
    pub fn set_namespace_excluded(&self, namespace: &str, excluded: bool) {
        let changed = {
            let mut inner = self.write();
            if excluded {
                inner.excluded_namespaces.insert(namespace.to_string())
            } else {
                inner.excluded_namespaces.remove(namespace)
            }
        };
        if changed {
            self.note(None, true);
        }
    }

    /// After a relist of namespaces: only these carry the annotation.
    pub fn set_excluded_namespaces(&self, namespaces: HashSet<String>) {
        let changed = {
            let mut inner = self.write();
            let changed = inner.excluded_namespaces != namespaces;
            inner.excluded_namespaces = namespaces;
            changed
        };
        if changed {
            self.note(None, true);
        }
    }

    /// Whether lines of this pod's containers stay off Loki: the namespace lists from the config
    /// (known from the path at once), then the annotations, once the API server told them.
    pub fn excluded(&self, namespace: &str, uid: Option<&str>) -> bool {
        if !self.include_namespaces.is_empty() && !self.include_namespaces.contains(namespace) {
            return true;
        }
        if self.exclude_namespaces.contains(namespace) {
            return true;
        }
        let inner = self.read();
        if inner.excluded_namespaces.contains(namespace) {
            return true;
        }
        uid.and_then(|u| inner.pods.get(u)).is_some_and(|e| e.pod.excluded)
    }

    /// Adds what the cache knows of pod `uid` to a container's labels: `app`, `job` =
    /// `<namespace>/<app>` and the mapped labels (which never replace the labels already there).
    pub fn enrich(&self, uid: &str, labels: &mut BTreeMap<String, String>) {
        let inner = self.read();
        let Some(e) = inner.pods.get(uid) else {
            return;
        };
        if let Some(app) = &e.pod.app {
            labels.insert("app".into(), app.clone());
            labels.insert("job".into(), format!("{}/{app}", e.pod.namespace));
        }
        for (k, v) in &e.pod.mapped {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Prometheus' Kubernetes service discovery labels of a container, for relabel rules:
    /// `__meta_kubernetes_pod_{label,labelpresent,annotation,annotationpresent}_<name>`,
    /// `__meta_kubernetes_pod_container_{id,image}`, `__meta_kubernetes_pod_controller_{kind,name}`
    /// (what the cache knows; namespace, pod name, uid and container name come from the path).
    pub fn meta_labels(&self, uid: &str, container: &str, out: &mut BTreeMap<String, String>) {
        let inner = self.read();
        let Some(e) = inner.pods.get(uid) else {
            return;
        };
        let p = &e.pod;
        for (kind, map) in [("label", &p.labels), ("annotation", &p.annotations)] {
            for (k, v) in map {
                let name = sanitize_label_name(k);
                out.insert(format!("__meta_kubernetes_pod_{kind}_{name}"), v.clone());
                out.insert(format!("__meta_kubernetes_pod_{kind}present_{name}"), "true".into());
            }
        }
        let of = |list: &[(String, String)]| list.iter().find(|(n, _)| n == container).map(|(_, v)| v.clone());
        if let Some(id) = of(&p.containers) {
            out.insert("__meta_kubernetes_pod_container_id".into(), id);
        }
        if let Some(image) = of(&p.images) {
            out.insert("__meta_kubernetes_pod_container_image".into(), image);
        }
        if let Some((kind, name)) = &p.controller {
            out.insert("__meta_kubernetes_pod_controller_kind".into(), kind.clone());
            out.insert("__meta_kubernetes_pod_controller_name".into(), name.clone());
        }
    }

    /// The structured metadata configured for container `container` of pod `uid`, as far as known.
    pub fn metadata(&self, uid: &str, container: &str) -> Vec<(String, String)> {
        self.metadata_of(uid, container, &self.fields)
    }

    fn metadata_of(&self, uid: &str, container: &str, fields: &[PodField]) -> Vec<(String, String)> {
        let inner = self.read();
        let pod = inner.pods.get(uid).map(|e| &e.pod);
        let of = |list: Option<&Vec<(String, String)>>| {
            list.and_then(|l| l.iter().find(|(name, _)| name == container).map(|(_, v)| v.clone()))
        };
        fields
            .iter()
            .filter_map(|f| {
                let value = match f {
                    PodField::PodUid => Some(uid.to_string()),
                    PodField::ContainerId => of(pod.map(|p| &p.containers)),
                    PodField::Image => of(pod.map(|p| &p.images)),
                };
                Some((f.name().to_string(), value?))
            })
            .collect()
    }

    /// The pod and container name of a container id (docker's layout names only the id).
    pub fn owner_of(&self, id: &str) -> Option<Owner> {
        let inner = self.read();
        let uid = inner.by_container.get(id)?;
        let e = inner.pods.get(uid)?;
        let container = e.pod.containers.iter().find(|(_, c)| c == id)?.0.clone();
        Some(Owner {
            namespace: e.pod.namespace.clone(),
            pod: e.pod.name.clone(),
            uid: e.pod.uid.clone(),
            container,
        })
    }

    pub fn len(&self) -> usize {
        self.read().pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

#[cfg(test)]
mod tests;
