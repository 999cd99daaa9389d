//! `multiline`: Promtail's multiline stage. Consecutive lines of one file are joined (with `\n`)
//! into one entry, so that a stack trace reaches Loki as one entry instead of dozens of unrelated
//! ones.
//!
//! One [`Multiline`] per tailed file, fed the file's lines in file order. A line either *starts*
//! an entry (it flushes the entry in progress and begins a new one) or *continues* the entry in
//! progress. Which one is decided by the `firstline` regular expression or by a runtime `preset`
//! (see [`MultilineSpec`]).
//!
//! - CRI files interleave stdout and stderr, and a trace on stderr must not swallow stdout lines
//!   written in between: there is one entry in progress per [`StreamKind`].
//! - An entry is sent when its next first line comes, when it reaches `max_lines`, or when no line
//!   came for `max_wait_time` ([`Multiline::flush_due`], driven by [`Multiline::deadline`]).
//! - At-least-once delivery: an entry in progress has not been shipped, so the file's commit offset
//!   must stay at or before its first line: [`Multiline::oldest_offset`].
//! - Memory is bounded: an entry never grows past `max_bytes` (more lines are consumed and counted
//!   by `max_lines`, but not kept; [`Multiline::take_truncated`] counts such entries).
//! - An entry of a single line keeps the line's own `Bytes` (no copy); only joining copies.

use super::config::MultilineConfig;
use super::Line;
use crate::parse::StreamKind;
use bytes::{BufMut, BytesMut};
use regex::Regex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Promtail's default `max_lines`.
pub const DEFAULT_MAX_LINES: usize = 128;
/// Promtail's default `max_wait_time`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3);

/// How lines are told apart, compiled once per pipeline and shared by the files that use it.
///
/// Presets (`preset:`), each a rule on a line's text (plus, for python and go, whether the entry in
/// progress is inside a trace). "Indented" means the line starts with a space or a tab.
///
/// - `java`: a line *continues* the entry when it is indented (`\tat …`, `\t... 5 more`,
///   `\tSuppressed: …`), starts with `Caused by:` or `Suppressed:`, is an unindented frame
///   (`at x.Y(…)`) or `... N more`/`... N common frames omitted`, or is an exception header: a
///   dotted class name whose last part ends in `Exception`, `Error` or `Throwable`, alone or
///   followed by `:` (`java.lang.IllegalStateException: boom`). The header is a continuation so
///   that the trace stays with the log line that reported it (`ERROR … request failed`); every
///   other line starts an entry. Limitation: the 2nd line of a multi-line exception message starts
///   an entry (nothing tells it from a log line).
/// - `python`: `Traceback (most recent call last):` and indented lines continue the entry. Inside a
///   traceback, after at least one indented line, the first unindented non-blank line is the
///   exception (`ValueError: bad`) and continues it too. After that exception, blank lines and
///   `During handling of the above exception, another exception occurred:` / `The above exception
///   was the direct cause of the following exception:` continue it (the next `Traceback` header
///   then continues as well), so a chained traceback is one entry with the line that logged it
///   (`ERROR:root:failed`). Every other line starts an entry.
/// - `go`: `panic: …`, `fatal error: …` and signal headers (`SIGQUIT: quit`) *start* an entry and
///   open a trace (a panic is written by the runtime, not after a related log line). Indented lines
///   continue any entry; `goroutine N [state]:` continues the entry and opens a trace (so a
///   `debug.Stack()` dump stays with the line that logged it). Inside a trace, these continue it
///   too: blank lines, function lines (`main.(*S).run(0x0, …)`: no space before the first `(`, ends
///   with `)`), `created by …`, `[signal …]`, `...additional frames elided...`, `runtime stack:`,
///   `exit status N`, `PC=…` and register lines (`rax    0x0`). Any other line starts an entry and
///   closes the trace.
#[derive(Debug)]
pub struct MultilineSpec {
    rule: Rule,
    max_lines: usize,
    max_wait: Duration,
}

#[derive(Debug)]
enum Rule {
    /// Unanchored, like Promtail's `regexp.MatchString`.
    Firstline(Regex),
    Java,
    Python,
    Go,
}

/// Where the entry in progress of one stream is inside a trace (python and go presets).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    #[default]
    Idle,
    /// After `Traceback (most recent call last):`; `frames` once an indented line came.
    PyTraceback { frames: bool },
    /// After the exception line that ends a traceback: a chained one may follow.
    PyAfterException,
    /// Inside a Go panic or goroutine dump.
    GoTrace,
}

impl MultilineSpec {
    /// `key` is the stage's config path, for errors (`pipeline_stages[0].multiline`).
    pub fn new(cfg: &MultilineConfig, key: &str) -> Result<MultilineSpec, String> {
        let rule = match (cfg.firstline.as_deref(), cfg.preset.as_deref()) {
            (Some(_), Some(_)) => return Err(format!("{key}: give either `firstline` or `preset`, not both")),
            (None, None) => {
                return Err(format!(
                    "{key}: needs `firstline` (a regular expression matching the first line of an entry) \
                     or `preset` (java, python or go)"
                ))
            }
            (Some(""), None) => return Err(format!("{key}.firstline: must not be empty")),
            (Some(re), None) => Rule::Firstline(
                Regex::new(re)
                    .map_err(|e| format!("{key}.firstline: {re:?} is not a valid regular expression: {e}"))?,
            ),
            (None, Some("java")) => Rule::Java,
            (None, Some("python")) => Rule::Python,
            (None, Some("go")) => Rule::Go,
            (None, Some(other)) => {
                return Err(format!(
                    "{key}.preset: unknown preset {other:?}: expected java, python or go"
                ))
            }
        };
        let max_lines = cfg.max_lines.unwrap_or(DEFAULT_MAX_LINES);
        if max_lines == 0 {
            return Err(format!("{key}.max_lines: must be at least 1"));
        }
        let max_wait = cfg.max_wait_time.map_or(DEFAULT_MAX_WAIT, |d| d.0);
        Ok(MultilineSpec {
            rule,
            max_lines,
            max_wait,
        })
    }

    pub fn max_lines(&self) -> usize {
        self.max_lines
    }

    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Whether `text` continues the entry in progress; updates the stream's trace context.
    fn continues(&self, ctx: &mut Ctx, text: &str) -> bool {
        match &self.rule {
            Rule::Firstline(re) => !re.is_match(text),
            Rule::Java => java_continues(text),
            Rule::Python => python_continues(ctx, text),
            Rule::Go => go_continues(ctx, text),
        }
    }
}

fn indented(t: &str) -> bool {
    t.starts_with([' ', '\t'])
}

fn java_continues(t: &str) -> bool {
    let s = t.trim_start();
    indented(t)
        || s.starts_with("Caused by:")
        || s.starts_with("Suppressed:")
        || s.strip_prefix("at ")
            .is_some_and(|f| f.contains('(') && f.trim_end().ends_with(')'))
        || s.strip_prefix("... ").is_some_and(|r| {
            r.starts_with(|c: char| c.is_ascii_digit()) && (r.ends_with(" more") || r.ends_with(" omitted"))
        })
        || is_java_exception(t)
}

/// `java.lang.IllegalStateException: boom`, `java.lang.OutOfMemoryError`, `a.B$InnerError: x`.
fn is_java_exception(t: &str) -> bool {
    let class = t.split_once(':').map_or(t, |(c, _)| c).trim_end();
    let ident = |s: &str| {
        let mut cs = s.chars();
        cs.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
            && cs.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    };
    class.contains('.')
        && class.split('.').all(ident)
        && class
            .rsplit('.')
            .next()
            .is_some_and(|last| last.ends_with("Exception") || last.ends_with("Error") || last.ends_with("Throwable"))
}

const PY_HEADER: &str = "Traceback (most recent call last):";
const PY_CHAINS: [&str; 2] = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

fn python_continues(ctx: &mut Ctx, t: &str) -> bool {
    let t = t.trim_end();
    if t == PY_HEADER {
        *ctx = Ctx::PyTraceback { frames: false };
        return true;
    }
    if indented(t) {
        if let Ctx::PyTraceback { frames } = ctx {
            *frames = true;
        }
        return true;
    }
    match *ctx {
        Ctx::PyTraceback { .. } if t.is_empty() => true,
        Ctx::PyTraceback { frames: true } => {
            *ctx = Ctx::PyAfterException;
            true
        }
        Ctx::PyAfterException if t.is_empty() || PY_CHAINS.contains(&t) => true,
        _ => {
            *ctx = Ctx::Idle;
            false
        }
    }
}

fn go_continues(ctx: &mut Ctx, t: &str) -> bool {
    let t = t.trim_end();
    if t.starts_with("panic: ") || t.starts_with("fatal error: ") || is_go_signal(t) {
        *ctx = Ctx::GoTrace;
        return false;
    }
    if indented(t) {
        return true;
    }
    if is_goroutine_header(t) {
        *ctx = Ctx::GoTrace;
        return true;
    }
    if *ctx == Ctx::GoTrace
        && (t.is_empty()
            || t.starts_with("created by ")
            || t.starts_with("[signal ")
            || t == "...additional frames elided..."
            || t == "runtime stack:"
            || t.starts_with("exit status ")
            || t.starts_with("PC=")
            || is_go_frame(t)
            || is_go_register(t))
    {
        return true;
    }
    *ctx = Ctx::Idle;
    false
}

/// `SIGQUIT: quit`, `SIGSEGV: segmentation violation`.
fn is_go_signal(t: &str) -> bool {
    t.strip_prefix("SIG")
        .and_then(|r| r.split_once(": "))
        .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()))
}

/// `goroutine 7 [chan receive, 2 minutes]:`.
fn is_goroutine_header(t: &str) -> bool {
    t.strip_prefix("goroutine ")
        .and_then(|r| r.split_once(" ["))
        .is_some_and(|(id, rest)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && rest.ends_with("]:"))
}

/// `main.main()`, `net/http.(*conn).serve(0xc000, {0x7f, 0xc0})`, `panic({0x4a?, 0x5e?})`.
fn is_go_frame(t: &str) -> bool {
    t.split_once('(').is_some_and(|(func, _)| {
        func.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && !func.contains(char::is_whitespace)
            && t.ends_with(')')
    })
}

/// `rax    0xc000012345` in a signal's register dump.
fn is_go_register(t: &str) -> bool {
    t.split_once(char::is_whitespace).is_some_and(|(reg, val)| {
        !reg.is_empty()
            && reg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && val
                .trim_start()
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// The largest `n <= limit` that does not split a UTF-8 character of `b`.
fn floor_char_boundary(b: &[u8], limit: usize) -> usize {
    if limit >= b.len() {
        return b.len();
    }
    let mut n = limit;
    while n > 0 && b.get(n).is_some_and(|c| c & 0xC0 == 0x80) {
        n -= 1;
    }
    n
}

/// Index of a stream's entry in progress.
fn slot_of(s: StreamKind) -> usize {
    match s {
        StreamKind::Unknown => 0,
        StreamKind::Stdout => 1,
        StreamKind::Stderr => 2,
    }
}

/// An entry in progress.
#[derive(Debug)]
struct Pending {
    /// Its first line: timestamp, stream, offset, extracted values, labels, metadata and tenant.
    first: Line,
    /// The joined text, once a second line came (until then `first.line` is the text: no copy).
    joined: Option<BytesMut>,
    lines: usize,
    /// When its last line came: it is due `max_wait` later.
    last: Instant,
    truncated: bool,
}

impl Pending {
    /// Appends `next` as far as `max_bytes` allows; true when this cut the entry (first time only).
    fn append(&mut self, next: &[u8], max_bytes: usize) -> bool {
        if self.truncated {
            return false;
        }
        let len = self.joined.as_ref().map_or(self.first.line.len(), |b| b.len());
        let room = max_bytes.saturating_sub(len);
        let take = if next.len() < room {
            next.len()
        } else {
            self.truncated = true;
            floor_char_boundary(next, room.saturating_sub(1))
        };
        if !self.truncated || take > 0 {
            let first = &self.first.line;
            let buf = self.joined.get_or_insert_with(|| {
                let mut b = BytesMut::with_capacity(len.saturating_add(1).saturating_add(take));
                b.extend_from_slice(first);
                b
            });
            buf.put_u8(b'\n');
            buf.extend_from_slice(next.get(..take).unwrap_or_default());
        }
        self.truncated
    }

    fn due(&self, max_wait: Duration) -> Option<Instant> {
        self.last.checked_add(max_wait)
    }

    fn finish(self) -> Line {
        let mut line = self.first;
        if let Some(joined) = self.joined {
            line.line = joined.freeze();
        }
        line
    }
}

#[derive(Debug, Default)]
struct Slot {
    pending: Option<Pending>,
    ctx: Ctx,
}

/// The multiline state of one file: at most one entry in progress per [`StreamKind`].
#[derive(Debug)]
pub struct Multiline {
    spec: Arc<MultilineSpec>,
    max_bytes: usize,
    slots: [Slot; 3],
    truncated: u64,
}

impl Multiline {
    /// `max_bytes`: the longest entry kept (the caller passes `max_line_size`). A first line longer
    /// than that is kept whole (the parser already bounds lines); later lines are cut to fit.
    pub fn new(spec: Arc<MultilineSpec>, max_bytes: usize) -> Self {
        Multiline {
            spec,
            max_bytes,
            slots: Default::default(),
            truncated: 0,
        }
    }

    /// Takes the next line of the file. Entries it completes are appended to `out`, in the order
    /// they complete.
    pub fn push(&mut self, line: Line, now: Instant, out: &mut Vec<Line>) {
        let spec = &*self.spec;
        let slot = &mut self.slots[slot_of(line.stream)];
        // Lines are valid UTF-8 (the parser made them so); `text` checks without copying.
        let continues = spec.continues(&mut slot.ctx, line.text());
        match slot.pending.as_mut() {
            Some(p) if continues => {
                if p.append(&line.line, self.max_bytes) {
                    self.truncated += 1;
                }
                p.lines += 1;
                p.last = now;
            }
            // A first line, or a continuation with nothing to continue (Promtail starts an entry too).
            _ => {
                if let Some(p) = slot.pending.take() {
                    out.push(p.finish());
                }
                slot.pending = Some(Pending {
                    first: line,
                    joined: None,
                    lines: 1,
                    last: now,
                    truncated: false,
                });
            }
        }
        if slot.pending.as_ref().is_some_and(|p| p.lines >= spec.max_lines) {
            // The trace context stays: the rest of a long trace keeps grouping.
            out.extend(slot.pending.take().map(Pending::finish));
        }
    }

    /// Sends the entries whose last line came `max_wait` ago or more (`now >= deadline`).
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Line>) {
        let max_wait = self.spec.max_wait;
        self.flush_where(out, |p| p.due(max_wait).is_some_and(|d| d <= now));
    }

    /// Sends every entry in progress (the file ends: rotated and read, deleted, or shutdown).
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        self.flush_where(out, |_| true);
    }

    /// Entries flushed together go out in file order (of their first lines). Their trace context
    /// ends with them: a line that comes after a pause is judged afresh.
    fn flush_where(&mut self, out: &mut Vec<Line>, due: impl Fn(&Pending) -> bool) {
        loop {
            let next = (self.slots.iter().enumerate())
                .filter_map(|(i, s)| s.pending.as_ref().filter(|p| due(p)).map(|p| (p.first.offset, i)))
                .min();
            let Some(slot) = next.and_then(|(_, i)| self.slots.get_mut(i)) else { break };
            out.extend(slot.pending.take().map(Pending::finish));
            slot.ctx = Ctx::Idle;
        }
    }

    /// When the earliest entry in progress becomes due (`None`: nothing pending, or a `max_wait`
    /// too large to represent).
    pub fn deadline(&self) -> Option<Instant> {
        let max_wait = self.spec.max_wait;
        self.slots
            .iter()
            .filter_map(|s| s.pending.as_ref()?.due(max_wait))
            .min()
    }

    /// The file offset of the earliest first line not yet sent: the file's commit offset must not
    /// pass it, or a crash would lose the entry.
    pub fn oldest_offset(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| Some(s.pending.as_ref()?.first.offset))
            .min()
    }

    /// Whether nothing is in progress and no trace is open: the state is as good as a new one (the
    /// journal forgets the states of label sets that are idle).
    pub fn idle(&self) -> bool {
        self.slots.iter().all(|s| s.pending.is_none() && s.ctx == Ctx::Idle)
    }

    /// How many entries were cut at `max_bytes` since the last call.
    pub fn take_truncated(&mut self) -> u64 {
        std::mem::take(&mut self.truncated)
    }
}

#[cfg(test)]
#[path = "multiline_tests.rs"]
mod tests;
