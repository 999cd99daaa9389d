//! Prometheus relabeling of a file's target labels, exactly as Prometheus (`model/relabel`) and
//! Promtail/Alloy (`discovery.relabel`) do it, so that rules written for them give the same labels
//! here.
//!
//! The rules run once when a file is opened (and again when its pod's metadata changes), never per
//! line: clarity wins over speed, but every regex is compiled once, in [`Relabeler::new`].
//!
//! What Prometheus does and is kept here on purpose:
//! - every regex is fully anchored as `^(?s:regex)$` (Prometheus 3 and Alloy; `.` matches a newline
//!   too, which multi-line annotation values need), even when it already has its own `^...$`;
//! - a missing label reads as "", and setting a label to "" deletes it;
//! - a `replace` whose expanded `target_label` is not a valid label name does nothing;
//! - the config is validated per action, with Prometheus's checks.
//!
//! Where Loki needs more than Prometheus: label names are the legacy ones (`[a-zA-Z_][a-zA-Z0-9_]*`,
//! Loki refuses others), and a `labelmap` result that is not such a name is sanitized the way pod
//! labels are (`app.kubernetes.io/name` → `app_kubernetes_io_name`) instead of making Loki refuse the
//! whole push.

use super::config::{RelabelAction, RelabelConfig};
use crate::labels::sanitize_label_name;
use regex::Regex;
use std::collections::BTreeMap;
use std::num::NonZeroU64;

/// The YAML defaults of a rule (see `RelabelConfig::default`): a field equal to its default counts
/// as "not set" in the per-action checks, as in Prometheus.
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

/// A list of relabel rules, checked and compiled.
#[derive(Clone, Debug, Default)]
pub struct Relabeler {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    source_labels: Vec<String>,
    separator: String,
    /// The user's regex wrapped in `^(?s:...)$`.
    regex: Regex,
    /// "" for the actions that do not use it.
    target: String,
    replacement: String,
    op: Op,
}

/// The action, with what only it needs (a non-zero modulus cannot divide by zero).
#[derive(Clone, Copy, Debug)]
enum Op {
    Replace,
    Keep,
    Drop,
    HashMod(NonZeroU64),
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
    KeepEqual,
    DropEqual,
}

impl Relabeler {
    /// Checks and compiles `rules`. `key` is their path in the config (`targets[0].relabel_configs`),
    /// which errors start with, followed by the rule's index and field.
    pub fn new(rules: &[RelabelConfig], key: &str) -> Result<Relabeler, String> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, cfg)| Rule::new(cfg).map_err(|(field, msg)| format!("{key}[{i}]{field}: {msg}")))
            .collect::<Result<_, _>>()?;
        Ok(Relabeler { rules })
    }

    /// No rules: the caller can skip building the `__meta_*` labels altogether.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules in order on `labels`. False when a rule dropped the target (`keep`, `drop`,
    /// `keepequal`, `dropequal`); `labels` is then half-relabeled and must not be used.
    ///
    /// Labels starting with `__` stay: later rules and the caller may still need them (`__path__`);
    /// [`Relabeler::finish`] removes them.
    pub fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        self.rules.iter().all(|rule| rule.apply(labels))
    }

    /// Removes every label whose name starts with `__`: the `__meta_*` input and the rules' own
    /// temporary labels never reach Loki, as in Prometheus.
    pub fn finish(labels: &mut BTreeMap<String, String>) {
        labels.retain(|name, _| !name.starts_with("__"));
    }

    /// Whether a rule may read a label whose name starts with `prefix`, so that the caller can skip
    /// building the many `__meta_kubernetes_pod_label_*` labels when no rule looks at them.
    ///
    /// Conservative: `labelmap`, `labeldrop` and `labelkeep` match their regex against every name,
    /// so they count as reading all of them. Writing a label does not count: the caller's prefixes
    /// start with `__`, and such labels are removed by [`Relabeler::finish`] whatever happens.
    pub fn uses_meta(&self, prefix: &str) -> bool {
        self.rules.iter().any(|rule| match rule.op {
            Op::LabelMap | Op::LabelDrop | Op::LabelKeep => true,
            // The value of `target_label` is compared with the source labels' value.
            Op::KeepEqual | Op::DropEqual if rule.target.starts_with(prefix) => true,
            _ => rule.source_labels.iter().any(|name| name.starts_with(prefix)),
        })
    }
}

/// A config error: the field (`.regex`, `.source_labels[1]`) and what is wrong with it.
type FieldError = (String, String);

fn field_error(field: &str, msg: String) -> FieldError {
    (format!(".{field}"), msg)
}

impl Rule {
    fn new(cfg: &RelabelConfig) -> Result<Rule, FieldError> {
        let action = action_name(cfg.action);
        // An empty `target_label` is the same as none, as in Prometheus.
        let target = cfg.target_label.clone().unwrap_or_default();
        for (j, name) in cfg.source_labels.iter().enumerate() {
            if !is_label_name(name) {
                return Err(field_error(&format!("source_labels[{j}]"), invalid_name(name)));
            }
        }
        let regex = compile(&cfg.regex).map_err(|e| {
            field_error(
                "regex",
                format!("{:?} is not a valid regular expression: {e}", cfg.regex),
            )
        })?;

        let op = match cfg.action {
            RelabelAction::Replace => Op::Replace,
            RelabelAction::Keep => Op::Keep,
            RelabelAction::Drop => Op::Drop,
            RelabelAction::Hashmod => match cfg.modulus.and_then(NonZeroU64::new) {
                Some(m) => Op::HashMod(m),
                None => {
                    let msg = "the hashmod action needs a modulus greater than 0 (the number of buckets)";
                    return Err(field_error("modulus", msg.into()));
                }
            },
            RelabelAction::Labelmap => Op::LabelMap,
            RelabelAction::Labeldrop => Op::LabelDrop,
            RelabelAction::Labelkeep => Op::LabelKeep,
            RelabelAction::Lowercase => Op::Lowercase,
            RelabelAction::Uppercase => Op::Uppercase,
            RelabelAction::Keepequal => Op::KeepEqual,
            RelabelAction::Dropequal => Op::DropEqual,
        };

        let compares = matches!(op, Op::KeepEqual | Op::DropEqual);
        let writes_value = matches!(op, Op::Replace | Op::HashMod(_) | Op::Lowercase | Op::Uppercase);
        if compares || writes_value {
            if target.is_empty() {
                let what = if compares {
                    "compares the source_labels with"
                } else {
                    "writes"
                };
                let msg = format!("the {action} action needs target_label (the label it {what})");
                return Err(field_error("target_label", msg));
            }
            // Only `replace` may name its target with `$1` references, checked again once expanded.
            let valid = if matches!(op, Op::Replace) && target.contains('$') {
                is_label_template(&target)
            } else {
                is_label_name(&target)
            };
            if !valid {
                return Err(field_error("target_label", invalid_name(&target)));
            }
        }
        if matches!(op, Op::Lowercase | Op::Uppercase | Op::KeepEqual | Op::DropEqual)
            && cfg.replacement != DEFAULT_REPLACEMENT
        {
            return Err(field_error(
                "replacement",
                format!("the {action} action does not use replacement; remove it"),
            ));
        }
        if matches!(op, Op::LabelMap) && !is_label_template(&cfg.replacement) {
            return Err(field_error("replacement", invalid_name(&cfg.replacement)));
        }
        if compares {
            let uses = "it compares the source_labels with target_label";
            unused(cfg, action, uses, &["regex", "modulus", "separator"])?;
        }
        if matches!(op, Op::LabelDrop | Op::LabelKeep) {
            let uses = "it matches regex against label names";
            unused(
                cfg,
                action,
                uses,
                &["source_labels", "target_label", "modulus", "separator", "replacement"],
            )?;
        }

        Ok(Rule {
            source_labels: cfg.source_labels.clone(),
            separator: cfg.separator.clone(),
            regex,
            target,
            replacement: cfg.replacement.clone(),
            op,
        })
    }

    /// False when the target is dropped.
    fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|name| get(labels, name))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.op {
            Op::Keep => return self.regex.is_match(&value),
            Op::Drop => return !self.regex.is_match(&value),
            Op::KeepEqual => return get(labels, &self.target) == value,
            Op::DropEqual => return get(labels, &self.target) != value,
            Op::Replace => self.replace(labels, &value),
            Op::Lowercase => set(labels, &self.target, value.to_lowercase()),
            Op::Uppercase => set(labels, &self.target, value.to_uppercase()),
            Op::HashMod(modulus) => set(labels, &self.target, (hash(&value) % modulus).to_string()),
            Op::LabelMap => self.label_map(labels),
            Op::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Op::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }

    /// No match: nothing changes. A match: `target_label` (expanded) := `replacement` (expanded);
    /// an empty result deletes it.
    fn replace(&self, labels: &mut BTreeMap<String, String>, value: &str) {
        let Some(caps) = self.regex.captures(value) else { return };
        let mut target = String::new();
        caps.expand(&self.target, &mut target);
        if !is_label_name(&target) {
            return;
        }
        let mut result = String::new();
        caps.expand(&self.replacement, &mut result);
        set(labels, &target, result);
    }

    /// Every label whose name matches is copied to the name `replacement` expands to. The names
    /// and values are those before the rule, as Prometheus's `Builder.Range` takes a snapshot.
    fn label_map(&self, labels: &mut BTreeMap<String, String>) {
        let copies: Vec<(String, String)> = labels
            .iter()
            .filter_map(|(name, value)| {
                let caps = self.regex.captures(name)?;
                let mut new_name = String::new();
                caps.expand(&self.replacement, &mut new_name);
                Some((new_name, value.clone()))
            })
            .collect();
        for (name, value) in copies {
            if name.is_empty() {
                continue;
            }
            let name = if is_label_name(&name) {
                name
            } else {
                sanitize_label_name(&name)
            };
            set(labels, &name, value);
        }
    }
}

/// The action as written in YAML, for errors.
fn action_name(action: RelabelAction) -> &'static str {
    match action {
        RelabelAction::Replace => "replace",
        RelabelAction::Keep => "keep",
        RelabelAction::Drop => "drop",
        RelabelAction::Hashmod => "hashmod",
        RelabelAction::Labelmap => "labelmap",
        RelabelAction::Labeldrop => "labeldrop",
        RelabelAction::Labelkeep => "labelkeep",
        RelabelAction::Lowercase => "lowercase",
        RelabelAction::Uppercase => "uppercase",
        RelabelAction::Keepequal => "keepequal",
        RelabelAction::Dropequal => "dropequal",
    }
}

/// Prometheus refuses fields an action ignores, so that a rule never looks like it does more than
/// it does. A field equal to its default counts as not set (as does `modulus: 0`).
fn unused(cfg: &RelabelConfig, action: &str, uses: &str, fields: &[&str]) -> Result<(), FieldError> {
    for &field in fields {
        let set = match field {
            "source_labels" => !cfg.source_labels.is_empty(),
            "target_label" => cfg.target_label.as_deref().is_some_and(|t| !t.is_empty()),
            "regex" => cfg.regex != DEFAULT_REGEX,
            "modulus" => cfg.modulus.is_some_and(|m| m != 0),
            "separator" => cfg.separator != DEFAULT_SEPARATOR,
            "replacement" => cfg.replacement != DEFAULT_REPLACEMENT,
            _ => false,
        };
        if set {
            return Err(field_error(
                field,
                format!("the {action} action does not use {field} ({uses}); remove it"),
            ));
        }
    }
    Ok(())
}

/// `^(?s:re)$`, as Prometheus 3 and Alloy. A broken regex is described from the user's own text
/// (not from our wrapping) when it is broken on its own too.
fn compile(re: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?s:{re})$")).map_err(|wrapped| describe(&Regex::new(re).err().unwrap_or(wrapped)))
}

/// The one-line reason of a regex error: the crate's message spans several lines (the pattern, a
/// caret under the fault, then `error: ...`), which reads badly after a config path in a log.
fn describe(err: &regex::Error) -> String {
    let text = err.to_string();
    match text.lines().rev().find_map(|line| line.trim().strip_prefix("error: ")) {
        Some(reason) => reason.to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn get<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// Prometheus's `Builder.Set`: an empty value deletes the label (a label is never empty in Loki).
fn set(labels: &mut BTreeMap<String, String>, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_owned(), value);
    }
}

/// A legacy Prometheus label name, the only kind Loki takes: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Prometheus's `relabelTarget`, `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: a label name in which
/// `$name` / `${name}` references may stand for parts, and which does not start with a digit.
fn is_label_template(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first().is_none_or(|c| c.is_ascii_digit()) {
        return false;
    }
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'$' {
            let braced = b.get(i + 1) == Some(&b'{');
            let start = if braced { i + 2 } else { i + 1 };
            let end = start
                + b.get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|c| is_word(**c))
                    .count();
            if end == start || (braced && b.get(end) != Some(&b'}')) {
                return false;
            }
            i = if braced { end + 1 } else { end };
        } else if is_word(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn invalid_name(name: &str) -> String {
    let mut msg = format!("{name:?} is not a valid label name: use letters, digits and _, not starting with a digit");
    let sanitized = sanitize_label_name(name);
    if !name.contains('$') && sanitized != name {
        msg.push_str(&format!(" (did you mean {sanitized:?}?)"));
    }
    msg
}

/// `hashmod`'s hash: the last 8 bytes of the MD5 of the value as a big-endian number, as
/// Prometheus (`binary.BigEndian.Uint64(md5sum[8:])`), so that the same targets land in the same
/// buckets as with Prometheus or Alloy.
fn hash(value: &str) -> u64 {
    let digest = md5(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(last)
}

/// MD5 (RFC 1321). Written out because no crate in the lock file has it and `hashmod` needs the
/// very hash Prometheus uses; it runs once per file open on a short string, so plain is enough.
fn md5(data: &[u8]) -> [u8; 16] {
    const SHIFT: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];
    // floor(abs(sin(i + 1)) * 2^32)
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
        0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
        0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
        0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
        0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
        0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
        0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    // Padding: 0x80, zeros up to 56 bytes mod 64, then the length in bits, little-endian.
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64).wrapping_mul(8).to_le_bytes());

    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for block in msg.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for (i, k) in K.iter().enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(*k).wrapping_add(m[g]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(f.rotate_left(SHIFT[i / 16][i % 4]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 16];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

#[cfg(test)]
#[path = "relabel_tests.rs"]
mod tests;
