//! The `secretfilter` stage (Alloy's `loki.secretfilter`): secrets in the line — cloud keys,
//! tokens, private keys, JWTs, and with `include_generic` the values of `password=`-like
//! assignments — are replaced by `<REDACTED-SECRET:rule-id>`.
//!
//! ```yaml
//! - secretfilter: {types: [aws, github, slack], redact_with: '<REDACTED:$SECRET_NAME>'}
//! ```
//!
//! The rules are built in (`secret_rules.rs`); a Gitleaks TOML file is not read. Every rule's
//! pattern is also in one [`RegexSet`], so a line without secrets costs one scan of the set; the
//! rules that matched then find their secrets. Overlapping secrets are redacted as one, named by
//! the first. Each redaction is counted by rule.

use super::secret_rules::{Rule, GENERIC, RULES};
use super::Line;
use bytes::Bytes;
use regex::{Regex, RegexSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a secret becomes unless `redact_with` says otherwise (Alloy's default).
pub const DEFAULT_REDACT_WITH: &str = "<REDACTED-SECRET:$SECRET_NAME>";

/// A secret shorter than this is redacted whole, whatever `partial_mask` says.
const MIN_PARTIAL: usize = 6;

/// Settings of the `secretfilter` stage (Alloy's `loki.secretfilter` arguments).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecretFilterConfig {
    /// Prefixes of the rule ids to look for (`aws`, `github`, `gitlab`, `slack`, `gcp`, `stripe`,
    /// `grafana`, `private-key`, `jwt`, or a whole id such as `slack-webhook-url`); empty: every
    /// rule. Naming only the kinds of secret expected makes the stage cheaper.
    pub types: Vec<String>,
    /// What a secret becomes: `$SECRET_NAME` is the rule id, `$SECRET_HASH` the SHA-1 of the
    /// secret (hex). Default `<REDACTED-SECRET:$SECRET_NAME>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redact_with: Option<String>,
    /// Also the `generic-api-key` rule: the values of assignments to names such as `password`,
    /// `api_key`, `secret`, `token` (`password=...`, `"api_key": "..."`), six characters or more.
    /// Off by default: it redacts more than secrets.
    pub include_generic: bool,
    /// Regular expressions: a secret one of them matches is left as it is.
    pub allowlist: Vec<String>,
    /// The first N characters of each secret are kept before the redaction text (at most half of
    /// the secret; none of a secret shorter than 6 characters). 0: the whole secret goes.
    pub partial_mask: usize,
    /// Alloy's path to a Gitleaks TOML rules file: refused. shipper does not read Gitleaks files;
    /// its rules are built in and `types` chooses among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitleaks_config: Option<String>,
}

/// A compiled `secretfilter` stage.
#[derive(Debug)]
pub struct SecretFilter {
    rules: Vec<Compiled>,
    /// The rules' patterns, in the same order, scanned at once.
    any: RegexSet,
    allow: Option<RegexSet>,
    redact_with: Vec<Part>,
    partial_mask: usize,
}

#[derive(Debug)]
struct Compiled {
    id: &'static str,
    re: Regex,
    /// The group holding the secret (0: the whole match).
    group: usize,
}

/// A piece of `redact_with`.
#[derive(Debug, PartialEq)]
enum Part {
    Text(String),
    Name,
    Hash,
}

impl SecretFilter {
    /// Errors name `key`, the stage's config path.
    pub fn new(c: &SecretFilterConfig, key: &str) -> Result<SecretFilter, String> {
        if c.gitleaks_config.is_some() {
            return Err(format!(
                "{key}.gitleaks_config: shipper does not read Gitleaks rule files; its rules are built in \
                 (choose among them with `types`). Remove the setting, and redact other formats with a \
                 `replace` stage"
            ));
        }
        let candidates: Vec<&Rule> = RULES.iter().chain(c.include_generic.then_some(&GENERIC)).collect();
        for (i, t) in c.types.iter().enumerate() {
            if t.is_empty() || !candidates.iter().any(|r| r.id.starts_with(t.as_str())) {
                let hint = if !t.is_empty() && GENERIC.id.starts_with(t.as_str()) {
                    " (generic-api-key needs `include_generic: true`)".to_string()
                } else {
                    let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
                    format!("; the rules are {}", ids.join(", "))
                };
                return Err(format!("{key}.types[{i}]: {t:?} begins no rule id{hint}"));
            }
        }
        let chosen: Vec<&Rule> = candidates
            .into_iter()
            .filter(|r| c.types.is_empty() || c.types.iter().any(|t| r.id.starts_with(t.as_str())))
            .collect();
        let mut rules = Vec::with_capacity(chosen.len());
        for r in &chosen {
            let re = Regex::new(r.pattern).map_err(|e| format!("{key}: the rule {} does not compile: {e}", r.id))?;
            let group = re.capture_names().position(|n| n == Some("s")).unwrap_or(0);
            rules.push(Compiled { id: r.id, re, group });
        }
        let any = RegexSet::new(chosen.iter().map(|r| r.pattern)).map_err(|e| format!("{key}: the rules: {e}"))?;
        for (i, a) in c.allowlist.iter().enumerate() {
            Regex::new(a).map_err(|e| format!("{key}.allowlist[{i}]: {a:?} does not compile: {e}"))?;
        }
        let allow = match c.allowlist.is_empty() {
            true => None,
            false => Some(RegexSet::new(&c.allowlist).map_err(|e| format!("{key}.allowlist: {e}"))?),
        };
        Ok(SecretFilter {
            rules,
            any,
            allow,
            redact_with: parts(c.redact_with.as_deref().unwrap_or(DEFAULT_REDACT_WITH)),
            partial_mask: c.partial_mask,
        })
    }

    /// Redacts the secrets of the line; `redacted` is called with the rule id of each.
    pub fn apply(&self, line: &mut Line, mut redacted: impl FnMut(&'static str)) {
        let text = line.text();
        let hits = self.any.matches(text);
        if !hits.matched_any() {
            return;
        }
        // (start, end, rule) of every secret found.
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for i in hits.iter() {
            let rule = &self.rules[i];
            for caps in rule.re.captures_iter(text) {
                let Some(m) = caps.get(rule.group) else { continue };
                let allowed = self.allow.as_ref().is_some_and(|a| a.is_match(m.as_str()));
                if !m.is_empty() && !allowed {
                    found.push((m.start(), m.end(), i));
                }
            }
        }
        if found.is_empty() {
            return;
        }
        // The earliest first; at one start the longest, then the rule listed first.
        found.sort_by_key(|&(start, end, i)| (start, std::cmp::Reverse(end), i));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut spans = found.into_iter().peekable();
        while let Some((start, mut end, i)) = spans.next() {
            // Secrets overlapping this one are redacted with it.
            while let Some(&(s, e, _)) = spans.peek() {
                if s >= end {
                    break;
                }
                end = end.max(e);
                spans.next();
            }
            out.push_str(&text[at..start]);
            self.redact(&text[start..end], self.rules[i].id, &mut out);
            redacted(self.rules[i].id);
            at = end;
        }
        out.push_str(&text[at..]);
        line.line = Bytes::from(out);
    }

    /// `secret`'s replacement: its first `partial_mask` characters, then `redact_with`.
    fn redact(&self, secret: &str, id: &str, out: &mut String) {
        let chars = secret.chars().count();
        let shown = match chars < MIN_PARTIAL {
            true => 0,
            false => self.partial_mask.min(chars / 2),
        };
        let cut = secret.char_indices().nth(shown).map_or(secret.len(), |(b, _)| b);
        out.push_str(&secret[..cut]);
        for p in &self.redact_with {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Name => out.push_str(id),
                Part::Hash => {
                    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
                    out.push_str(&super::template::hex(digest.as_ref()));
                }
            }
        }
    }
}

/// `redact_with` split at its variables.
fn parts(template: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = template;
    let mut text = String::new();
    while !rest.is_empty() {
        let var = [("$SECRET_NAME", Part::Name), ("$SECRET_HASH", Part::Hash)]
            .into_iter()
            .find(|(name, _)| rest.starts_with(name));
        match var {
            Some((name, part)) => {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
                rest = &rest[name.len()..];
            }
            None => {
                let Some(c) = rest.chars().next() else { break };
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

#[cfg(test)]
#[path = "secretfilter_tests.rs"]
mod tests;
