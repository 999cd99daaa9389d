//! discover: which files to tail. Static targets are globs with excludes and labels (like Promtail's
//! `static_configs` and Alloy's `local.file_match`); a scan expands them into files and the directories
//! worth watching for new files.

pub mod docker;
#[cfg(test)]
mod docker_tests;
pub mod kube;
pub mod kubelet;
mod listing;
mod walk;

use crate::config::{Config, PathLabels, TargetConfig};
use crate::parse::Format;
use crate::process::pipeline::Pipeline;
use crate::process::relabel::Relabeler;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file found by a scan, with the index of the target that matched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub target: usize,
    /// Device and inode at the time of the scan.
    pub key: (u64, u64),
}

/// The result of a scan: files to tail (first matching target wins) and directories to watch so that
/// new files (and new directories on the way to them) are noticed at once.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<Found>,
    pub dirs: BTreeSet<PathBuf>,
    /// Paths the globs match that cannot be tailed, and why (logged once, counted).
    pub skipped: Vec<(PathBuf, Skip)>,
}

/// Why a matched path is not tailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A FIFO, socket, device or directory: there is no end to read up to, or nothing to read.
    NotRegular,
    /// `stat` failed: a symlink loop, a dangling symlink, no permission on the way.
    Unreadable,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotRegular => "not_regular_file",
            Skip::Unreadable => "unreadable",
        }
    }
}

/// What a file is labelled with, from its target, its path and its pod.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub labels: BTreeMap<String, String>,
    /// Loki structured metadata of each of its lines.
    pub metadata: Vec<(String, String)>,
    /// Its pod's uid, for container logs.
    pub pod: Option<String>,
}

pub struct Targets {
    targets: Vec<Compiled>,
    /// The pod metadata cache, with `discovery: kubernetes` and `kubernetes.api`.
    pods: Option<Arc<kube::PodCache>>,
    label_limits: crate::process::config::LabelLimits,
    /// Directory listings kept between scans (unchanged directories are not read again).
    listings: listing::Listings,
    /// The docker labels of containers no pod claims, read from dockerd's files.
    containers: Arc<docker::Containers>,
}

struct Compiled {
    paths: Vec<String>,
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    labels: BTreeMap<String, String>,
    path_labels: PathLabels,
    format: Format,
    /// The global relabel rules, then the target's own (empty: none).
    relabel: Vec<Relabeler>,
    /// Whether a rule may read `__meta_kubernetes_pod_*` labels of the cache (else not built).
    relabel_meta: bool,
    /// Whether a rule may read `__meta_docker_*` labels (else dockerd's files are not read).
    docker_meta: bool,
    pipeline: Option<Arc<Pipeline>>,
    /// The endpoints its lines go to (bit i: endpoint i; None: every one).
    clients: Option<u64>,
    /// Everything that decides how its files are read and labelled (the target, the global rules
    /// and stages, the label limits, the client's external labels): a config reload keeps the files
    /// of a target whose key is unchanged exactly as they are.
    key: String,
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
                    relabel: Vec::new(),
                    relabel_meta: false,
                    docker_meta: false,
                    pipeline: None,
                    clients: None,
                    key: String::new(),
                })
                .collect(),
            pods: None,
            label_limits: Default::default(),
            listings: Default::default(),
            containers: Default::default(),
        }
    }

    pub fn label_limits(&self) -> &crate::process::config::LabelLimits {
        &self.label_limits
    }

    /// The targets of `cfg` with their relabel rules and pipeline stages compiled (global ones
    /// first). Errors name the config key.
    pub fn from_config(cfg: &Config) -> Result<Targets, String> {
        let mut targets = Targets::new(&cfg.targets);
        targets.label_limits = cfg.label_limits.clone();
        let max_line = cfg.tail.max_line_size.0 as usize;
        let compiled = cfg.compile_targets()?;
        let endpoints = cfg.endpoints()?;
        for (i, ((t, c), built)) in targets.targets.iter_mut().zip(&cfg.targets).zip(compiled).enumerate() {
            t.relabel = built.relabel;
            t.relabel_meta = t.relabel.iter().any(|r| r.uses_meta("__meta_kubernetes_pod_"));
            t.docker_meta =
                t.path_labels == PathLabels::Docker && t.relabel.iter().any(|r| r.uses_meta("__meta_docker_"));
            t.pipeline = built.pipeline;
            t.clients = built.clients;
            // Masks index the endpoints in order: a routed target's files take new masks when
            // the client names or their order change.
            let routed = t.clients.is_some() || t.pipeline.as_ref().is_some_and(|p| p.routes());
            let key = (
                c,
                &cfg.relabel_configs,
                &cfg.pipeline_stages,
                &cfg.label_limits,
                &cfg.client.external_labels,
                max_line,
                routed.then(|| endpoints.names()),
                t.pipeline.as_deref().map(Pipeline::files_read),
            );
            t.key = serde_json::to_string(&key).map_err(|e| format!("targets[{i}]: {e}"))?;
        }
        Ok(targets)
    }

    /// What decides how the files of `target` are read and labelled (see `Compiled::key`).
    pub fn key(&self, target: usize) -> Option<&str> {
        self.targets.get(target).map(|t| t.key.as_str())
    }

    /// Takes over the pod metadata cache and the containers read of the targets it replaces
    /// (config reload).
    pub fn adopt(&mut self, old: &Targets) {
        self.pods = old.pods.clone();
        self.containers = old.containers.clone();
    }

    /// The endpoints a target's lines go to (bit i: endpoint i; None: every one).
    pub fn clients(&self, target: usize) -> Option<u64> {
        self.targets.get(target)?.clients
    }

    /// The compiled stages of a target's lines, if it has any.
    pub fn pipeline(&self, target: usize) -> Option<&Arc<Pipeline>> {
        self.targets.get(target)?.pipeline.as_ref()
    }

    /// Labels and exclusion of container logs also consult the API server's view of the pods.
    pub fn with_pods(mut self, pods: Arc<kube::PodCache>) -> Self {
        self.pods = Some(pods);
        self
    }

    /// The pod metadata changes since the last call (None when there are none, or no cache).
    pub fn pod_changes(&self) -> Option<kube::Changes> {
        self.pods.as_ref()?.take_changes()
    }

    /// Whose a file of `target` is — its pod and container, from its path (kubelet) or from the cache
    /// (docker: the container id) — handed to `f`, resolved once.
    fn with_owner<R>(&self, target: usize, path: &Path, f: impl FnOnce(Option<kubelet::PodPath<'_>>) -> R) -> R {
        match self.targets[target].path_labels {
            PathLabels::None => f(None),
            PathLabels::Kubelet => f(kubelet::parse(path)),
            PathLabels::Docker => {
                let owner = docker::container_id(path).and_then(|id| self.pods.as_ref()?.owner_of(id));
                f(owner.as_ref().map(kube::Owner::pod_path))
            }
        }
    }

    /// Whether a file found by `target` stays off Loki: its namespace is not wanted, or its pod or
    /// namespace carries `shipper.io/exclude: "true"`. A docker file whose container no pod on this
    /// node names is not tailed (yet): nothing else tells whose it is.
    pub fn excluded(&self, target: usize, path: &Path) -> bool {
        let Some(pods) = &self.pods else {
            return false;
        };
        let docker = self.targets[target].path_labels == PathLabels::Docker;
        self.with_owner(target, path, |owner| match owner {
            Some(p) => pods.excluded(p.namespace, Some(p.uid)),
            None => docker,
        })
    }

    /// Whether a file found by `target` is dropped: excluded (above) or dropped by a relabel rule.
    pub fn dropped(&self, target: usize, path: &Path) -> bool {
        self.excluded(target, path)
            || (!self.targets[target].relabel.is_empty() && self.describe(target, path).is_none())
    }

    /// What a file of `target` is labelled with: the labels its path says (`path_labels`) and the
    /// cache adds (`app`, mapped pod labels), then the target's own, which win; then the relabel
    /// rules, which see those and `__path__` and `__meta_kubernetes_*` — or, for a docker file no
    /// pod claims, the `__meta_docker_*` labels of its container (see [`docker::meta_labels`]).
    /// Also its structured metadata (`kubernetes.structured_metadata`) and its pod's uid. None: a
    /// relabel rule dropped the file.
    pub fn describe(&self, target: usize, path: &Path) -> Option<FileInfo> {
        let t = &self.targets[target];
        let mut info = self.with_owner(target, path, |owner| {
            let Some(p) = owner else {
                return FileInfo::default();
            };
            let mut labels = p.labels();
            let mut metadata = Vec::new();
            if !t.relabel.is_empty() {
                for (k, v) in [
                    ("namespace", p.namespace),
                    ("pod_name", p.pod),
                    ("pod_uid", p.uid),
                    ("pod_container_name", p.container),
                ] {
                    labels.insert(format!("__meta_kubernetes_{k}"), v.to_string());
                }
            }
            if let Some(pods) = &self.pods {
                pods.enrich(p.uid, &mut labels);
                metadata = pods.metadata(p.uid, p.container);
                if t.relabel_meta {
                    pods.meta_labels(p.uid, p.container, &mut labels);
                }
            }
            FileInfo {
                labels,
                metadata,
                pod: Some(p.uid.to_string()),
            }
        });
        if t.docker_meta && info.pod.is_none() {
            self.containers.add_labels(path, &mut info.labels);
        }
        info.labels.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if !t.relabel.is_empty() {
            if let Some(node) = info.labels.get("node_name").cloned() {
                info.labels.insert("__meta_kubernetes_pod_node_name".into(), node);
            }
            info.labels.insert("__path__".into(), path.display().to_string());
            for r in &t.relabel {
                if !r.apply(&mut info.labels) {
                    return None;
                }
            }
            Relabeler::finish(&mut info.labels);
        }
        Some(info)
    }

    pub fn format(&self, target: usize) -> Format {
        self.targets[target].format
    }

    /// The first target whose globs match `path` (and whose excludes do not), if any.
    /// Excluded files (see [`Targets::excluded`]) have none.
    pub fn target_of(&self, path: &Path) -> Option<usize> {
        let target = self.targets.iter().position(|t| {
            t.include.iter().any(|p| p.matches_path(path)) && !t.exclude.iter().any(|p| p.matches_path(path))
        })?;
        (!self.dropped(target, path)).then_some(target)
    }

    /// Expands every glob. Unreadable directories and vanished entries are skipped (they are seen again
    /// at the next scan); only regular files are returned.
    pub fn scan(&mut self) -> Scan {
        self.listings.begin_full();
        self.containers.begin_full();
        let scan = self.scan_patterns(|p| Some(p.to_string()));
        self.listings.end_full();
        self.containers.end_full();
        scan
    }

    /// Expands the globs only below `dir` (a new or changed directory): what a full scan would find
    /// there, and the directories to watch on the way, at the cost of listing that directory alone.
    /// Globs with `**` are expanded whole.
    pub fn scan_under(&mut self, dir: &Path) -> Scan {
        self.listings.begin();
        self.scan_patterns(|p| narrow(p, dir))
    }

    /// Whether `dir` is a glob's fixed base or above it (`/var/log/pods` for `/var/log/pods/*/*/*.log`):
    /// then what is watched above the bases changes too, which only a full scan sorts out.
    pub fn holds_a_base(&self, dir: &Path) -> bool {
        self.targets
            .iter()
            .flat_map(|t| &t.paths)
            .any(|p| fixed_base(p).starts_with(dir))
    }

    fn scan_patterns(&mut self, narrow: impl Fn(&str) -> Option<String>) -> Scan {
        let mut scan = Scan::default();
        let mut seen = HashSet::new();
        // Directories gathered in a list and made a set once, sorted: inserting tens of thousands of
        // paths one by one into the set costs a path comparison (slow: by components) per level.
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (ti, t) in self.targets.iter().enumerate() {
            for pattern in t.paths.iter().filter_map(|p| narrow(p)) {
                let walked = walk::walk(&pattern, &mut self.listings);
                // A walk lists every directory on the way, the matches' own included.
                let parents_listed = walked.is_some();
                let paths: Vec<PathBuf> = match walked {
                    Some(w) => {
                        dirs.extend(w.dirs);
                        w.matches
                    }
                    None => {
                        let mut set = BTreeSet::new();
                        watch_dirs(&pattern, &mut set);
                        dirs.extend(set);
                        let Ok(paths) = glob::glob(&pattern) else {
                            continue;
                        };
                        paths.flatten().collect()
                    }
                };
                for path in paths {
                    if t.exclude.iter().any(|x| x.matches_path(&path)) {
                        continue;
                    }
                    // A regular file in a directory unchanged since the last scan is the same file.
                    if let Some(key) = parents_listed.then(|| self.listings.key(&path)).flatten() {
                        if !self.dropped(ti, &path) && seen.insert(key) {
                            scan.files.push(Found { path, target: ti, key });
                        }
                        continue;
                    }
                    let meta = match std::fs::metadata(&path) {
                        Ok(m) => m,
                        // Gone between listing and stat: nothing to say.
                        Err(e)
                            if e.kind() == std::io::ErrorKind::NotFound
                                && std::fs::symlink_metadata(&path).is_err() =>
                        {
                            continue
                        }
                        Err(_) => {
                            scan.skipped.push((path, Skip::Unreadable));
                            continue;
                        }
                    };
                    if !meta.is_file() {
                        if !meta.is_dir() {
                            scan.skipped.push((path, Skip::NotRegular));
                        }
                        continue;
                    }
                    // One file reached through several paths (a kubelet symlink to docker's file)
                    // belongs to the first target that finds it.
                    let key = (meta.dev(), meta.ino());
                    if parents_listed {
                        self.listings.remember(&path, key);
                    }
                    if !self.dropped(ti, &path) && seen.insert(key) {
                        // A glob lists a directory's files together: one insert per directory.
                        if let Some(dir) = path
                            .parent()
                            .filter(|d| !parents_listed && scan.files.last().and_then(|f| f.path.parent()) != Some(d))
                        {
                            dirs.push(dir.to_path_buf());
                        }
                        scan.files.push(Found { path, target: ti, key });
                    }
                }
            }
        }
        // Each walk lists them in order: the set's own sort merges those runs.
        scan.dirs = dirs.into_iter().collect();
        scan
    }
}

/// The part of glob `pattern` below directory `dir`: `dir` (escaped) followed by the pattern's
/// components deeper than it, when `dir` matches the pattern's leading components; None when nothing
/// the pattern matches can be below `dir`. A `**` pattern is returned whole (its depth is open).
fn narrow(pattern: &str, dir: &Path) -> Option<String> {
    if pattern.contains("**") {
        return Some(pattern.to_string());
    }
    let pat: Vec<_> = Path::new(pattern).components().collect();
    let dir_comps: Vec<_> = dir.components().collect();
    // The last component names files: a directory at that depth or deeper holds none of them.
    if dir_comps.len() >= pat.len() {
        return None;
    }
    for (p, d) in pat.iter().zip(&dir_comps) {
        let (p, d) = (p.as_os_str().to_string_lossy(), d.as_os_str().to_string_lossy());
        if p != d && !glob::Pattern::new(&p).is_ok_and(|g| g.matches(&d)) {
            return None;
        }
    }
    let mut out = glob::Pattern::escape(&dir.to_string_lossy());
    for c in &pat[dir_comps.len()..] {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(&c.as_os_str().to_string_lossy());
    }
    Some(out)
}

/// The directory part of a glob before its first wildcard: `/var/log/pods` for `/var/log/pods/*/*/*.log`.
fn fixed_base(pattern: &str) -> PathBuf {
    let parent = Path::new(pattern).parent().unwrap_or(Path::new(""));
    parent
        .components()
        .take_while(|c| !walk::is_wild(&c.as_os_str().to_string_lossy()))
        .collect()
}

/// The directories on the way to a glob's files: for `/var/log/pods/*/*/*.log` these are
/// `/var/log/pods`, every `/var/log/pods/*` and every `/var/log/pods/*/*` that exist. Watching them
/// means a new pod directory, container directory or file is noticed without waiting for a rescan.
/// Above the glob's fixed base only the nearest existing directory is watched, and only while the base
/// does not exist yet (to notice it appearing); `/var` and `/var/log` themselves are never watched.
fn watch_dirs(pattern: &str, out: &mut BTreeSet<PathBuf>) {
    let Some(parent) = Path::new(pattern).parent() else { return };
    let comps: Vec<_> = parent.components().collect();
    let base = fixed_base(pattern);
    let fixed = base.components().count();
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
        let mut t = Targets::new(&[TargetConfig {
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

    #[test]
    fn narrows_globs_to_a_directory() {
        let n = |p: &str, d: &str| narrow(p, Path::new(d));
        let pods = "/var/log/pods/*/*/*.log";
        assert_eq!(
            n(pods, "/var/log/pods/ns_a_1").as_deref(),
            Some("/var/log/pods/ns_a_1/*/*.log")
        );
        assert_eq!(
            n(pods, "/var/log/pods/ns_a_1/c").as_deref(),
            Some("/var/log/pods/ns_a_1/c/*.log")
        );
        assert_eq!(n(pods, "/var/log/pods").as_deref(), Some("/var/log/pods/*/*/*.log"));
        assert_eq!(n(pods, "/var/log").as_deref(), Some("/var/log/pods/*/*/*.log"));
        // Too deep to hold matching files, or outside the pattern.
        assert_eq!(n(pods, "/var/log/pods/ns_a_1/c/sub"), None);
        assert_eq!(n(pods, "/var/lib/docker"), None);
        assert_eq!(n("/var/log/pods/kube-*/*/*.log", "/var/log/pods/default_x_1"), None);
        // Glob characters in the directory's own name are taken literally.
        assert_eq!(
            n(pods, "/var/log/pods/a[1]").as_deref(),
            Some("/var/log/pods/a[[]1[]]/*/*.log")
        );
        assert_eq!(n("/logs/**/*.log", "/logs/a").as_deref(), Some("/logs/**/*.log"));
    }

    #[test]
    fn a_scan_under_a_directory_finds_what_the_full_scan_finds_there() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for p in [
            "ns_a_1/c1/0.log",
            "ns_a_1/c2/0.log",
            "ns_b_2/c1/0.log",
            "ns_a_1/c1/x.txt",
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x\n").unwrap();
        }
        std::fs::create_dir_all(root.join("ns_a_1/c3")).unwrap();
        let mut t = Targets::new(&[TargetConfig {
            paths: vec![format!("{}/*/*/*.log", root.display())],
            ..Default::default()
        }]);
        let full = t.scan();
        let under = t.scan_under(&root.join("ns_a_1"));
        let paths = |s: &Scan| s.files.iter().map(|f| f.path.clone()).collect::<BTreeSet<_>>();
        let expected: BTreeSet<_> = paths(&full)
            .into_iter()
            .filter(|p| p.starts_with(root.join("ns_a_1")))
            .collect();
        assert_eq!(expected.len(), 2);
        assert_eq!(paths(&under), expected);
        let dirs: BTreeSet<_> = full
            .dirs
            .iter()
            .filter(|d| d.starts_with(root.join("ns_a_1")))
            .cloned()
            .collect();
        assert_eq!(under.dirs, dirs, "c3 (empty) is watched too");
        assert!(t.scan_under(&root.join("ns_a_1/c1/deeper")).files.is_empty());
        // The glob's base and what is above it need a full scan; a pod's directory does not.
        assert!(t.holds_a_base(root) && t.holds_a_base(root.parent().unwrap()));
        assert!(!t.holds_a_base(&root.join("ns_a_1")));
        // A directory that went away: nothing under it.
        assert!(t.scan_under(&root.join("ns_gone_9")).files.is_empty());
    }
}
