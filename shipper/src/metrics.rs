//! Self-observability: Prometheus metrics with the `shipper_` prefix and units in their names.
//!
//! One `Metrics` value is shared by every stage; `encode` renders the text exposition for `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

pub use crate::metric_labels::*;

/// Handles on one file's series (`read_bytes`, `read_lines`, `file_offset`).
#[derive(Clone, Debug, Default)]
pub struct FileCounters {
    pub read_bytes: Counter,
    pub read_lines: Counter,
    pub offset: Gauge<u64, AtomicU64>,
}

fn stage_registry() -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(crate::process::custom_metrics::StageMetrics));
    r
}

/// Buckets of `shipper_read_lag_seconds`: fine below 20 ms, where waking on events lives.
pub const READ_LAG_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// The `metrics` stages' own metrics, named as their config says (no `shipper_` prefix).
    stage_registry: Registry,
    pub read_bytes: Family<PathLabel, Counter>,
    pub read_lines: Family<PathLabel, Counter>,
    pub file_offset: Family<PathLabel, Gauge<u64, AtomicU64>>,
    pub parse_issues: Family<IssueLabel, Counter>,
    pub open_files: Gauge,
    pub file_reads: Family<ResultLabel, Counter>,
    pub scans: Counter,
    pub dir_scans: Counter,
    pub scan_seconds: Gauge<f64, AtomicU64>,
    pub rescan_interval: Gauge<f64, AtomicU64>,
    pub missed_events: Counter,
    pub waiting_files: Gauge,
    pub rotations: Counter,
    pub ebpf_events: Counter,
    pub ebpf_ring_full: Counter,
    pub truncations: Counter,
    pub skipped_files: Family<ReasonLabel, Counter>,
    pub ring_chunks: Gauge,
    pub ring_capacity: Gauge,
    pub sent_entries: Counter,
    pub sent_bytes: Counter,
    pub batches: Family<StatusLabel, Counter>,
    pub retries: Family<ReasonLabel, Counter>,
    pub dropped_entries: Family<ReasonLabel, Counter>,
    pub push_blocked: Family<ReasonLabel, Gauge>,
    pub dropped_bytes: Family<ReasonLabel, Counter>,
    pub push_seconds: Histogram,
    pub read_lag_seconds: Histogram,
    pub checkpoint_lag_bytes: Gauge,
    pub positions_writes: Family<StatusLabel, Counter>,
    pub positions_written_bytes: Family<KindLabel, Counter>,
    pub watcher_mode: Family<ModeLabel, Gauge>,
    pub ebpf_write_hook: Family<ModeLabel, Gauge>,
    pub reader_mode: Family<ModeLabel, Gauge>,
    pub held_bytes: Gauge,
    pub held_limit_bytes: Gauge,
    pub kube_cache_pods: Gauge,
    pub kube_watch_errors: Family<ResourceLabel, Counter>,
    pub pipeline_dropped: Family<ReasonLabel, Counter>,
    pub stage_failures: Family<StageLabel, Counter>,
    pub secrets_redacted: Family<RuleLabel, Counter>,
    pub labels_fitted: Family<ReasonLabel, Counter>,
    pub reload_successful: Gauge,
    pub reload_timestamp: Gauge<f64, AtomicU64>,
    pub reloads: Family<ResultLabel, Counter>,
    pub buffered_bytes: Gauge,
    pub buffered_limit_bytes: Gauge,
    pub resident_memory_bytes: Gauge,
    pub reading_paused: Family<ReasonLabel, Gauge>,
    pub reading_paused_seconds: Family<ReasonLabel, Counter<f64, AtomicU64>>,
    pub journal_entries: Counter,
    pub journal_dropped: Family<ReasonLabel, Counter>,
    pub journal_restarts: Counter,
    pub files_deleted_while_down: Counter,
    pub files_deleted_while_down_time: Gauge<f64, AtomicU64>,
    pub files_inflated: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            read_bytes: Family::default(),
            read_lines: Family::default(),
            file_offset: Family::default(),
            parse_issues: Family::default(),
            open_files: Gauge::default(),
            file_reads: Family::default(),
            scans: Counter::default(),
            dir_scans: Counter::default(),
            scan_seconds: Gauge::default(),
            rescan_interval: Gauge::default(),
            missed_events: Counter::default(),
            waiting_files: Gauge::default(),
            rotations: Counter::default(),
            ebpf_events: Counter::default(),
            ebpf_ring_full: Counter::default(),
            truncations: Counter::default(),
            skipped_files: Family::default(),
            ring_chunks: Gauge::default(),
            ring_capacity: Gauge::default(),
            sent_entries: Counter::default(),
            sent_bytes: Counter::default(),
            batches: Family::default(),
            retries: Family::default(),
            dropped_entries: Family::default(),
            push_blocked: Family::default(),
            dropped_bytes: Family::default(),
            push_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            read_lag_seconds: Histogram::new(READ_LAG_BUCKETS),
            checkpoint_lag_bytes: Gauge::default(),
            positions_writes: Family::default(),
            positions_written_bytes: Family::default(),
            watcher_mode: Family::default(),
            ebpf_write_hook: Family::default(),
            reader_mode: Family::default(),
            held_bytes: Gauge::default(),
            held_limit_bytes: Gauge::default(),
            kube_cache_pods: Gauge::default(),
            kube_watch_errors: Family::default(),
            pipeline_dropped: Family::default(),
            stage_failures: Family::default(),
            secrets_redacted: Family::default(),
            labels_fitted: Family::default(),
            reload_successful: Gauge::default(),
            reload_timestamp: Gauge::default(),
            reloads: Family::default(),
            buffered_bytes: Gauge::default(),
            buffered_limit_bytes: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            reading_paused: Family::default(),
            reading_paused_seconds: Family::default(),
            registry: Registry::with_prefix("shipper"),
            stage_registry: stage_registry(),
            journal_entries: Counter::default(),
            journal_dropped: Family::default(),
            journal_restarts: Counter::default(),
            files_deleted_while_down: Counter::default(),
            files_deleted_while_down_time: Gauge::default(),
            files_inflated: Counter::default(),
        };
        let r = &mut m.registry;
        r.register_with_unit("read", "Bytes read from each file", Unit::Bytes, m.read_bytes.clone());
        r.register("read_lines", "Lines read from each file", m.read_lines.clone());
        r.register_with_unit(
            "file_read_offset",
            "Offset read so far in each open file",
            Unit::Bytes,
            m.file_offset.clone(),
        );
        r.register(
            "pipeline_dropped_lines",
            "Lines dropped on purpose by pipeline stages (drop, keep, limit, json drop_malformed), by reason",
            m.pipeline_dropped.clone(),
        );
        r.register(
            "pipeline_stage_failures",
            "Lines a stage could not handle and passed on unchanged (not JSON, no regex match, no timestamp), by stage",
            m.stage_failures.clone(),
        );
        r.register(
            "pipeline_secrets_redacted",
            "Secrets a secretfilter stage replaced in lines, by rule",
            m.secrets_redacted.clone(),
        );
        r.register(
            "labels_fitted",
            "Labels changed to fit Loki's label_limits: dropped (too many, or name too long) or cut (value too long)",
            m.labels_fitted.clone(),
        );
        r.register(
            "config_last_reload_successful",
            "Whether the last config load (at start, SIGHUP or POST /reload) succeeded (1) or was rejected (0: the previous config keeps running)",
            m.reload_successful.clone(),
        );
        r.register_with_unit(
            "config_last_reload_timestamp",
            "When the config was last loaded or a reload was attempted (Unix time)",
            Unit::Seconds,
            m.reload_timestamp.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads by result (applied, rejected)",
            m.reloads.clone(),
        );
        r.register_with_unit(
            "buffered",
            "Bytes read and sent on but not yet acknowledged by Loki (ring, batches, pushes): what tail.max_buffered_bytes bounds",
            Unit::Bytes,
            m.buffered_bytes.clone(),
        );
        r.register_with_unit(
            "resident_memory",
            "The agent's resident memory (RSS) at the scrape: what a container memory limit holds to",
            Unit::Bytes,
            m.resident_memory_bytes.clone(),
        );
        r.register_with_unit(
            "buffered_limit",
            "tail.max_buffered_bytes, the memory budget shipper_buffered_bytes is held to (0: none)",
            Unit::Bytes,
            m.buffered_limit_bytes.clone(),
        );
        r.register(
            "reading_paused",
            "1 while reading waits, by reason: memory_budget (tail.max_buffered_bytes reached) or read_rate (tail.max_read_rate)",
            m.reading_paused.clone(),
        );
        r.register_with_unit(
            "reading_paused",
            "Time reading waited, by reason (counted when each pause ends)",
            Unit::Seconds,
            m.reading_paused_seconds.clone(),
        );
        r.register(
            "parse_issues",
            "Records that were not shipped as-is, by issue",
            m.parse_issues.clone(),
        );
        r.register_with_unit(
            "read_lag",
            "Time from a line's own timestamp (CRI, docker) to its read, for the oldest line of each read: how soon a write wakes the reader",
            Unit::Seconds,
            m.read_lag_seconds.clone(),
        );
        r.register("open_files", "Files open for reading", m.open_files.clone());
        r.register(
            "file_reads",
            "Reads of tailed files by result (data, empty at the end of the file, error): idle files cost none",
            m.file_reads.clone(),
        );
        r.register(
            "scans",
            "Full scans of the targets for new and rotated files (at start, periodic, and when events were lost)",
            m.scans.clone(),
        );
        r.register(
            "directory_scans",
            "Scans of the targets below one directory, for a directory created, removed or moved (a new pod's)",
            m.dir_scans.clone(),
        );
        r.register_with_unit(
            "last_scan_duration",
            "How long the last scan of the targets took (periodic scans are spaced to at most 2% of a core)",
            Unit::Seconds,
            m.scan_seconds.clone(),
        );
        r.register_with_unit(
            "rescan_interval",
            "The time between rounds of the safety net (every file checked, the targets rescanned): tail.rescan_interval, spaced up to tail.max_rescan_interval while the file events miss nothing, and for huge trees",
            Unit::Seconds,
            m.rescan_interval.clone(),
        );
        r.register(
            "missed_events",
            "Changes the safety net found that no file event reported (data written, files created, renamed away or deleted); each brings the net back to tail.rescan_interval",
            m.missed_events.clone(),
        );
        r.register(
            "waiting_files",
            "Files matched by the targets but not tailed because tail.max_open_files (or the descriptor limit) is reached; tailed once others close",
            m.waiting_files.clone(),
        );
        r.register(
            "skipped_files",
            "Paths matched by the targets that cannot be tailed (FIFOs, devices, symlink loops, no permission), counted once per path",
            m.skipped_files.clone(),
        );
        r.register(
            "kube_cache_pods",
            "Pods of this node in the metadata cache (deleted ones during their grace period included)",
            m.kube_cache_pods.clone(),
        );
        r.register(
            "kube_watch_errors",
            "Failed requests and broken watches at the Kubernetes API server, by resource",
            m.kube_watch_errors.clone(),
        );
        r.register("rotations", "File rotations seen (rename, delete)", m.rotations.clone());
        r.register(
            "ebpf_events",
            "File events the BPF programs delivered to userspace (writes to watched files, coalesced per read)",
            m.ebpf_events.clone(),
        );
        r.register(
            "ebpf_ring_full",
            "Times the BPF ring buffer overflowed (answered with a rescan)",
            m.ebpf_ring_full.clone(),
        );
        r.register(
            "truncations",
            "Files truncated in place (copytruncate)",
            m.truncations.clone(),
        );
        r.register(
            "ring_chunks",
            "Slots in use in the ring between readers and batcher (a slot holds a read round's chunks)",
            m.ring_chunks.clone(),
        );
        r.register("ring_capacity_chunks", "Capacity of the ring", m.ring_capacity.clone());
        r.register("sent_entries", "Entries acknowledged by Loki", m.sent_entries.clone());
        r.register_with_unit(
            "sent",
            "Line bytes acknowledged by Loki",
            Unit::Bytes,
            m.sent_bytes.clone(),
        );
        r.register("batches", "Push requests by outcome", m.batches.clone());
        r.register("push_retries", "Push retries by reason", m.retries.clone());
        r.register(
            "dropped_entries",
            "Entries dropped, by reason",
            m.dropped_entries.clone(),
        );
        r.register(
            "push_blocked",
            "Pushes held because Loki refuses every request of the agent, by reason (unauthorized: 401, forbidden: 403, not_found: 404, bad_request: a 400 naming no entry, rejected: other 4xx); nothing is dropped meanwhile",
            m.push_blocked.clone(),
        );
        r.register_with_unit(
            "dropped",
            "Bytes of files let go unread, by reason (max_held_bytes: rotated or deleted files over tail.max_held_bytes)",
            Unit::Bytes,
            m.dropped_bytes.clone(),
        );
        r.register_with_unit(
            "push_duration",
            "Duration of push requests",
            Unit::Seconds,
            m.push_seconds.clone(),
        );
        r.register_with_unit(
            "checkpoint_lag",
            "Bytes read but not yet acknowledged, over all files",
            Unit::Bytes,
            m.checkpoint_lag_bytes.clone(),
        );
        r.register(
            "positions_writes",
            "Positions file writes by outcome",
            m.positions_writes.clone(),
        );
        r.register_with_unit(
            "positions_written",
            "Bytes written to the positions file: whole snapshots, and records of changes appended between them",
            Unit::Bytes,
            m.positions_written_bytes.clone(),
        );
        r.register(
            "watcher_mode",
            "File change detection in use (1 = active)",
            m.watcher_mode.clone(),
        );
        r.register(
            "ebpf_write_hook",
            "Where the eBPF watcher hooks writes (fexit or tracepoint; 1 = active)",
            m.ebpf_write_hook.clone(),
        );
        r.register(
            "reader_mode",
            "File read path in use (1 = active)",
            m.reader_mode.clone(),
        );
        r.register_with_unit(
            "held",
            "Unacknowledged bytes kept readable in rotated or deleted files",
            Unit::Bytes,
            m.held_bytes.clone(),
        );
        r.register_with_unit(
            "held_limit",
            "tail.max_held_bytes, what rotated or deleted files may hold before the oldest are let go",
            Unit::Bytes,
            m.held_limit_bytes.clone(),
        );
        r.register(
            "journal_entries",
            "Journal entries read (journal: in the config) and put in the ring",
            m.journal_entries.clone(),
        );
        r.register(
            "journal_dropped_entries",
            "Journal entries not shipped, by reason: bad_format (not journalctl's export format), no_message",
            m.journal_dropped.clone(),
        );
        r.register(
            "journal_restarts",
            "Restarts of journalctl after it exited",
            m.journal_restarts.clone(),
        );
        r.register(
            "files_deleted_while_down",
            "Files of the positions found deleted at start: lines written to them after their saved offset, if any, were lost",
            m.files_deleted_while_down.clone(),
        );
        r.register_with_unit(
            "files_deleted_while_down_last_timestamp",
            "Unix time of this start, if it found files of the positions deleted (0: it found none): the counter above is counted before the first scrape, so alert on this",
            Unit::Seconds,
            m.files_deleted_while_down_time.clone(),
        );
        r.register(
            "files_inflated",
            "Files of the positions found only compressed at start (kubelet gzipped them while the agent was down) whose rest was read from the .gz",
            m.files_inflated.clone(),
        );
        m
    }

    /// A series of each `values` in `family`, at 0 unless already counted.
    pub fn zero<'a>(family: &Family<ReasonLabel, Counter>, values: impl IntoIterator<Item = &'a str>) {
        for v in values {
            let _ = family.get_or_create(&Self::reason(v));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        if let Some(rss) = resident_bytes() {
            self.resident_memory_bytes.set(rss);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        let mut stages = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut stages, &self.stage_registry);
        // One exposition: the stages' families go before the single `# EOF`.
        if let (Some(at), Some(theirs)) = (out.rfind("# EOF"), stages.strip_suffix("# EOF\n")) {
            out.insert_str(at, theirs);
        }
        out
    }

    /// One file's series, looked up once when it is opened rather than on every read.
    pub fn file_counters(&self, path: &std::path::Path) -> FileCounters {
        let label = Metrics::path(path);
        FileCounters {
            read_bytes: self.read_bytes.get_or_create(&label).clone(),
            read_lines: self.read_lines.get_or_create(&label).clone(),
            offset: self.file_offset.get_or_create(&label).clone(),
        }
    }

    pub fn path(path: &std::path::Path) -> PathLabel {
        PathLabel {
            path: path.display().to_string(),
        }
    }

    pub fn reason(reason: &str) -> ReasonLabel {
        ReasonLabel {
            reason: reason.to_string(),
        }
    }

    pub fn kind(kind: &'static str) -> KindLabel {
        KindLabel { kind }
    }

    pub fn status(status: &str) -> StatusLabel {
        StatusLabel {
            status: status.to_string(),
        }
    }

    /// Forgets the per-file series of a file that is no longer read, so cardinality follows open files.
    /// A config was loaded (at start, or a reload attempt): whether it was applied, and when.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_successful.set(ok as i64);
        self.reload_timestamp.set(crate::unix_now_ns() as f64 / 1e9);
    }

    pub fn forget_file(&self, path: &std::path::Path) {
        let l = Self::path(path);
        self.read_bytes.remove(&l);
        self.read_lines.remove(&l);
        self.file_offset.remove(&l);
    }

    pub fn add_stage_stats(&self, s: &crate::process::pipeline::StageStats) {
        for (reason, n) in &s.dropped {
            self.pipeline_dropped.get_or_create(&Self::reason(reason)).inc_by(*n);
        }
        for (stage, n) in &s.failed {
            self.stage_failures.get_or_create(&StageLabel { stage }).inc_by(*n);
        }
        for (rule, n) in &s.redacted {
            self.secrets_redacted.get_or_create(&RuleLabel { rule }).inc_by(*n);
        }
        self.add_label_fits(s.labels);
        if s.truncated > 0 {
            self.parse_issues
                .get_or_create(&IssueLabel { issue: "truncated" })
                .inc_by(s.truncated);
        }
    }

    pub fn add_label_fits(&self, f: crate::process::labels::Fitted) {
        for (reason, n) in [("dropped", f.dropped), ("cut", f.cut)] {
            if n > 0 {
                self.labels_fitted.get_or_create(&Self::reason(reason)).inc_by(n);
            }
        }
    }

    pub fn add_parse_stats(&self, s: &crate::parse::ParseStats) {
        let add = |issue: &'static str, n: u64| {
            if n > 0 {
                self.parse_issues.get_or_create(&IssueLabel { issue }).inc_by(n);
            }
        };
        let [a, b, c, d] = PARSE_ISSUES;
        add(a, s.parse_errors);
        add(b, s.truncated);
        add(c, s.invalid_utf8);
        add(d, s.oversized_records);
    }
}

#[cfg(test)]
#[path = "metrics_docs_tests.rs"]
mod docs_tests;

/// This process's resident set size, from `VmRSS` in `/proc/self/status` (in kB).
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: i64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}
