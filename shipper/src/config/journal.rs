//! The `journal:` section: reading the systemd journal (through `journalctl`) besides files.
//!
//! Promtail-like, so a Promtail `journal:` scrape config moves over with few changes:
//!
//! ```yaml
//! journal:
//!   path: /var/log/journal        # optional; default: the system journal
//!   max_age: 7h                   # first start (no saved cursor): only entries newer than this
//!   labels: {job: systemd-journal}
//!   fields: {unit: _SYSTEMD_UNIT, priority: PRIORITY, hostname: _HOSTNAME}
//!   matches: "_SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service"
//!   format: message               # or json: the whole entry as a JSON object
//!   pipeline_stages:
//!     - regex: {expression: 'level=(?P<level>\w+)'}
//!     - labels: {level: }
//!   journalctl_path: journalctl
//! ```

use super::Dur;
use crate::process::config::StageConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// A directory of journal files (`journalctl --directory`); None: the system journal.
    pub path: Option<PathBuf>,
    /// On a first start (no saved cursor) only entries newer than this are read, so a node's whole
    /// journal history is not pushed at once (Loki would refuse most of it as too old anyway).
    pub max_age: Dur,
    /// Labels of every journal stream (with `client.external_labels`).
    pub labels: BTreeMap<String, String>,
    /// Label name → journal field: each entry gets the labels whose field it has.
    pub fields: BTreeMap<String, String>,
    /// Only entries matching these are read: journalctl's matches, `FIELD=value` each (terms of the
    /// same field are ORed, of different fields ANDed, and a `+` term separates groups that are
    /// ORed). A list, or one string of space-separated terms as Promtail writes it
    /// (`"_SYSTEMD_UNIT=kubelet.service _TRANSPORT=kernel"`); in the list form a value may hold
    /// spaces. Empty: every entry.
    #[serde(deserialize_with = "matches_list")]
    pub matches: Vec<String>,
    /// What an entry's line is (`json` is Promtail's `json: true` and Alloy's `format_as_json`).
    pub format: JournalFormat,
    /// Stages (Promtail's) every journal entry goes through, with the labels of its
    /// `journal.fields`. The global `pipeline_stages` are for files and do not apply. `multiline`
    /// joins the entries of one label set (a stack trace a service printed line by line is one
    /// entry per line in the journal); the saved cursor stays before a block in progress. A `limit`
    /// must have `drop: true` here: holding entries back until the rate allows would stop the
    /// journal's cursor without end.
    pub pipeline_stages: Vec<StageConfig>,
    /// The `journalctl` program (a name looked up in `PATH`, or a path).
    pub journalctl_path: PathBuf,
}

/// What the line of a journal entry is.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournalFormat {
    /// The entry's `MESSAGE` (entries without one are not shipped).
    #[default]
    Message,
    /// Every field of the entry, `MESSAGE` included, as one JSON object (not journalctl's own `__`
    /// fields such as `__CURSOR`).
    Json,
}

/// `matches` as a list, or as one string of space-separated terms.
fn matches_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        List(Vec<String>),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::One(s)) => s.split_whitespace().map(String::from).collect(),
        Some(Raw::List(v)) => v,
    })
}

/// Whether `name` is a journal field name (`_SYSTEMD_UNIT`: A-Z, 0-9, `_`).
fn field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Default for JournalConfig {
    fn default() -> Self {
        let fields = [
            ("unit", "_SYSTEMD_UNIT"),
            ("priority", "PRIORITY"),
            ("hostname", "_HOSTNAME"),
        ];
        JournalConfig {
            path: None,
            max_age: Dur::secs(7 * 3600),
            labels: BTreeMap::from([("job".to_string(), "systemd-journal".to_string())]),
            fields: fields.iter().map(|(l, f)| (l.to_string(), f.to_string())).collect(),
            matches: Vec::new(),
            format: JournalFormat::Message,
            pipeline_stages: Vec::new(),
            journalctl_path: "journalctl".into(),
        }
    }
}

impl JournalConfig {
    /// What serde cannot check: Err((key, message)), the key under `journal.`.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        let err = |key: String, message: String| Err((format!("journal.{key}"), message));
        if self.max_age.0.is_zero() {
            return err(
                "max_age".into(),
                "must be more than 0 (e.g. 7h: how far back a first start reads)".into(),
            );
        }
        let bad_name = "is not a valid Loki label name: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __";
        for name in self.labels.keys() {
            if !super::load::valid_label_name(name) || name.starts_with("__") {
                return err(format!("labels.{name}"), bad_name.into());
            }
        }
        for (name, field) in &self.fields {
            if !super::load::valid_label_name(name) || name.starts_with("__") {
                return err(format!("fields.{name}"), bad_name.into());
            }
            if !field_name(field) {
                return err(
                    format!("fields.{name}"),
                    format!(
                        "`{field}` is not a journal field name: journal fields are like _SYSTEMD_UNIT (A-Z, 0-9, _)"
                    ),
                );
            }
        }
        Self::check_matches(&self.matches).map_err(|(i, message)| (format!("journal.matches[{i}]"), message))?;
        if self.journalctl_path.as_os_str().is_empty() {
            return err(
                "journalctl_path".into(),
                "must name the journalctl program (default: journalctl)".into(),
            );
        }
        Ok(())
    }

    /// Each term of `matches` is `FIELD=value` or a `+` between two groups. Err((index, message)).
    pub fn check_matches(matches: &[String]) -> Result<(), (usize, String)> {
        let last = matches.len().saturating_sub(1);
        for (i, term) in matches.iter().enumerate() {
            if term == "+" {
                if i == 0 || i == last || matches.get(i + 1).is_some_and(|t| t == "+") {
                    return Err((
                        i,
                        "`+` separates two groups of matches (A=1 + B=2): it cannot start, end or repeat".into(),
                    ));
                }
                continue;
            }
            match term.split_once('=') {
                Some((field, _)) if field_name(field) => {}
                _ => {
                    return Err((
                        i,
                        format!(
                            "`{term}` is not a journal match: write FIELD=value with a field like _SYSTEMD_UNIT (A-Z, 0-9, _), e.g. _SYSTEMD_UNIT=kubelet.service, or `+` between groups"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The compiled `pipeline_stages` (None: there are none). Err starts with the key of the stage
    /// (`journal.pipeline_stages[1].multiline: …`).
    pub fn compile_stages(
        &self,
        label_limits: &crate::process::config::LabelLimits,
        max_line_size: usize,
    ) -> Result<Option<crate::process::pipeline::Pipeline>, String> {
        let stages: Vec<(String, &StageConfig)> = self
            .pipeline_stages
            .iter()
            .enumerate()
            .map(|(j, s)| (format!("journal.pipeline_stages[{j}]"), s))
            .collect();
        for (key, s) in &stages {
            Self::holding_stage(key, s)?;
        }
        crate::process::pipeline::Pipeline::new(&stages, label_limits, max_line_size, &Default::default())
    }

    /// Err for a `limit` stage that holds lines back (in a `match` too): the journal's cursor only
    /// moves in the order entries are read, and such a stage would hold it back without end.
    /// (`multiline` holds a block for `max_wait_time` at most: allowed.)
    pub fn holding_stage(key: &str, s: &StageConfig) -> Result<(), String> {
        match s {
            StageConfig::Limit(l) if !l.drop => Err(format!(
                "{key}.limit: on the journal a limit must drop what is over the rate: add `drop: true`"
            )),
            StageConfig::Match(m) => m
                .stages
                .iter()
                .enumerate()
                .try_for_each(|(j, inner)| Self::holding_stage(&format!("{key}.match.stages[{j}]"), inner)),
            _ => Ok(()),
        }
    }

    /// journalctl's arguments for `matches` (after every option, so a value cannot be taken for one).
    pub fn match_args(&self) -> Vec<String> {
        if self.matches.is_empty() {
            return Vec::new();
        }
        std::iter::once("--".to_string())
            .chain(self.matches.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c: JournalConfig = serde_yaml_ng::from_str("max_age: 1h\n").unwrap();
        assert_eq!(c.fields["unit"], "_SYSTEMD_UNIT");
        assert_eq!(c.fields.len(), 3);
        assert_eq!(c.labels["job"], "systemd-journal");
        assert!(c.check().is_ok());
        let c: JournalConfig = serde_yaml_ng::from_str("fields: {bad-name: MESSAGE}\n").unwrap();
        assert_eq!(c.check().unwrap_err().0, "journal.fields.bad-name");
        let c: JournalConfig = serde_yaml_ng::from_str("fields: {unit: _systemd_unit}\n").unwrap();
        assert_eq!(c.check().unwrap_err().0, "journal.fields.unit");
        let c: JournalConfig = serde_yaml_ng::from_str("max_age: 0\n").unwrap();
        assert_eq!(c.check().unwrap_err().0, "journal.max_age");
        let c: JournalConfig = serde_yaml_ng::from_str("labels: {__x: y}\n").unwrap();
        assert_eq!(c.check().unwrap_err().0, "journal.labels.__x");
        assert!(serde_yaml_ng::from_str::<JournalConfig>("paht: /x\n").is_err());
    }

    #[test]
    fn matches_as_promtail_writes_them_or_as_a_list() {
        let c: JournalConfig =
            serde_yaml_ng::from_str("matches: \"_SYSTEMD_UNIT=kubelet.service  _TRANSPORT=kernel\"\n").unwrap();
        assert_eq!(c.matches, ["_SYSTEMD_UNIT=kubelet.service", "_TRANSPORT=kernel"]);
        assert!(c.check().is_ok());
        assert_eq!(
            c.match_args(),
            ["--", "_SYSTEMD_UNIT=kubelet.service", "_TRANSPORT=kernel"]
        );
        let c: JournalConfig =
            serde_yaml_ng::from_str("matches: [_SYSTEMD_UNIT=a.service, +, SYSLOG_IDENTIFIER=my app]\n").unwrap();
        assert!(c.check().is_ok());
        assert_eq!(c.match_args()[3], "SYSLOG_IDENTIFIER=my app", "a list item is one term");
        let c: JournalConfig = serde_yaml_ng::from_str("matches:\n").unwrap();
        assert!(c.match_args().is_empty(), "no matches: no arguments");

        for (bad, index) in [
            ("kubelet.service", 0),
            ("[A=1, _systemd_unit=x]", 1),
            ("[=x]", 0),
            ("\"+ A=1\"", 0),
            ("\"A=1 +\"", 1),
            ("\"A=1 + + B=2\"", 1),
        ] {
            let c: JournalConfig = serde_yaml_ng::from_str(&format!("matches: {bad}\n")).unwrap();
            let (key, message) = c.check().unwrap_err();
            assert_eq!(key, format!("journal.matches[{index}]"), "{bad}: {message}");
        }
        let c: JournalConfig = serde_yaml_ng::from_str("matches: [MESSAGE=]\n").unwrap();
        assert!(c.check().is_ok(), "an empty value matches entries whose field is empty");
    }

    #[test]
    fn a_limit_that_holds_entries_is_refused_with_its_key_multiline_is_not() {
        let limits = crate::process::config::LabelLimits::default();
        let compile = |yaml: &str| {
            let c: JournalConfig = serde_yaml_ng::from_str(yaml).unwrap();
            c.compile_stages(&limits, 1000).map(|p| p.is_some())
        };
        assert_eq!(compile("format: json\n"), Ok(false));
        let ok = "pipeline_stages:\n- regex: {expression: 'level=(?P<level>\\w+)'}\n- labels: {level: }\n- limit: {rate: 10, drop: true}\n";
        assert_eq!(compile(ok), Ok(true));
        let multiline = "pipeline_stages:\n- regex: {expression: '(?P<x>x)'}\n- multiline: {firstline: '^x'}\n";
        assert_eq!(
            compile(multiline),
            Ok(true),
            "multiline joins the entries of a label set"
        );
        for (yaml, key) in [
            (
                "pipeline_stages:\n- limit: {rate: 10}\n",
                "journal.pipeline_stages[0].limit: ",
            ),
            (
                "pipeline_stages:\n- match: {selector: '{unit=\"a\"}', stages: [{limit: {rate: 1}}]}\n",
                "journal.pipeline_stages[0].match.stages[0].limit: ",
            ),
            (
                "pipeline_stages:\n- regex: {expression: '('}\n",
                "journal.pipeline_stages[0].regex",
            ),
        ] {
            let e = compile(yaml).unwrap_err();
            assert!(e.starts_with(key), "{yaml}: {e}");
        }
    }
}
