//! Builders for the objects tests put into the fake: [`Pod`] and [`Namespace`].
//!
//! They produce the JSON a real API server would hold for a scheduled, running pod (the fields
//! a log shipper reads: node, labels, annotations, container names and IDs) without the
//! hundreds of defaulted fields nobody here reads. The server adds `resourceVersion`,
//! `creationTimestamp` (and a `uid` for namespaces).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// A pod, for [`KubeApi::apply_pod`](super::KubeApi::apply_pod).
///
/// ```
/// use shipper_testkit::Pod;
///
/// let pod = Pod::new("default", "web-0", "2f1c1b1e-0000-4000-8000-000000000001", "node-a")
///     .label("app", "web")
///     .annotation("team", "edge")
///     .container("nginx", Some("containerd://0123abcd"))
///     .container("sidecar", None);
/// assert_eq!(pod.to_json()["spec"]["nodeName"], "node-a");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    namespace: String,
    name: String,
    uid: String,
    node_name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    containers: Vec<(String, Option<String>)>,
    phase: String,
    /// (kind, name) of the owner reference marked `controller`.
    controller: Option<(String, String)>,
}

impl Pod {
    /// A `Running` pod without containers, bound to `node_name` (empty: not scheduled yet, no
    /// `spec.nodeName`).
    pub fn new(namespace: &str, name: &str, uid: &str, node_name: &str) -> Pod {
        Pod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            node_name: node_name.to_owned(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            containers: Vec::new(),
            phase: "Running".to_owned(),
            controller: None,
        }
    }

    /// Sets label `key` to `value`.
    pub fn label(mut self, key: &str, value: &str) -> Pod {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets annotation `key` to `value`.
    pub fn annotation(mut self, key: &str, value: &str) -> Pod {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a container with image `example/NAME:1`. `container_id` (`docker://…`,
    /// `containerd://…`, `cri-o://…`) goes to its status' `containerID`, and the container is
    /// running; `None`: it has not started yet (`waiting`, `ContainerCreating`, no ID), as
    /// kubelet reports it before the runtime created it.
    pub fn container(mut self, name: &str, container_id: Option<&str>) -> Pod {
        self.containers.push((name.to_owned(), container_id.map(str::to_owned)));
        self
    }

    /// Owned by a controller: `ReplicaSet`, `web-7d4b9c8f6d` (an owner reference with
    /// `controller: true`, as the ReplicaSet controller sets it).
    pub fn controller(mut self, kind: &str, name: &str) -> Pod {
        self.controller = Some((kind.to_owned(), name.to_owned()));
        self
    }

    /// Sets `status.phase` (default `Running`).
    pub fn phase(mut self, phase: &str) -> Pod {
        self.phase = phase.to_owned();
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod as the API server serves it, minus what the server sets itself.
    pub fn to_json(&self) -> Value {
        let mut metadata = json!({
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
        });
        insert_map(&mut metadata, "labels", &self.labels);
        insert_map(&mut metadata, "annotations", &self.annotations);
        if let Some((kind, name)) = &self.controller {
            metadata["ownerReferences"] = json!([{
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": name,
                "uid": format!("{}-owner", self.uid),
                "controller": true,
                "blockOwnerDeletion": true,
            }]);
        }
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|(name, _)| {
                json!({
                    "name": name,
                    "image": image(name),
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                })
            })
            .collect();
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|(n, id)| container_status(n, id.as_deref()))
            .collect();
        let mut spec = json!({
            "containers": containers,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
        });
        if !self.node_name.is_empty() {
            spec["nodeName"] = json!(self.node_name);
        }
        let mut status = json!({ "phase": self.phase, "qosClass": "BestEffort" });
        if !statuses.is_empty() {
            status["containerStatuses"] = json!(statuses);
        }
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        })
    }
}

fn image(container: &str) -> String {
    format!("example/{container}:1")
}

fn container_status(name: &str, id: Option<&str>) -> Value {
    let mut status = json!({
        "name": name,
        "image": image(name),
        "imageID": "",
        "ready": id.is_some(),
        "restartCount": 0,
        "started": id.is_some(),
    });
    match id {
        Some(id) => {
            status["containerID"] = json!(id);
            status["imageID"] = json!(format!("docker.io/example/{name}@sha256:{}", "0".repeat(64)));
            status["state"] = json!({ "running": { "startedAt": super::store::now_rfc3339() } });
        }
        None => status["state"] = json!({ "waiting": { "reason": "ContainerCreating" } }),
    }
    status
}

fn insert_map(metadata: &mut Value, field: &str, map: &BTreeMap<String, String>) {
    if !map.is_empty() {
        let obj: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        metadata[field] = Value::Object(obj);
    }
}

/// A namespace, for [`KubeApi::apply_namespace`](super::KubeApi::apply_namespace). Like the
/// API server, it always carries the `kubernetes.io/metadata.name` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Namespace {
    /// An `Active` namespace.
    pub fn new(name: &str) -> Namespace {
        let labels = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.to_owned())]);
        Namespace {
            name: name.to_owned(),
            labels,
            annotations: BTreeMap::new(),
        }
    }

    /// Sets label `key` to `value`.
    pub fn label(mut self, key: &str, value: &str) -> Namespace {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets annotation `key` to `value`.
    pub fn annotation(mut self, key: &str, value: &str) -> Namespace {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace as the API server serves it, minus what the server sets itself.
    pub fn to_json(&self) -> Value {
        let mut metadata = json!({ "name": self.name });
        insert_map(&mut metadata, "labels", &self.labels);
        insert_map(&mut metadata, "annotations", &self.annotations);
        json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_json_has_what_a_shipper_reads() {
        let p = Pod::new("ns", "web-0", "uid-1", "node-a")
            .label("app", "web")
            .annotation("a", "b")
            .container("nginx", Some("docker://0123abcd"))
            .container("init", None)
            .phase("Pending")
            .to_json();
        assert_eq!(p["metadata"]["uid"], json!("uid-1"));
        assert_eq!(p["metadata"]["labels"]["app"], json!("web"));
        assert_eq!(p["metadata"]["annotations"]["a"], json!("b"));
        assert_eq!(p["spec"]["containers"][0]["image"], json!("example/nginx:1"));
        assert_eq!(p["status"]["phase"], json!("Pending"));
        let statuses = &p["status"]["containerStatuses"];
        assert_eq!(statuses[0]["containerID"], json!("docker://0123abcd"));
        assert!(statuses[1].get("containerID").is_none());
        assert!(Pod::new("ns", "x", "u", "").to_json()["spec"].get("nodeName").is_none());
    }

    #[test]
    fn namespace_json() {
        let n = Namespace::new("team-a").label("env", "prod").to_json();
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], json!("team-a"));
        assert_eq!(n["metadata"]["labels"]["env"], json!("prod"));
        assert!(n["metadata"].get("annotations").is_none());
    }
}
