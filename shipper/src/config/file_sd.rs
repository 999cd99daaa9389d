//! `targets[].file_sd_configs`: Prometheus' and Promtail's file-based discovery. Target group
//! files (JSON or YAML: `[{targets: [...], labels: {__path__: <glob>, job: ...}}]`) name the files
//! to tail and their labels; each group becomes a target like the one that names the files, and a
//! change of the files is applied as a config reload.

use super::{Dur, TargetConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileSdConfig {
    /// Globs of target group files (`.json`, `.yml`, `.yaml`), e.g. `/etc/shipper/targets/*.yaml`.
    pub files: Vec<String>,
    /// How often the files are read again; a change applies as a reload.
    pub refresh_interval: Dur,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig {
            files: Vec::new(),
            refresh_interval: Dur::secs(300),
        }
    }
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The target group files `sd` names, in order, with their text (unreadable ones left out, logged).
fn read_files(sd: &[FileSdConfig]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for pattern in sd.iter().flat_map(|c| &c.files) {
        let Ok(paths) = glob::glob(pattern) else {
            tracing::warn!(glob = %pattern, "file_sd_configs: not a glob; it names no target file");
            continue;
        };
        for path in paths.flatten() {
            match std::fs::read_to_string(&path) {
                Ok(text) => out.push((path, text)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "file_sd_configs: cannot read a target file")
                }
            }
        }
    }
    out
}

/// The targets `t`'s file_sd_configs give now: one per group with a `__path__` label, with `t`'s
/// settings and labels, the group's labels over them (`__path_exclude__` adds an exclusion;
/// other `__` labels are left out). A file that does not parse is logged and gives none.
pub fn expand(t: &TargetConfig) -> Vec<TargetConfig> {
    let mut out = Vec::new();
    for (path, text) in read_files(&t.file_sd_configs) {
        let groups: Result<Vec<Group>, String> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())
        };
        let groups = match groups {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "file_sd_configs: not a list of target groups ({{targets, labels}}); its targets are left out until it is fixed");
                continue;
            }
        };
        for g in groups {
            let Some(glob) = g.labels.get("__path__") else { continue };
            let mut target = t.clone();
            target.file_sd_configs = Vec::new();
            target.paths = vec![glob.clone()];
            if let Some(ex) = g.labels.get("__path_exclude__") {
                target.exclude.push(ex.clone());
            }
            for (k, v) in g.labels.iter().filter(|(k, _)| !k.starts_with("__")) {
                target.labels.insert(k.clone(), v.clone());
            }
            out.push(target);
        }
    }
    out
}

/// What the target group files of a config hold now, to see when they change.
#[derive(Debug, PartialEq, Default)]
pub struct FileSdState {
    files: Vec<(PathBuf, String)>,
    every: Option<Duration>,
}

impl FileSdState {
    pub fn of(targets: &[TargetConfig]) -> FileSdState {
        let sd: Vec<FileSdConfig> = targets.iter().flat_map(|t| t.file_sd_configs.clone()).collect();
        FileSdState {
            files: read_files(&sd),
            every: sd.iter().map(|c| c.refresh_interval.0).min(),
        }
    }

    /// Waits for the next look (forever without file_sd_configs).
    pub async fn tick(&self) {
        match self.every {
            Some(d) => tokio::time::sleep(d.max(Duration::from_millis(100))).await,
            None => std::future::pending().await,
        }
    }
}
