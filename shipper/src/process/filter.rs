//! `drop` and `keep`: filters on a line (or an extracted value), its age and its length.
//!
//! Every condition given must hold for a line to match; `drop` drops matching lines, `keep` drops the
//! others. Dropped lines are counted by reason (`shipper_pipeline_dropped_lines_total`), never lost
//! silently. `contains` is a plain substring search (memchr-fast), for users who do not need a regex.

use super::config::FilterConfig;
use super::Line;
use regex::Regex;

pub struct Filter {
    source: Option<String>,
    value: Option<String>,
    expression: Option<Regex>,
    contains: Option<String>,
    older_than_ns: Option<i64>,
    longer_than: Option<usize>,
    reason: String,
}

impl Filter {
    /// `keep`: the stage drops lines that do not match. `key` is the config path for errors.
    pub fn new(cfg: &FilterConfig, keep: bool, key: &str) -> Result<Filter, String> {
        let expression = cfg
            .expression
            .as_deref()
            .map(|e| {
                Regex::new(e).map_err(|err| format!("{key}.expression: {e:?} is not a valid regular expression: {err}"))
            })
            .transpose()?;
        let f = Filter {
            source: cfg.source.clone(),
            value: cfg.value.clone(),
            expression,
            contains: cfg.contains.clone(),
            older_than_ns: cfg.older_than.map(|d| d.0.as_nanos().min(i64::MAX as u128) as i64),
            longer_than: cfg.longer_than.map(|b| b.0 as usize),
            reason: cfg
                .drop_counter_reason
                .clone()
                .unwrap_or_else(|| if keep { "keep_stage" } else { "drop_stage" }.into()),
        };
        if f.source.is_none()
            && f.value.is_none()
            && f.expression.is_none()
            && f.contains.is_none()
            && f.older_than_ns.is_none()
            && f.longer_than.is_none()
        {
            return Err(format!(
                "{key}: give at least one of source, value, expression, contains, older_than, longer_than"
            ));
        }
        if f.value.is_some() && f.source.is_none() {
            return Err(format!(
                "{key}.value: compares an extracted value; name it with `source`"
            ));
        }
        Ok(f)
    }

    /// The `reason` label of its drops.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether every condition holds for `line` at `now_ns`.
    pub fn matches(&self, line: &Line, now_ns: i64) -> bool {
        if let Some(age) = self.older_than_ns {
            if now_ns.saturating_sub(line.ts_ns) <= age {
                return false;
            }
        }
        if let Some(max) = self.longer_than {
            if line.line.len() <= max {
                return false;
            }
        }
        let text_tests = self.value.is_some() || self.expression.is_some() || self.contains.is_some();
        if !text_tests {
            // Only `source` (and age/length) given: its presence is the test.
            return self.source.as_deref().is_none_or(|s| line.extracted.get(s).is_some());
        }
        let Some(text) = line.source(self.source.as_deref()) else {
            return false;
        };
        if self.value.as_deref().is_some_and(|v| v != text) {
            return false;
        }
        if self.contains.as_deref().is_some_and(|c| !text.contains(c)) {
            return false;
        }
        if self.expression.as_ref().is_some_and(|re| !re.is_match(text)) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::StreamKind;
    use crate::units::{ByteSize, Dur};
    use bytes::Bytes;
    use std::sync::Arc;

    fn line(text: &str, ts_ns: i64) -> Line {
        Line::new(ts_ns, Bytes::copy_from_slice(text.as_bytes()), StreamKind::Stdout, 0)
    }

    #[test]
    fn conditions_all_hold() {
        let now = 1_000_000_000_000;
        let mut level = line("level=debug msg=x", now);
        level.extracted.set(&Arc::from("level"), "debug");
        let cases: Vec<(FilterConfig, &Line, bool)> = vec![
            (
                FilterConfig {
                    contains: Some("debug".into()),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    contains: Some("info".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    expression: Some("^level=(debug|trace)".into()),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    expression: Some("^msg".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    source: Some("level".into()),
                    value: Some("debug".into()),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    source: Some("level".into()),
                    value: Some("info".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    source: Some("level".into()),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    source: Some("missing".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    source: Some("missing".into()),
                    contains: Some("x".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    source: Some("level".into()),
                    contains: Some("deb".into()),
                    expression: Some("g$".into()),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    longer_than: Some(ByteSize(10)),
                    ..Default::default()
                },
                &level,
                true,
            ),
            (
                FilterConfig {
                    longer_than: Some(ByteSize(17)),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    older_than: Some(Dur::secs(1)),
                    ..Default::default()
                },
                &level,
                false,
            ),
            (
                FilterConfig {
                    older_than: Some(Dur::secs(1)),
                    contains: Some("debug".into()),
                    ..Default::default()
                },
                &level,
                false,
            ),
        ];
        for (i, (cfg, l, want)) in cases.iter().enumerate() {
            let f = Filter::new(cfg, false, "t").unwrap();
            assert_eq!(f.matches(l, now), *want, "case {i}: {cfg:?}");
        }
        let old = line("x", now - 2_000_000_000);
        let f = Filter::new(
            &FilterConfig {
                older_than: Some(Dur::secs(1)),
                ..Default::default()
            },
            false,
            "t",
        )
        .unwrap();
        assert!(f.matches(&old, now));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let empty = Filter::new(&FilterConfig::default(), false, "pipeline_stages[2].drop")
            .err()
            .unwrap();
        assert!(
            empty.starts_with("pipeline_stages[2].drop: give at least one"),
            "{empty}"
        );
        let re = Filter::new(
            &FilterConfig {
                expression: Some("(".into()),
                ..Default::default()
            },
            true,
            "k",
        )
        .err()
        .unwrap();
        assert!(
            re.starts_with("k.expression: \"(\" is not a valid regular expression"),
            "{re}"
        );
        let value = Filter::new(
            &FilterConfig {
                value: Some("x".into()),
                ..Default::default()
            },
            true,
            "k",
        )
        .err()
        .unwrap();
        assert!(value.contains("source"), "{value}");
        let keep = Filter::new(
            &FilterConfig {
                contains: Some("x".into()),
                ..Default::default()
            },
            true,
            "k",
        )
        .unwrap();
        assert_eq!(keep.reason(), "keep_stage");
    }
}
