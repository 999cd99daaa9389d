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
//!   journalctl_path: journalctl
//! ```

use super::Dur;
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
    /// The `journalctl` program (a name looked up in `PATH`, or a path).
    pub journalctl_path: PathBuf,
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
            let field_ok = !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !field_ok {
                return err(
                    format!("fields.{name}"),
                    format!(
                        "`{field}` is not a journal field name: journal fields are like _SYSTEMD_UNIT (A-Z, 0-9, _)"
                    ),
                );
            }
        }
        if self.journalctl_path.as_os_str().is_empty() {
            return err(
                "journalctl_path".into(),
                "must name the journalctl program (default: journalctl)".into(),
            );
        }
        Ok(())
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
}
