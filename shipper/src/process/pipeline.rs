//! Runs a file's lines through its stages: the global `pipeline_stages`, then its target's own.
//!
//! [`Pipeline`] is the compiled, shared part (regexes, paths, names); [`FileStages`] the state of one
//! file (a multiline entry in progress, rate limiter buckets, rendered label sets). The reader calls
//! [`FileStages::run`] on the entries of every read; lines that leave the last stage become entries
//! again, with an [`Extra`] when a stage changed their labels, structured metadata or tenant.

use super::config::{LabelLimits, StageConfig};
use super::custom_metrics::MetricsStage;
use super::extract::{JsonStage, LogfmtStage, RegexStage};
use super::filter::Filter;
use super::geoip::GeoipStage;
use super::labels::{Fitted, LabelCache};
use super::limit::{LabelLimiter, Limiter};
use super::multiline::{Multiline, MultilineSpec};
use super::replace::ReplaceStage;
use super::routes::Routes;
use super::secretfilter::SecretFilter;
use super::selector::Selector;
use super::template::TemplateStage;
use super::tenant::Tenant;
use super::timestamp::{TimestampStage, TsOutcome};
use super::transform::{decolorize, Pack, Sampling};
use super::{LabelOp, Line};
use crate::labels::sanitize_label_name;
use crate::labels::{metadata_after, StreamLabels};
use crate::parse::{Entry, Extra};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub(super) enum Stage {
    Json(JsonStage, bool),
    Logfmt(LogfmtStage),
    Regex(RegexStage),
    Labels(Vec<(Arc<str>, String)>),
    Metadata(Vec<(Arc<str>, String)>),
    Ops(Vec<LabelOp>),
    Timestamp(TimestampStage),
    Output(String),
    Tenant(Tenant),
    Drop(Filter),
    Keep(Filter),
    Multiline,
    /// Index into the file's limiters.
    Limit(usize),
    /// A bucket per value of a label, shared by the target's files.
    LimitByLabel(LabelLimiter),
    /// Lines the selector does not match skip the next this many stages (the match's own).
    Match(Selector, usize),
    /// Lines the selector matches are dropped, counted with this reason.
    MatchDrop(Selector, String),
    Pack(Pack),
    Decolorize,
    Sampling(Sampling),
    Metrics(MetricsStage),
    Template(TemplateStage),
    Replace(ReplaceStage),
    SecretFilter(SecretFilter),
    Geoip(GeoipStage),
    /// Each line goes on, a copy each, at these stage indices (the branches' first stages).
    Branches(Vec<usize>),
    /// The end of a branch: its lines leave the stages for these endpoints (None: every one).
    Route(Option<u64>),
}

/// The compiled stages of one target.
pub struct Pipeline {
    pub(super) stages: Vec<(&'static str, Stage)>,
    pub(super) multiline: Option<Arc<MultilineSpec>>,
    pub(super) limits: Vec<super::config::LimitConfig>,
    label_limits: LabelLimits,
    max_line_size: usize,
    /// The names stages read as a `source` (labels of those names start each line's values).
    label_sources: Vec<Arc<str>>,
}

/// Counts of one run, for the metrics.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Lines dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Lines a stage could not handle (kept as they were), by stage.
    pub failed: BTreeMap<&'static str, u64>,
    pub labels: Fitted,
    /// Multiline entries cut at `max_line_size`.
    pub truncated: u64,
    /// Secrets a `secretfilter` stage redacted, by rule.
    pub redacted: BTreeMap<&'static str, u64>,
}

impl StageStats {
    fn drop(&mut self, reason: &str) {
        match self.dropped.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.dropped.insert(reason.to_string(), 1);
            }
        }
    }
}

/// The label names a stage sets, made valid for Loki (`level-x` → `level_x`).
fn names(map: &BTreeMap<String, String>) -> Vec<(Arc<str>, String)> {
    map.iter()
        .map(|(name, source)| {
            let source = if source.is_empty() {
                name.clone()
            } else {
                source.clone()
            };
            (Arc::from(sanitize_label_name(name)), source)
        })
        .collect()
}

impl Pipeline {
    /// Compiles `stages` (each with its config path, for errors), with client names resolved
    /// through `routes`. None when there are none.
    pub fn new(
        stages: &[(String, &StageConfig)],
        label_limits: &LabelLimits,
        max_line_size: usize,
        routes: &Routes<'_>,
    ) -> Result<Option<Pipeline>, String> {
        if stages.is_empty() {
            return Ok(None);
        }
        let mut p = Pipeline {
            stages: Vec::new(),
            multiline: None,
            limits: Vec::new(),
            label_limits: label_limits.clone(),
            max_line_size,
            label_sources: super::start_values::label_sources(stages),
        };
        p.compile(stages, Some(routes))?;
        Ok(Some(p))
    }

    /// Whether a `branches` stage sends lines to some endpoints only.
    pub fn routes(&self) -> bool {
        self.stages.iter().any(|(_, s)| matches!(s, Stage::Route(Some(_))))
    }

    /// Compiles `stages` in place. `routes` is given at the top level only, where `branches`
    /// may be the last stage.
    pub(super) fn compile(
        &mut self,
        stages: &[(String, &StageConfig)],
        routes: Option<&Routes<'_>>,
    ) -> Result<(), String> {
        let p = self;
        for (j, (key, cfg)) in stages.iter().enumerate() {
            let key = format!("{key}.{}", cfg.name());
            let stage = match cfg {
                StageConfig::Json(c) => {
                    Stage::Json(JsonStage::new(c).map_err(|e| format!("{key}: {e}"))?, c.drop_malformed)
                }
                StageConfig::Logfmt(c) => Stage::Logfmt(LogfmtStage::new(c).map_err(|e| format!("{key}: {e}"))?),
                StageConfig::Regex(c) => Stage::Regex(RegexStage::new(c).map_err(|e| format!("{key}: {e}"))?),
                StageConfig::Labels(m) => Stage::Labels(names(m)),
                StageConfig::StructuredMetadata(m) => Stage::Metadata(names(m)),
                StageConfig::StaticLabels(m) => Stage::Ops(
                    m.iter()
                        .map(|(k, v)| LabelOp::Set(Arc::from(sanitize_label_name(k)), v.clone()))
                        .collect(),
                ),
                StageConfig::Labeldrop(v) => Stage::Ops(vec![LabelOp::Drop(Arc::from(v.clone()))]),
                StageConfig::Labelallow(v) => Stage::Ops(vec![LabelOp::Allow(Arc::from(v.clone()))]),
                StageConfig::Timestamp(c) => {
                    Stage::Timestamp(TimestampStage::new(c).map_err(|e| format!("{key}: {e}"))?)
                }
                StageConfig::Output(c) if c.source.is_empty() => {
                    return Err(format!("{key}.source: name the extracted value that replaces the line"))
                }
                StageConfig::Output(c) => Stage::Output(c.source.clone()),
                StageConfig::Tenant(c) => Stage::Tenant(Tenant::new(c, &key)?),
                StageConfig::Drop(c) => Stage::Drop(Filter::new(c, false, &key)?),
                StageConfig::Keep(c) => Stage::Keep(Filter::new(c, true, &key)?),
                StageConfig::Multiline(c) => {
                    if p.multiline.is_some() {
                        return Err(format!(
                            "{key}: only one multiline stage per target (global and target stages together)"
                        ));
                    }
                    p.multiline = Some(Arc::new(MultilineSpec::new(c, &key)?));
                    Stage::Multiline
                }
                StageConfig::Limit(c) => match LabelLimiter::new(c, &key)? {
                    Some(by_label) => Stage::LimitByLabel(by_label),
                    None => {
                        p.limits.push(c.clone());
                        Stage::Limit(p.limits.len() - 1)
                    }
                },
                // The file's format was parsed before the stages: nothing is left to do.
                StageConfig::Cri(_) | StageConfig::Docker(_) => continue,
                StageConfig::Match(c) => {
                    p.compile_match(c, &key)?;
                    continue;
                }
                StageConfig::Pack(c) => Stage::Pack(Pack::new(c, &key)?),
                StageConfig::Decolorize(_) => Stage::Decolorize,
                StageConfig::Sampling(c) => Stage::Sampling(Sampling::new(c, &key)?),
                StageConfig::Metrics(c) => Stage::Metrics(MetricsStage::new(c, &key)?),
                StageConfig::Template(c) => Stage::Template(TemplateStage::new(c).map_err(|e| format!("{key}.{e}"))?),
                StageConfig::Replace(c) => Stage::Replace(ReplaceStage::new(c).map_err(|e| format!("{key}.{e}"))?),
                StageConfig::Secretfilter(c) => Stage::SecretFilter(SecretFilter::new(c, &key)?),
                StageConfig::Geoip(c) => Stage::Geoip(GeoipStage::new(c, &key)?),
                StageConfig::Branches(c) => {
                    match routes {
                        Some(r) if j + 1 == stages.len() => p.compile_branches(c, &key, r)?,
                        Some(_) => return Err(format!("{key}: `branches` must be the last stage; move the stages after it into its branches")),
                        None => return Err(format!("{key}: `branches` cannot be nested in `match` or `branches`; make it the last stage of the target")),
                    }
                    continue;
                }
            };
            p.stages.push((cfg.name(), stage));
        }
        Ok(())
    }
}

/// The stages' state for one file.
pub struct FileStages {
    pipeline: Arc<Pipeline>,
    multiline: Option<Multiline>,
    /// Per limit stage, one bucket per stream kind.
    limiters: Vec<[Limiter; 3]>,
    cache: LabelCache,
    lines: Vec<Line>,
    /// Lines a `limit` stage (without `drop`) holds back, in file order, with the index of that
    /// stage: they go on as its bucket refills, and the file is not read meanwhile.
    held: VecDeque<(usize, Line)>,
    /// The file's labels as of the last run (a `tenant` stage may read them).
    base: Option<Arc<StreamLabels>>,
    /// What each line's extracted values start with (the labels stages read as a `source`).
    start_values: super::start_values::StartValues,
    /// The state of `sampling` draws.
    rng: u64,
}

impl FileStages {
    pub fn new(pipeline: Arc<Pipeline>) -> FileStages {
        let multiline = pipeline
            .multiline
            .as_ref()
            .map(|spec| Multiline::new(spec.clone(), pipeline.max_line_size));
        let limiters = pipeline
            .limits
            .iter()
            .filter_map(|c| {
                let l = Limiter::new(c, "").ok()?;
                Some([l.clone(), l.clone(), l])
            })
            .collect();
        FileStages {
            pipeline,
            multiline,
            limiters,
            cache: LabelCache::default(),
            lines: Vec::new(),
            held: VecDeque::new(),
            base: None,
            start_values: Default::default(),
            rng: super::transform::draw_state(),
        }
    }

    /// Runs `entries` (one read of the file, in order) through the stages; they are replaced by the
    /// lines that come out (a multiline entry in progress stays inside until it is complete).
    pub fn run(
        &mut self,
        base: &Arc<StreamLabels>,
        entries: &mut Vec<Entry>,
        now: Instant,
        now_ns: i64,
        stats: &mut StageStats,
    ) {
        if !self.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, base)) {
            self.base = Some(base.clone());
            self.start_values = super::start_values::StartValues::new(&self.pipeline.label_sources, base);
        }
        let mut done = std::mem::take(&mut self.lines);
        for e in entries.drain(..) {
            let mut line = Line::new(e.ts_ns, e.line, e.stream, e.offset);
            self.start_values.apply(&mut line);
            self.run_from(0, line, now, now_ns, &mut done, stats);
        }
        self.emit(base, &mut done, entries, stats);
        self.lines = done;
    }

    /// Sends on what the stages hold: multiline entries whose `max_wait_time` passed and held
    /// lines whose tokens came — or, with `all` (the file will not be read again), everything.
    pub fn flush(
        &mut self,
        base: &Arc<StreamLabels>,
        now: Instant,
        now_ns: i64,
        out: &mut Vec<Entry>,
        stats: &mut StageStats,
        all: bool,
    ) {
        let mut done = std::mem::take(&mut self.lines);
        self.release_held(now, now_ns, &mut done, stats);
        if let Some(m) = self.multiline.as_mut() {
            let mut joined = Vec::new();
            if all {
                m.flush(&mut joined);
            } else {
                m.flush_due(now, &mut joined);
            }
            stats.truncated += m.take_truncated();
            let after = self.multiline_index() + 1;
            for line in joined {
                self.run_from(after, line, now, now_ns, &mut done, stats);
            }
        }
        if all {
            // The file is done: what a limit holds goes on now (it was read; holding it longer
            // would only delay it).
            while let Some((i, line)) = self.held.pop_front() {
                self.run_from(i + 1, line, now, now_ns, &mut done, stats);
            }
        }
        self.emit(base, &mut done, out, stats);
        self.lines = done;
    }

    /// Held lines whose tokens are there, on through the stages after their limit.
    fn release_held(&mut self, now: Instant, now_ns: i64, done: &mut Vec<Line>, stats: &mut StageStats) {
        while let Some((i, stream)) = self.held.front().map(|(i, l)| (*i, l.stream as usize)) {
            let Some(Stage::Limit(n)) = self.pipeline.stages.get(i).map(|(_, s)| s) else { break };
            let Some(l) = self.limiters.get_mut(*n).map(|ls| &mut ls[stream]) else { break };
            if !l.take(now) {
                break;
            }
            if let Some((_, line)) = self.held.pop_front() {
                self.run_from(i + 1, line, now, now_ns, done, stats);
            }
        }
    }

    /// When the stages want to be run again (a multiline entry in progress is due, or a held
    /// line's token comes): the reader wakes then and calls `flush_due`.
    pub fn deadline(&self) -> Option<Instant> {
        let multiline = self.multiline.as_ref().and_then(Multiline::deadline);
        let held = self.held_until(Instant::now());
        [multiline, held].into_iter().flatten().min()
    }

    /// The file offset where the oldest line still inside the stages starts: the file's commit
    /// offset must not pass it.
    pub fn oldest_offset(&self) -> Option<u64> {
        let multiline = self.multiline.as_ref().and_then(Multiline::oldest_offset);
        let held = self.held.iter().map(|(_, l)| l.offset).min();
        [multiline, held].into_iter().flatten().min()
    }

    /// A new multiline state for another stream of these stages (None: no `multiline` stage), to
    /// swap in with [`FileStages::swap_multiline`]: the journal keeps one per label set.
    pub fn new_multiline(&self) -> Option<Multiline> {
        let spec = self.pipeline.multiline.clone()?;
        Some(Multiline::new(spec, self.pipeline.max_line_size))
    }

    /// Exchanges the multiline state the stages use with `other`.
    pub fn swap_multiline(&mut self, other: &mut Option<Multiline>) {
        std::mem::swap(&mut self.multiline, other);
    }

    /// Whether a `limit` stage holds lines back: the file is not read until it holds none.
    pub fn paused(&self) -> bool {
        !self.held.is_empty()
    }

    /// When the first held line's token comes.
    fn held_until(&self, now: Instant) -> Option<Instant> {
        let (i, line) = self.held.front()?;
        let Some(Stage::Limit(n)) = self.pipeline.stages.get(*i).map(|(_, s)| s) else {
            return Some(now);
        };
        let l = self.limiters.get(*n)?.get(line.stream as usize)?;
        Some(l.next_token_at(now))
    }

    fn multiline_index(&self) -> usize {
        let stages = &self.pipeline.stages;
        stages
            .iter()
            .position(|(_, s)| matches!(s, Stage::Multiline))
            .unwrap_or(stages.len())
    }

    fn run_from(
        &mut self,
        first: usize,
        mut line: Line,
        now: Instant,
        now_ns: i64,
        done: &mut Vec<Line>,
        stats: &mut StageStats,
    ) {
        let pipeline = self.pipeline.clone();
        let mut next = first;
        while let Some((name, stage)) = pipeline.stages.get(next) {
            let i = next;
            next += 1;
            let ok = match stage {
                Stage::Match(selector, own) => {
                    if !selector.matches(|n| line.label(self.base.as_deref(), n), &line.line) {
                        next += own;
                    }
                    true
                }
                Stage::MatchDrop(selector, reason) => {
                    if selector.matches(|n| line.label(self.base.as_deref(), n), &line.line) {
                        stats.drop(reason);
                        return;
                    }
                    true
                }
                Stage::Pack(p) => {
                    p.apply(&mut line, self.base.as_deref(), now_ns);
                    true
                }
                Stage::Decolorize => {
                    if let Some(clean) = decolorize(line.text()) {
                        line.line = Bytes::from(clean);
                    }
                    true
                }
                Stage::Sampling(s) => {
                    if !s.keep(&mut self.rng) {
                        stats.drop(&s.reason);
                        return;
                    }
                    true
                }
                Stage::Metrics(m) => m.apply(&line, || line.labels(self.base.as_deref()), now),
                Stage::Template(t) => t.apply(&mut line),
                Stage::Replace(r) => r.apply(&mut line),
                Stage::SecretFilter(f) => {
                    f.apply(&mut line, |rule| *stats.redacted.entry(rule).or_default() += 1);
                    true
                }
                Stage::Geoip(g) => g.apply(&mut line),
                Stage::Json(s, drop_malformed) => {
                    let ok = s.apply(&mut line);
                    if !ok && *drop_malformed {
                        stats.drop("malformed_json");
                        return;
                    }
                    ok
                }
                Stage::Logfmt(s) => s.apply(&mut line),
                Stage::Regex(s) => s.apply(&mut line),
                Stage::Labels(pairs) => {
                    for (label, source) in pairs {
                        if let Some(v) = line.extracted.get(source) {
                            let op = LabelOp::Set(label.clone(), v.to_string());
                            line.changes().labels.push(op);
                        }
                    }
                    true
                }
                Stage::Metadata(pairs) => {
                    for (name, source) in pairs {
                        if let Some(v) = line.extracted.get(source) {
                            let pair = (name.clone(), v.to_string());
                            line.changes().metadata.push(pair);
                        }
                    }
                    true
                }
                Stage::Ops(ops) => {
                    line.changes().labels.extend(ops.iter().cloned());
                    true
                }
                Stage::Timestamp(s) => match s.apply(&mut line) {
                    TsOutcome::Set => true,
                    TsOutcome::Missing | TsOutcome::Failed => s.action_skip(),
                },
                Stage::Output(source) => match line.extracted.get(source) {
                    Some(v) => {
                        line.line = Bytes::copy_from_slice(v.as_bytes());
                        true
                    }
                    None => false,
                },
                Stage::Tenant(t) => t.apply(&mut line, self.base.as_deref()),
                Stage::Branches(starts) => {
                    for &start in starts {
                        self.run_from(start, line.clone(), now, now_ns, done, stats);
                    }
                    return;
                }
                Stage::Route(clients) => {
                    if clients.is_some() {
                        line.changes().clients = *clients;
                    }
                    break;
                }
                Stage::Drop(f) => {
                    if f.matches(&line, now_ns) {
                        stats.drop(f.reason());
                        return;
                    }
                    true
                }
                Stage::Keep(f) => {
                    if !f.matches(&line, now_ns) {
                        stats.drop(f.reason());
                        return;
                    }
                    true
                }
                Stage::Multiline => {
                    let Some(m) = self.multiline.as_mut() else { return };
                    let mut joined = Vec::new();
                    m.push(line, now, &mut joined);
                    stats.truncated += m.take_truncated();
                    for j in joined {
                        self.run_from(i + 1, j, now, now_ns, done, stats);
                    }
                    return;
                }
                Stage::Limit(n) => {
                    let Some(l) = self.limiters.get_mut(*n).map(|ls| &mut ls[line.stream as usize]) else {
                        return;
                    };
                    if l.drops() {
                        if !l.take(now) {
                            stats.drop("rate_limited");
                            return;
                        }
                    } else if !self.held.is_empty() || !l.take(now) {
                        // Behind held lines, or over the rate: wait (in file order) for a token.
                        self.held.push_back((i, line));
                        return;
                    }
                    true
                }
                Stage::LimitByLabel(l) => {
                    // Lines without the label are not limited.
                    if let Some(value) = line.label(self.base.as_deref(), l.label()) {
                        if !l.take(value, now) {
                            stats.drop("rate_limited");
                            return;
                        }
                    }
                    true
                }
            };
            if !ok {
                *stats.failed.entry(name).or_default() += 1;
            }
        }
        done.push(line);
    }

    /// Lines that left the last stage → entries (cut to `max_line_size` when `output` grew them).
    fn emit(&mut self, base: &Arc<StreamLabels>, done: &mut Vec<Line>, out: &mut Vec<Entry>, stats: &mut StageStats) {
        let limits = &self.pipeline.label_limits;
        for mut l in done.drain(..) {
            if l.line.len() > self.pipeline.max_line_size {
                let mut parse_stats = crate::parse::ParseStats::default();
                l.line = crate::parse::finish_line(l.line, false, self.pipeline.max_line_size, &mut parse_stats);
                stats.truncated += parse_stats.truncated;
            }
            let extra = l.changes.take().map(|c| {
                let labels = (!c.labels.is_empty())
                    .then(|| self.cache.get(base, l.stream, &c.labels, limits, &mut stats.labels));
                let metadata = (!c.metadata.is_empty())
                    .then(|| metadata_after(base.metadata(), c.metadata.iter().map(|(k, v)| (&**k, v.as_str()))));
                Box::new(Extra {
                    labels,
                    metadata,
                    tenant: c.tenant,
                    clients: c.clients,
                })
            });
            out.push(Entry {
                ts_ns: l.ts_ns,
                line: l.line,
                stream: l.stream,
                offset: l.offset,
                extra,
            });
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
pub(crate) mod tests;
