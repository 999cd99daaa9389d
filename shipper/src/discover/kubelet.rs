//! Labels from kubelet's log layout, `<pods_root>/<namespace>_<pod>_<uid>/<container>/<restart>.log`:
//! known the moment a file appears, before (and without) any word from the API server, so queries
//! such as `{namespace="monitoring"}` work from the first line.

use std::collections::BTreeMap;
use std::path::Path;

/// What a kubelet log path says about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPath<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub uid: &'a str,
    pub container: &'a str,
}

/// Reads the pod directory and container directory above a log file. Namespaces and pod names cannot
/// hold `_` (DNS labels and subdomains), so the pod directory splits into exactly three parts.
pub fn parse(path: &Path) -> Option<PodPath<'_>> {
    let container_dir = path.parent()?;
    let pod_dir = container_dir.parent()?;
    let container = container_dir.file_name()?.to_str()?;
    let mut parts = pod_dir.file_name()?.to_str()?.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [namespace, pod, uid, container].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(PodPath {
        namespace,
        pod,
        uid,
        container,
    })
}

/// The labels Alloy's and Promtail's Kubernetes setups give a container's lines, as far as the path
/// tells them: `namespace`, `pod`, `container` and `job` = `<namespace>/<container>` (until the pod's
/// `app` label is known). Nothing when the path is not in kubelet's layout.
pub fn labels(path: &Path) -> BTreeMap<String, String> {
    parse(path).map(|p| p.labels()).unwrap_or_default()
}

impl PodPath<'_> {
    /// `namespace`, `pod`, `container` and `job` = `<namespace>/<container>`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), self.namespace.to_string()),
            ("pod".to_string(), self.pod.to_string()),
            ("container".to_string(), self.container.to_string()),
            ("job".to_string(), format!("{}/{}", self.namespace, self.container)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_name_namespace_pod_and_container() {
        let p = Path::new("/var/log/pods/monitoring_loki-0_6d1f2c3a-1b2c-4d5e-8f90-123456789abc/loki/3.log");
        assert_eq!(
            parse(p),
            Some(PodPath {
                namespace: "monitoring",
                pod: "loki-0",
                uid: "6d1f2c3a-1b2c-4d5e-8f90-123456789abc",
                container: "loki",
            })
        );
        let l = labels(p);
        assert_eq!(l["namespace"], "monitoring");
        assert_eq!(l["pod"], "loki-0");
        assert_eq!(l["container"], "loki");
        assert_eq!(l["job"], "monitoring/loki");
        // A pod name with dots (a DNS subdomain) is fine.
        assert_eq!(
            parse(Path::new("/p/ns_web.v2-abc_u1/c/0.log")).map(|p| p.pod),
            Some("web.v2-abc")
        );
    }

    #[test]
    fn other_layouts_give_no_labels() {
        for p in [
            "/var/log/app.log",
            "/var/log/pods/ns_pod/c/0.log",
            "/var/log/pods/ns_pod_uid_extra/c/0.log",
            "/var/log/pods/__uid/c/0.log",
            "0.log",
        ] {
            assert!(labels(Path::new(p)).is_empty(), "{p}");
        }
    }
}
