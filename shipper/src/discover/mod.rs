//! discover: which files to tail. Static targets are globs with excludes and labels (like Promtail's
//! `static_configs` and Alloy's `local.file_match`); a scan expands them into files and the directories
//! worth watching for new files.

pub mod kubelet;

use crate::config::{PathLabels, TargetConfig};
use crate::parse::Format;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file found by a scan, with the index of the target that matched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub target: usize,
}

/// The result of a scan: files to tail (first matching target wins) and directories to watch so that
/// new files (and new directories on the way to them) are noticed at once.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<Found>,
    pub dirs: BTreeSet<PathBuf>,
}

pub struct Targets {
    targets: Vec<Compiled>,
}

struct Compiled {
    paths: Vec<String>,
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    labels: BTreeMap<String, String>,
    path_labels: PathLabels,
    format: Format,
}

impl Targets {
    /// Globs were checked by config validation; one that does not compile here matches nothing.
    pub fn new(targets: &[TargetConfig]) -> Self {
        Targets {
            targets: targets
                .iter()
                .map(|t| Compiled {
                    paths: t.paths.clone(),
                    include: t.paths.iter().filter_map(|g| glob::Pattern::new(g).ok()).collect(),
                    exclude: t.exclude.iter().filter_map(|g| glob::Pattern::new(g).ok()).collect(),
                    labels: t.labels.clone(),
                    path_labels: t.path_labels,
                    format: t.format,
                })
                .collect(),
        }
    }

    /// The labels of a file of `target`: those its path says (`path_labels`), then the target's own,
    /// which win.
    pub fn labels(&self, target: usize, path: &Path) -> BTreeMap<String, String> {
        let t = &self.targets[target];
        let mut labels = match t.path_labels {
            PathLabels::None => BTreeMap::new(),
            PathLabels::Kubelet => kubelet::labels(path),
        };
        labels.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels
    }

    pub fn format(&self, target: usize) -> Format {
        self.targets[target].format
    }

    /// The first target whose globs match `path` (and whose excludes do not), if any.
    pub fn target_of(&self, path: &Path) -> Option<usize> {
        self.targets.iter().position(|t| {
            t.include.iter().any(|p| p.matches_path(path)) && !t.exclude.iter().any(|p| p.matches_path(path))
        })
    }

    /// Expands every glob. Unreadable directories and vanished entries are skipped (they are seen again
    /// at the next scan); only regular files are returned.
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        let mut seen = BTreeSet::new();
        for (ti, t) in self.targets.iter().enumerate() {
            for pattern in &t.paths {
                watch_dirs(pattern, &mut scan.dirs);
                let Ok(paths) = glob::glob(pattern) else {
                    continue;
                };
                for path in paths.flatten() {
                    if t.exclude.iter().any(|x| x.matches_path(&path)) {
                        continue;
                    }
                    let is_file = std::fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false);
                    if is_file && seen.insert(path.clone()) {
                        if let Some(dir) = path.parent() {
                            scan.dirs.insert(dir.to_path_buf());
                        }
                        scan.files.push(Found { path, target: ti });
                    }
                }
            }
        }
        scan
    }
}

/// The directories on the way to a glob's files: for `/var/log/pods/*/*/*.log` these are
/// `/var/log/pods`, every `/var/log/pods/*` and every `/var/log/pods/*/*` that exist. Watching them
/// means a new pod directory, container directory or file is noticed without waiting for a rescan.
/// Above the glob's fixed base only the nearest existing directory is watched, and only while the base
/// does not exist yet (to notice it appearing); `/var` and `/var/log` themselves are never watched.
fn watch_dirs(pattern: &str, out: &mut BTreeSet<PathBuf>) {
    let Some(parent) = Path::new(pattern).parent() else { return };
    let wild = |c: &std::path::Component<'_>| c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
    let comps: Vec<_> = parent.components().collect();
    let fixed = comps.iter().take_while(|c| !wild(c)).count();
    let base: PathBuf = comps[..fixed].iter().collect();
    if !base.is_dir() {
        if let Some(existing) = base.ancestors().find(|a| a.is_dir()) {
            out.insert(existing.to_path_buf());
        }
        return;
    }
    out.insert(base.clone());
    let mut prefix = base;
    for comp in &comps[fixed..] {
        prefix.push(comp);
        let p = prefix.to_string_lossy();
        if let Ok(paths) = glob::glob(&p) {
            out.extend(paths.flatten().filter(|d| d.is_dir()));
        }
        if p.contains("**") {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_globs_with_excludes_and_watch_dirs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for p in [
            "ns_a_1/c1/0.log",
            "ns_a_1/c1/0.log.20261125-100000.gz",
            "ns_b_2/c2/0.log",
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x\n").unwrap();
        }
        std::fs::create_dir_all(root.join("ns_c_3/c3")).unwrap();
        let t = Targets::new(&[TargetConfig {
            paths: vec![format!("{}/*/*/*", root.display())],
            exclude: vec!["*.gz".into()],
            ..Default::default()
        }]);
        let s = t.scan();
        let mut files: Vec<_> = s
            .files
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().to_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![PathBuf::from("ns_a_1/c1/0.log"), PathBuf::from("ns_b_2/c2/0.log")]
        );
        for dir in ["", "ns_a_1", "ns_c_3", "ns_c_3/c3", "ns_b_2/c2"] {
            assert!(
                s.dirs.contains(&root.join(dir).components().collect::<PathBuf>()),
                "{dir}: {:?}",
                s.dirs
            );
        }
    }
}
