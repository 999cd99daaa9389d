//! `positions`: where acknowledged offsets are kept, and the positions of the agent a first start
//! takes over from.

use super::Dur;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PositionsConfig {
    /// Where acknowledged file offsets are kept across restarts: a log of checksummed records,
    /// appended as offsets move and rewritten whole now and then (`shipper positions FILE` prints
    /// it as JSON). The JSON file of earlier versions is read too.
    pub filename: PathBuf,
    /// Acknowledged progress is written at most this often. Which files are tailed (opened, rotated,
    /// closed) is written at once, whatever this says, and nothing is written when nothing changed.
    pub sync_period: Dur,
    /// At the first start (no positions file yet), the positions of the agent this one replaces,
    /// so that each file's unread rest is shipped and nothing twice: `promtail:<its positions.yaml>`
    /// or `alloy:<the positions.yml of its loki.source.file>`. Files whose size is below the saved
    /// offset (rotated or truncated since) are left to `tail.start_at`. Empty: none.
    pub import_from: String,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig {
            filename: "/var/lib/shipper/positions.json".into(),
            sync_period: Dur::secs(1),
            import_from: String::new(),
        }
    }
}

/// The agent whose positions `positions.import_from` names, and its positions file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportFrom {
    /// Promtail's `positions.yaml`: `positions: {<path>: "<offset>"}`.
    Promtail(PathBuf),
    /// The `positions.yml` of an Alloy `loki.source.file`: `positions: {{path, labels}: "<offset>"}`.
    Alloy(PathBuf),
}

impl ImportFrom {
    /// `promtail:<file>`, `alloy:<file>`, or empty (None).
    pub fn parse(spec: &str) -> Result<Option<ImportFrom>, String> {
        if spec.is_empty() {
            return Ok(None);
        }
        let file = |rest: &str| {
            if rest.starts_with('/') {
                Ok(PathBuf::from(rest))
            } else {
                Err(format!(
                    "`{spec}`: the positions file must be an absolute path, e.g. promtail:/run/promtail/positions.yaml"
                ))
            }
        };
        match spec.split_once(':') {
            Some(("promtail", rest)) => file(rest).map(|f| Some(ImportFrom::Promtail(f))),
            Some(("alloy", rest)) => file(rest).map(|f| Some(ImportFrom::Alloy(f))),
            _ => Err(format!(
                "`{spec}`: expected promtail:<its positions.yaml> or alloy:<the positions.yml of its loki.source.file>"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_from_names_the_agent_and_an_absolute_file() {
        assert_eq!(ImportFrom::parse(""), Ok(None));
        assert_eq!(
            ImportFrom::parse("promtail:/run/promtail/positions.yaml"),
            Ok(Some(ImportFrom::Promtail("/run/promtail/positions.yaml".into())))
        );
        assert!(matches!(
            ImportFrom::parse("alloy:/var/lib/alloy/p.yml"),
            Ok(Some(ImportFrom::Alloy(_)))
        ));
        assert!(ImportFrom::parse("fluentbit:/x")
            .unwrap_err()
            .contains("expected promtail:"));
        assert!(ImportFrom::parse("promtail:positions.yaml")
            .unwrap_err()
            .contains("absolute"));
        let c = crate::config::load_str(
            "targets:\n  - paths: [/var/log/*.log]\npositions:\n  import_from: vector:/x\n",
            "t.yaml",
        )
        .unwrap();
        let err = c.validate("t.yaml").unwrap_err();
        assert!(err.to_string().contains("positions.import_from"), "{err}");
    }
}
