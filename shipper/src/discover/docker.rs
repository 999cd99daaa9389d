//! Docker's json-file layout, `<docker_root>/<id>/<id>-json.log` (and its rotated `.1`, `.2` …):
//! the path names only the container id. On a Kubernetes node the pod comes from the metadata
//! cache, which maps `containerStatuses[].containerID` to its pod; on a bare Docker host the
//! container's own files beside its log (`config.v2.json`, `hostconfig.json`) give the labels of
//! Prometheus' Docker service discovery, for relabel rules.

use crate::labels::sanitize_label_name;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The container id of a file in docker's layout: the directory name, when the file name starts
/// with it followed by `-json.log`.
pub fn container_id(path: &Path) -> Option<&str> {
    let id = path.parent()?.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(id)?;
    (!id.is_empty() && rest.starts_with("-json.log")).then_some(id)
}

/// dockerd's files are a few KiB; a larger one is not read whole (it is not dockerd's).
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// What of dockerd's `config.v2.json` the labels need (it holds much more).
#[derive(Deserialize)]
struct ConfigV2 {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Config")]
    config: Option<ContainerConfig>,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// What of dockerd's `hostconfig.json` the labels need.
#[derive(Deserialize)]
struct HostConfig {
    #[serde(rename = "NetworkMode")]
    network_mode: Option<String>,
}

/// Reads and parses one of dockerd's JSON files. `Ok(None)`: it is not there.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("{}: larger than {MAX_CONFIG_BYTES} bytes", path.display()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: not dockerd's JSON: {e}", path.display()))
}

/// Prometheus' Docker service discovery labels (`docker_sd_configs`, Alloy's `discovery.docker`)
/// of the container whose files are in `dir`, as far as dockerd's files on the disk give them:
///
/// - `__meta_docker_container_id`: `ID` of `config.v2.json` (else the directory's name);
/// - `__meta_docker_container_name`: its `Name`, with docker's leading `/` (`/web-1`);
/// - `__meta_docker_container_label_<name>`: each of its `Config.Labels`, the name sanitised as
///   Prometheus does (every character other than `[a-zA-Z0-9_]` becomes `_`);
/// - `__meta_docker_container_network_mode`: `NetworkMode` of `hostconfig.json`, when that file
///   is there.
///
/// Not given: `__meta_docker_network_*` and `__meta_docker_port_*`. The service discovery makes
/// one target per network and exposed port of a running container, with the network's own facts
/// (id, ingress, internal, scope, labels) from dockerd's network store; a log file is one stream
/// whatever the container's networks and ports, and nothing beside it holds those facts.
///
/// Also the problems met (each naming its file): no or an unreadable or corrupt `config.v2.json`
/// gives no labels; an unreadable or corrupt `hostconfig.json` no network mode.
pub fn meta_labels(dir: &Path) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut problems = Vec::new();
    let config = dir.join("config.v2.json");
    let c = match read_json::<ConfigV2>(&config) {
        Ok(Some(c)) => c,
        Ok(None) => {
            problems.push(format!("{}: not found", config.display()));
            return (labels, problems);
        }
        Err(e) => {
            problems.push(e);
            return (labels, problems);
        }
    };
    let id =
        c.id.or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    labels.extend(id.map(|id| ("__meta_docker_container_id".to_string(), id)));
    labels.extend(c.name.map(|n| ("__meta_docker_container_name".to_string(), n)));
    for (k, v) in c.config.and_then(|c| c.labels).into_iter().flatten() {
        labels.insert(sanitize_label_name(&format!("__meta_docker_container_label_{k}")), v);
    }
    match read_json::<HostConfig>(&dir.join("hostconfig.json")) {
        Ok(h) => {
            let mode = h.and_then(|h| h.network_mode);
            labels.extend(mode.map(|m| ("__meta_docker_container_network_mode".to_string(), m)));
        }
        Err(e) => problems.push(e),
    }
    (labels, problems)
}

/// The labels of [`meta_labels`] of each container, read once, when a file of it is first
/// described (not for each line, nor at each scan); problems are logged then, once. A full scan
/// forgets the containers none of whose files it met.
#[derive(Default)]
pub struct Containers {
    inner: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    /// Which full scan this is.
    generation: u64,
    /// By container directory: the labels, and the full scan that last met it.
    dirs: HashMap<PathBuf, (Arc<BTreeMap<String, String>>, u64)>,
}

impl Containers {
    fn known(&self) -> MutexGuard<'_, Known> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the labels of the container of `log` (a file in docker's layout) to `out`; nothing
    /// for another file.
    pub fn add_labels(&self, log: &Path, out: &mut BTreeMap<String, String>) {
        let Some(dir) = container_id(log).and(log.parent()) else {
            return;
        };
        let mut known = self.known();
        let generation = known.generation;
        let labels = match known.dirs.get_mut(dir) {
            Some((labels, seen)) => {
                *seen = generation;
                labels.clone()
            }
            None => {
                let (labels, problems) = meta_labels(dir);
                for p in &problems {
                    tracing::warn!(file = %log.display(), problem = %p,
                        "the container's metadata beside its log cannot be read: its __meta_docker_* labels are missing (the file is tailed all the same)");
                }
                let labels = Arc::new(labels);
                known.dirs.insert(dir.to_path_buf(), (labels.clone(), generation));
                labels
            }
        };
        out.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// A full scan begins: what it does not meet is forgotten at its end.
    pub fn begin_full(&self) {
        self.known().generation += 1;
    }

    /// A full scan ended: the containers it did not meet (removed ones) are forgotten.
    pub fn end_full(&self) {
        let mut known = self.known();
        let generation = known.generation;
        known.dirs.retain(|_, (_, seen)| *seen == generation);
    }

    /// How many containers are known.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.known().dirs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_paths_name_their_container() {
        let id = "4f2c0a9e1d3b5c7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
        let p = format!("/var/lib/docker/containers/{id}/{id}-json.log");
        assert_eq!(container_id(Path::new(&p)), Some(id));
        assert_eq!(container_id(Path::new(&format!("{p}.1"))), Some(id));
        for other in [
            "/var/lib/docker/containers/abc/def-json.log",
            "/x/abc/abc.log",
            "abc-json.log",
        ] {
            assert_eq!(container_id(Path::new(other)), None, "{other}");
        }
    }

    const ID: &str = "0123456789abcdef";

    /// A container directory with the files given (name, content).
    fn container(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(ID);
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        (d, dir)
    }

    const CONFIG: &str = r#"{"StreamConfig":{},"State":{"Running":true,"Pid":42},"ID":"0123456789abcdef",
        "Name":"/web-1","Config":{"Hostname":"0123456789ab","Image":"nginx:1.27",
        "Labels":{"com.docker.compose.service":"web","maintainer":"NGINX <x@y>","a-b/c":"d"}},
        "NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}},"LogPath":"/x"}"#;

    #[test]
    fn a_containers_files_give_its_docker_labels() {
        let (_d, dir) = container(&[
            ("config.v2.json", CONFIG),
            ("hostconfig.json", r#"{"Binds":null,"NetworkMode":"bridge"}"#),
        ]);
        let (labels, problems) = meta_labels(&dir);
        assert!(problems.is_empty(), "{problems:?}");
        let want: BTreeMap<String, String> = [
            ("__meta_docker_container_id", ID),
            ("__meta_docker_container_name", "/web-1"),
            ("__meta_docker_container_network_mode", "bridge"),
            ("__meta_docker_container_label_com_docker_compose_service", "web"),
            ("__meta_docker_container_label_maintainer", "NGINX <x@y>"),
            ("__meta_docker_container_label_a_b_c", "d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, want);
    }

    #[test]
    fn without_hostconfig_there_is_no_network_mode_and_no_problem() {
        let (_d, dir) = container(&[("config.v2.json", r#"{"Name":"/db","Config":{"Labels":null}}"#)]);
        let (labels, problems) = meta_labels(&dir);
        assert!(problems.is_empty(), "{problems:?}");
        // The id comes from the directory when the file does not say it.
        assert_eq!(labels.get("__meta_docker_container_id").map(String::as_str), Some(ID));
        assert_eq!(
            labels.get("__meta_docker_container_name").map(String::as_str),
            Some("/db")
        );
        assert_eq!(labels.len(), 2, "{labels:?}");
    }

    #[test]
    fn missing_or_corrupt_files_give_no_labels_and_say_which_file() {
        let (_d, dir) = container(&[]);
        let (labels, problems) = meta_labels(&dir);
        assert!(labels.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("config.v2.json: not found"), "{problems:?}");

        for corrupt in [
            r#"{"ID":"x","Name":"/web-1""#,
            "",
            r#"{"Config":{"Labels":{"a":1}}}"#,
            "[]",
        ] {
            let (_d, dir) = container(&[("config.v2.json", corrupt)]);
            let (labels, problems) = meta_labels(&dir);
            assert!(labels.is_empty(), "{corrupt}: {labels:?}");
            assert!(
                problems[0].contains("config.v2.json: not dockerd's JSON"),
                "{problems:?}"
            );
        }

        // A corrupt hostconfig.json loses the network mode only.
        let (_d, dir) = container(&[("config.v2.json", CONFIG), ("hostconfig.json", "{\"NetworkMode\":")]);
        let (labels, problems) = meta_labels(&dir);
        assert_eq!(
            labels.get("__meta_docker_container_name").map(String::as_str),
            Some("/web-1")
        );
        assert!(!labels.contains_key("__meta_docker_container_network_mode"));
        assert!(problems[0].contains("hostconfig.json"), "{problems:?}");
    }

    #[test]
    fn containers_are_read_once_and_forgotten_when_a_full_scan_misses_them() {
        let (_d, dir) = container(&[("config.v2.json", CONFIG)]);
        let log = dir.join(format!("{ID}-json.log"));
        let c = Containers::default();
        let mut out = BTreeMap::new();
        c.add_labels(&log, &mut out);
        assert_eq!(
            out.get("__meta_docker_container_name").map(String::as_str),
            Some("/web-1")
        );
        // Read once: a later change of the file is not seen while the container is known.
        std::fs::write(dir.join("config.v2.json"), r#"{"Name":"/renamed"}"#).unwrap();
        let mut again = BTreeMap::new();
        c.add_labels(Path::new(&format!("{}.1", log.display())), &mut again);
        assert_eq!(again, out);
        // A full scan that meets it keeps it; one that does not forgets it.
        c.begin_full();
        c.add_labels(&log, &mut BTreeMap::new());
        c.end_full();
        assert_eq!(c.len(), 1);
        c.begin_full();
        c.end_full();
        assert_eq!(c.len(), 0);
        let mut fresh = BTreeMap::new();
        c.add_labels(&log, &mut fresh);
        assert_eq!(
            fresh.get("__meta_docker_container_name").map(String::as_str),
            Some("/renamed")
        );
        // A file not in docker's layout has none.
        let mut none = BTreeMap::new();
        c.add_labels(&dir.join("other.log"), &mut none);
        assert!(none.is_empty());
    }
}
