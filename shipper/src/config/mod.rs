//! The agent's configuration: YAML with `${ENV}` expansion, defaults like Promtail's, and errors that name
//! the path of the bad key (`client.backoff.min_period: ...`).
//!
//! Every field's doc comment is its line in the configuration reference (`reference.rs`), so each
//! field needs one.

mod env;
mod file_sd;
mod journal;
mod load;
mod positions;
pub mod reference;

pub use crate::logging::LogFormat;
pub use crate::units::{ByteSize, Dur};
pub use env::expand as expand_env;
pub use file_sd::{FileSdConfig, FileSdState};
pub use journal::{JournalConfig, JournalFormat};
pub use load::{load_file, load_str, parse_expanded, ConfigError};
pub use positions::{ImportFrom, PositionsConfig};

use crate::parse::Format;
pub use crate::process::config::{LabelLimits, RelabelConfig, StageConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The agent's own HTTP server (`/metrics`, `/ready`, `/healthz`) and log.
    pub server: ServerConfig,
    /// The positions file: how far each file (and the journal) was acknowledged by Loki.
    pub positions: PositionsConfig,
    /// The Loki endpoint lines are pushed to: URL, tenant, credentials, TLS, batching and retries.
    pub client: ClientConfig,
    /// How files are found, watched and read, and the budgets that bound the agent's memory, file
    /// descriptors and CPU.
    pub tail: TailConfig,
    /// Static file targets (like Promtail's `static_configs` / Alloy's `local.file_match`).
    pub targets: Vec<TargetConfig>,
    /// `static` (only `targets`) or `kubernetes` (also every container log under
    /// `kubernetes.pods_root`, labelled like the Alloy/Promtail Kubernetes setups).
    pub discovery: Discovery,
    /// With `discovery: kubernetes`: where kubelet's logs are, and the pod metadata (from the API
    /// server) that labels them.
    pub kubernetes: KubernetesConfig,
    /// More Loki endpoints besides `client` (at most 63 more): every line goes to each, with its
    /// own batching and retries, unless a target's or a `branches` stage's `clients` sends it to
    /// some only; a file's position moves only when every endpoint it goes to stored its lines.
    pub clients: Vec<ClientConfig>,
    /// Relabel rules (Prometheus') on every file's target labels, before its target's own.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Stages (Promtail's) every line goes through, before its target's own.
    pub pipeline_stages: Vec<StageConfig>,
    /// Loki's label limits, applied to every stream so no push is refused for its labels.
    pub label_limits: LabelLimits,
    /// How long SIGTERM waits for in-flight batches before writing positions and exiting.
    pub shutdown_timeout: Dur,
    /// The systemd journal, read through `journalctl` (absent: not read).
    pub journal: Option<JournalConfig>,
    /// The agent's threads run on at most this many CPUs (a cap on its CPU share); 0: all.
    pub max_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            positions: PositionsConfig::default(),
            client: ClientConfig::default(),
            tail: TailConfig::default(),
            targets: Vec::new(),
            discovery: Discovery::Static,
            kubernetes: KubernetesConfig::default(),
            clients: Vec::new(),
            relabel_configs: Vec::new(),
            pipeline_stages: Vec::new(),
            label_limits: LabelLimits::default(),
            shutdown_timeout: Dur::secs(30),
            journal: None,
            max_threads: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP server with /metrics, /ready and /healthz. Empty disables it.
    pub http_listen: String,
    /// tracing filter, e.g. `info` or `shipper=debug,info`.
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen: "0.0.0.0:9080".into(),
            log_level: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// A name for this endpoint, which a target's `clients` and a `branches` stage's `clients` use
    /// to send lines only to some endpoints. Unique among `client` and `clients`. An endpoint
    /// without a name cannot be named there: it gets the lines of the targets and branches that
    /// name no clients.
    pub name: Option<String>,
    /// Loki push URL.
    pub url: String,
    /// `X-Scope-OrgID` header; empty sends none.
    pub tenant_id: String,
    /// HTTP basic authentication (Grafana Cloud, a gateway).
    pub basic_auth: Option<BasicAuth>,
    /// Bearer token read from this file (re-read at start). Never put the token itself in the config.
    pub bearer_token_file: Option<PathBuf>,
    /// TLS towards Loki (an `https://` URL): which CAs to trust, a client certificate.
    pub tls: TlsConfig,
    /// A batch is sent when it holds this many bytes of log lines...
    pub batch_size: ByteSize,
    /// ...or when its oldest line has waited this long. Files that are written all the time are
    /// read at most every fifth of the shortest `batch_wait` of all clients (200 ms at most; a
    /// smaller share below 1 s, down to every 2 ms for 100 ms and less): a line is stored within
    /// about 1.2 × `batch_wait` of being written.
    pub batch_wait: Dur,
    /// Timeout of one push request.
    pub timeout: Dur,
    /// Retries of a push Loki refused with 429 or 5xx, or that failed: exponential backoff with jitter.
    pub backoff: BackoffConfig,
    /// Drop a batch Loki refuses with a 4xx about the request rather than its entries (401, 403,
    /// 404, a 400 that names no entry…) instead of holding it. By default (false) such a batch is
    /// retried with `backoff` until Loki takes it: a missing tenant, expired credentials or a wrong
    /// URL pause reading, as an outage does, until fixed, and lose nothing.
    pub drop_on_client_error: bool,
    /// Labels added to every stream.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: None,
            url: "http://localhost:3100/loki/api/v1/push".into(),
            tenant_id: String::new(),
            basic_auth: None,
            bearer_token_file: None,
            tls: TlsConfig::default(),
            batch_size: ByteSize(1 << 20),
            batch_wait: Dur::secs(1),
            timeout: Dur::secs(10),
            backoff: BackoffConfig::default(),
            drop_on_client_error: false,
            external_labels: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// Read from this file; the password itself is never in the config.
    pub password_file: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify in the server certificate instead of the URL's host.
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// The wait before the first retry; it doubles with each retry of the same batch (up to half
    /// of each wait is random, so agents do not retry in lockstep).
    pub min_period: Dur,
    /// The longest wait between two retries (a `Retry-After` from Loki is honoured up to this).
    pub max_period: Dur,
    /// Retries of one batch before it is dropped (counted and logged). 0 (the default) retries
    /// forever: while Loki refuses or is down, reading pauses and the files are the buffer, so an
    /// outage of any length loses nothing kubelet keeps on disk.
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min_period: Dur::ms(500),
            max_period: Dur::secs(300),
            max_retries: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

impl std::str::FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            _ => Err(format!("`{s}` is not a start position; use beginning or end")),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// The best available: eBPF, else inotify, else polling.
    Auto,
    /// eBPF programs on the kernel's write and file events (root or CAP_BPF + CAP_PERFMON): one
    /// watcher for every file, no inotify watches.
    Ebpf,
    /// An inotify watch per directory.
    Inotify,
    /// Every file is checked each `poll_interval`.
    Poll,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EbpfWriteHook {
    /// fexit where the kernel allows it, else syscall tracepoints.
    Auto,
    /// An fexit program on `vfs_write` (needs BTF and a kernel that allows fexit).
    Fexit,
    /// The write, writev, pwrite64, pwritev and pwritev2 syscall tracepoints (work wherever
    /// tracepoints do). With either hook, sendfile, copy_file_range and splice are hooked on their
    /// tracepoints, and io_uring writes on io_uring_complete where the kernel has it.
    Tracepoint,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring when it can be set up, else pread.
    Auto,
    /// io_uring reads.
    Uring,
    /// A `pread` system call per read.
    Pread,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TailConfig {
    /// Where to start in files that exist at the first start and have no saved position.
    pub start_at: StartAt,
    /// With `start_at: beginning`: such a file that nobody wrote for longer than this starts at its
    /// end instead (its lines were most likely shipped already, by us before the positions were lost
    /// or by the agent we replace). 0: no limit.
    pub start_at_max_age: Dur,
    /// Longer lines are truncated to this many bytes (and counted).
    pub max_line_size: ByteSize,
    /// Bytes read from a file per read call.
    pub read_buffer_size: ByteSize,
    /// How new data and new files are noticed.
    pub watch: WatchMode,
    /// Where the eBPF watcher hooks writes: `auto` tries fexit on `vfs_write`, then the write
    /// syscalls' tracepoints, keeping the first that attaches and reports a probe write.
    pub ebpf_write_hook: EbpfWriteHook,
    /// How files are read.
    pub io: IoMode,
    /// With `watch: poll`, how often files are checked for new data.
    pub poll_interval: Dur,
    /// How often the target globs are expanded again and every file is checked for data no event
    /// reported: the safety net under the file watcher (events trigger scans sooner).
    pub rescan_interval: Dur,
    /// While the safety net finds nothing the file events missed, its rounds are spaced out, doubling
    /// from `rescan_interval` up to this; the first miss brings them back to `rescan_interval`. Set
    /// it to `rescan_interval` (or lower) to keep them fixed. No effect with `watch: poll`.
    pub max_rescan_interval: Dur,
    /// Slots of the queue between the readers and the batcher; bounds memory. A slot holds a read
    /// round's chunks, up to 256 KiB of lines, or one bigger read.
    pub ring_capacity: usize,
    /// Most files open at once.
    pub max_open_files: usize,
    /// Most bytes not yet acknowledged in rotated or deleted files still held open (while Loki is
    /// down or slow). Over it the oldest such file is let go and its unread bytes are counted lost.
    pub max_held_bytes: ByteSize,
    /// The memory budget: most bytes read and not yet acknowledged by Loki (in the ring, in
    /// batches, in flight and retried). At it, reading pauses (nothing is dropped: the files are
    /// the buffer) and `shipper_reading_paused{reason="memory_budget"}` says so. 0: no budget.
    pub max_buffered_bytes: ByteSize,
    /// Most bytes read per second over all files (a cap on the agent's CPU share); 0: no limit.
    pub max_read_rate: ByteSize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            start_at: StartAt::Beginning,
            start_at_max_age: Dur::secs(24 * 3600),
            max_line_size: ByteSize(256 << 10),
            read_buffer_size: ByteSize(256 << 10),
            watch: WatchMode::Auto,
            ebpf_write_hook: EbpfWriteHook::Auto,
            io: IoMode::Auto,
            poll_interval: Dur::ms(250),
            rescan_interval: Dur::secs(10),
            max_rescan_interval: Dur::secs(60),
            ring_capacity: 16,
            max_open_files: 10_000,
            max_held_bytes: ByteSize(2 << 30),
            max_buffered_bytes: ByteSize(256 << 20),
            max_read_rate: ByteSize(0),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Globs of files to tail, e.g. `/var/log/pods/*/*/*.log`.
    pub paths: Vec<String>,
    /// Globs of files not to tail even if `paths` matches them (e.g. `*.gz`).
    pub exclude: Vec<String>,
    /// Labels of every line from these files (a `filename` label is added too).
    pub labels: BTreeMap<String, String>,
    /// Labels read off each file's path: `kubelet` gives `namespace`, `pod`, `container` and `job`
    /// from `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log`; `docker` finds the pod of
    /// `/var/lib/docker/containers/<id>/<id>-json.log` by its container id, and gives the
    /// relabel rules of a file no pod claims (a bare Docker host) its container's
    /// `__meta_docker_container_*` labels, read from dockerd's files beside the log. `labels` win
    /// over these.
    pub path_labels: PathLabels,
    pub format: Format,
    /// Relabel rules on this target's files' labels (after the global `relabel_configs`); a file
    /// they drop is not tailed.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Stages this target's lines go through (after the global `pipeline_stages`).
    pub pipeline_stages: Vec<StageConfig>,
    /// Files naming more files to tail (Prometheus' and Promtail's file-based discovery): each
    /// group with a `__path__` label is tailed with this target's settings and the group's labels.
    pub file_sd_configs: Vec<FileSdConfig>,
    /// The endpoints (client `name`s) this target's lines go to; empty: every endpoint. A
    /// `branches` stage may send each branch's lines elsewhere.
    pub clients: Vec<String>,
    /// Where a target the config did not list comes from (`kubernetes`), for the keys of errors.
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PathLabels {
    #[default]
    None,
    Kubelet,
    Docker,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    #[default]
    Static,
    Kubernetes,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Where kubelet writes container logs.
    pub pods_root: PathBuf,
    /// Where dockerd writes `<id>/<id>-json.log`; those files are tailed once a pod on this node
    /// names their container. Used only if it exists at start.
    pub docker_root: PathBuf,
    /// This node's name, for the `node_name` label and the pod watch; `$NODE_NAME` (set from the
    /// downward API) when not given.
    pub node_name: Option<String>,
    /// `true`: watch this node's pods (and namespaces) at the API server for `app`, the label and
    /// annotation mappings and exclusion. `false`: labels from paths only.
    pub api: bool,
    /// A kubeconfig file; without one the in-cluster service account (or `$KUBECONFIG`,
    /// `~/.kube/config`) is used.
    pub kubeconfig: Option<PathBuf>,
    /// Pod labels copied to Loki labels: pod label key → Loki label name (sanitized to Loki's
    /// rules). Only these: cardinality stays in the user's hands.
    pub pod_labels: BTreeMap<String, String>,
    /// Pod annotations copied to Loki labels, the same way.
    pub pod_annotations: BTreeMap<String, String>,
    /// Only these namespaces are shipped (all when empty).
    pub include_namespaces: Vec<String>,
    /// These namespaces are never shipped.
    pub exclude_namespaces: Vec<String>,
    /// Watch namespaces too, for the `shipper.io/exclude` annotation on a namespace (needs RBAC
    /// list/watch on namespaces).
    pub watch_namespaces: bool,
    /// How long a deleted pod's metadata is kept, so the last lines of a finished pod are labelled.
    pub deleted_pod_grace: Dur,
    /// Per-container facts sent as Loki 3 structured metadata with every line (not labels, so no
    /// cardinality cost). Loki must accept structured metadata (schema v13,
    /// `allow_structured_metadata`).
    pub structured_metadata: Vec<PodField>,
    /// Relabel rules for the pods' files only (after the global `relabel_configs`): what a
    /// Kubernetes job of Promtail or Alloy does, when the config also tails other files.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Stages for the pods' lines only (after the global `pipeline_stages`).
    pub pipeline_stages: Vec<StageConfig>,
}

/// A fact about a container that can travel as structured metadata.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PodField {
    PodUid,
    ContainerId,
    Image,
}

impl PodField {
    pub fn name(self) -> &'static str {
        match self {
            PodField::PodUid => "pod_uid",
            PodField::ContainerId => "container_id",
            PodField::Image => "image",
        }
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            pods_root: PathBuf::from("/var/log/pods"),
            docker_root: PathBuf::from("/var/lib/docker/containers"),
            node_name: None,
            api: true,
            kubeconfig: None,
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            watch_namespaces: true,
            deleted_pod_grace: Dur::secs(300),
            structured_metadata: Vec::new(),
            relabel_configs: Vec::new(),
            pipeline_stages: Vec::new(),
        }
    }
}

impl KubernetesConfig {
    /// The node name from the config, else `$NODE_NAME`.
    pub fn node(&self) -> Option<String> {
        let given = self.node_name.clone().filter(|n| !n.is_empty());
        given
            .or_else(|| std::env::var("NODE_NAME").ok())
            .filter(|n| !n.is_empty())
    }
}

/// What a target's files go through, compiled: the relabel rules (the global ones, then its
/// own) and the stages (likewise).
pub struct CompiledTarget {
    pub relabel: Vec<crate::process::relabel::Relabeler>,
    pub pipeline: Option<std::sync::Arc<crate::process::pipeline::Pipeline>>,
    /// The endpoints its lines go to, bit i for endpoint i (`client`, then `clients`); None: all.
    pub clients: Option<u64>,
}

impl Config {
    /// Every target's rules and stages compiled (in the order of `targets`); Err names the key of
    /// the first that does not compile (`targets[1].pipeline_stages[0].regex: …`).
    pub fn compile_targets(&self) -> Result<Vec<CompiledTarget>, String> {
        use crate::process::{pipeline::Pipeline, relabel::Relabeler};
        let endpoints = self.endpoints()?;
        let global = Relabeler::new(&self.relabel_configs, "relabel_configs")?;
        let max_line = self.tail.max_line_size.0 as usize;
        let mut out = Vec::with_capacity(self.targets.len());
        for (i, c) in self.targets.iter().enumerate() {
            let key = c.origin.map_or_else(|| format!("targets[{i}]"), str::to_string);
            let own = Relabeler::new(&c.relabel_configs, &format!("{key}.relabel_configs"))?;
            let relabel = [global.clone(), own].into_iter().filter(|r| !r.is_empty()).collect();
            let stages: Vec<(String, &StageConfig)> = self
                .pipeline_stages
                .iter()
                .enumerate()
                .map(|(j, s)| (format!("pipeline_stages[{j}]"), s))
                .chain(
                    c.pipeline_stages
                        .iter()
                        .enumerate()
                        .map(|(j, s)| (format!("{key}.pipeline_stages[{j}]"), s)),
                )
                .collect();
            let clients = endpoints.mask(&c.clients, &format!("{key}.clients"))?;
            let routes = endpoints.routes(clients);
            let pipeline = Pipeline::new(&stages, &self.label_limits, max_line, &routes)?.map(std::sync::Arc::new);
            out.push(CompiledTarget {
                relabel,
                pipeline,
                clients,
            });
        }
        Ok(out)
    }

    /// The endpoints (`client`, then `clients`) by name, in the batcher's order; Err names the
    /// key of a duplicate or empty name, or of one endpoint too many.
    pub fn endpoints(&self) -> Result<crate::process::routes::Endpoints, String> {
        let places = std::iter::once(("client".to_string(), self.client.name.clone())).chain(
            self.clients
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("clients[{i}]"), c.name.clone())),
        );
        crate::process::routes::Endpoints::new(places)
    }

    /// With `discovery: kubernetes`, the target of every container log kubelet writes on this node,
    /// after the user's own targets (the first target matching a file wins).
    pub fn add_discovered_targets(&mut self) {
        let from_files: Vec<TargetConfig> = self.targets.iter().flat_map(file_sd::expand).collect();
        self.targets.extend(from_files);
        if self.discovery != Discovery::Kubernetes {
            return;
        }
        let mut labels = BTreeMap::new();
        if let Some(node) = self.kubernetes.node() {
            labels.insert("node_name".to_string(), node);
        }
        let root = self.kubernetes.pods_root.display().to_string();
        let k = &self.kubernetes;
        self.targets.push(TargetConfig {
            paths: vec![format!("{}/*/*/*.log", root.trim_end_matches('/'))],
            exclude: Vec::new(),
            labels: labels.clone(),
            path_labels: PathLabels::Kubelet,
            format: Format::Auto,
            relabel_configs: k.relabel_configs.clone(),
            pipeline_stages: k.pipeline_stages.clone(),
            origin: Some("kubernetes"),
            ..Default::default()
        });
        let docker = &self.kubernetes.docker_root;
        if self.kubernetes.api && docker.is_dir() {
            let root = docker.display().to_string();
            self.targets.push(TargetConfig {
                paths: vec![format!("{}/*/*-json.log", root.trim_end_matches('/'))],
                exclude: Vec::new(),
                labels,
                path_labels: PathLabels::Docker,
                format: Format::Docker,
                relabel_configs: self.kubernetes.relabel_configs.clone(),
                pipeline_stages: self.kubernetes.pipeline_stages.clone(),
                origin: Some("kubernetes"),
                ..Default::default()
            });
        }
    }
}
