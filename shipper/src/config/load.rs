//! Reading and checking a config file. Errors carry the file, the path of the bad key and what to do.

use super::{env, Config};
use std::fmt;
use std::path::Path;

/// A config problem: where (file and key path) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub source: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.as_str() {
            "" | "." => write!(f, "{}: {}", self.source, self.message),
            key => write!(f, "{}: `{}`: {}", self.source, key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads, expands and parses a config file. Validate the result with [`Config::validate`] after flags
/// have been applied.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        key: String::new(),
        message: format!("cannot read the config file: {e}"),
    })?;
    load_str(&text, &source)
}

/// Parses config text; `source` names it in errors.
pub fn load_str(text: &str, source: &str) -> Result<Config, ConfigError> {
    let err = |key: String, message: String| ConfigError {
        source: source.to_string(),
        key,
        message,
    };
    let text = env::expand(text, |k| std::env::var(k).ok()).map_err(|m| err(String::new(), m))?;
    parse_expanded(&text, source)
}

/// Parses config text whose `${VAR}`s were expanded already; `source` names it in errors.
pub fn parse_expanded(text: &str, source: &str) -> Result<Config, ConfigError> {
    let err = |key: String, message: String| ConfigError {
        source: source.to_string(),
        key,
        message,
    };
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let mut message = e.inner().to_string();
        // serde_yaml_ng starts some messages with the enclosing key ("client: unknown field …"),
        // which the key path already says.
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.contains(' ') && key.starts_with(head) {
                message = rest.to_string();
            }
        }
        // serde_yaml_ng appends " at line N column M"; keep it, it helps find the key.
        if message.starts_with("unknown field") {
            message.push_str(
                " (check the spelling; `shipper reference` and docs/src/reference/configuration.md list every option)",
            );
        }
        // A top-level duplicate comes without a place: name the line of the second one.
        let top = key.is_empty() || key == ".";
        if let Some(line) = top.then(|| top_level_duplicate(text, &message)).flatten() {
            message.push_str(&format!(" at line {line}: keep one of them"));
        }
        err(key, message)
    })
}

/// The line (1-based) where the top-level key of a "duplicate field `name`" message appears the second time.
fn top_level_duplicate(text: &str, message: &str) -> Option<usize> {
    let name = message.strip_prefix("duplicate field `")?.strip_suffix('`')?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .nth(1)
        .map(|(i, _)| i + 1)
}

pub(super) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The checks of one Loki endpoint (`client`, `clients[i]`): Err((key, message)).
fn check_client(c: &super::ClientConfig, at: &str) -> Result<(), (String, String)> {
    let err = |key: &str, message: String| Err((format!("{at}.{key}"), message));
    match c.url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
        _ => {
            return err(
                "url",
                format!(
                    "`{}` is not an http(s) URL; write e.g. http://loki:3100/loki/api/v1/push",
                    c.url
                ),
            )
        }
    }
    for name in c.external_labels.keys() {
        if !valid_label_name(name) {
            return err(
                &format!("external_labels.{name}"),
                "is not a valid Loki label name: use [a-zA-Z_][a-zA-Z0-9_]*".into(),
            );
        }
    }
    if c.batch_size.0 == 0 || c.batch_size.0 > 64 << 20 {
        return err("batch_size", "must be between 1 byte and 64MiB".into());
    }
    if c.backoff.min_period > c.backoff.max_period {
        return err(
            "backoff.min_period",
            format!(
                "{} is longer than max_period {}",
                c.backoff.min_period, c.backoff.max_period
            ),
        );
    }
    if c.timeout.0.is_zero() {
        return err("timeout", "must be more than 0".into());
    }
    if let Some(a) = &c.basic_auth {
        if let Err(e) = std::fs::metadata(&a.password_file) {
            return err(
                "basic_auth.password_file",
                format!("cannot read {}: {e}", a.password_file.display()),
            );
        }
    }
    if let Some(f) = &c.bearer_token_file {
        if let Err(e) = std::fs::metadata(f) {
            return err("bearer_token_file", format!("cannot read {}: {e}", f.display()));
        }
    }
    if c.tls.cert_file.is_some() != c.tls.key_file.is_some() {
        return err("tls", "cert_file and key_file go together: set both or neither".into());
    }
    Ok(())
}

impl Config {
    /// Checks what serde cannot: values that parse but make no sense. `source` names the config in errors.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| {
            Err(ConfigError {
                source: source.to_string(),
                key: key.to_string(),
                message,
            })
        };
        check_client(&self.client, "client").map_err(|(key, message)| ConfigError {
            source: source.to_string(),
            key,
            message,
        })?;
        for (i, c) in self.clients.iter().enumerate() {
            let at = format!("clients[{i}]");
            check_client(c, &at).map_err(|(key, message)| ConfigError {
                source: source.to_string(),
                key,
                message,
            })?;
            if !c.external_labels.is_empty() {
                return err(
                    &format!("{at}.external_labels"),
                    "labels are the same at every endpoint: put them in client.external_labels".into(),
                );
            }
        }
        if self.discovery == super::Discovery::Kubernetes && !self.kubernetes.pods_root.is_absolute() {
            return err(
                "kubernetes.pods_root",
                format!(
                    "`{}` must be an absolute path (kubelet writes to /var/log/pods)",
                    self.kubernetes.pods_root.display()
                ),
            );
        }
        if let Some(kc) = self
            .kubernetes
            .kubeconfig
            .as_ref()
            .filter(|_| self.discovery == super::Discovery::Kubernetes)
        {
            if let Err(e) = std::fs::metadata(kc) {
                return err(
                    "kubernetes.kubeconfig",
                    format!(
                        "cannot read `{}`: {e}; give the kubeconfig file's path, or leave it out to use the in-cluster service account",
                        kc.display()
                    ),
                );
            }
        }
        if let Some(j) = &self.journal {
            j.check().map_err(|(key, message)| ConfigError {
                source: source.to_string(),
                key,
                message,
            })?;
            if let Err(e) = j.compile_stages(&self.label_limits, self.tail.max_line_size.0 as usize) {
                // Compile errors start with the key of the bad stage.
                let (key, message) = e.split_once(": ").unwrap_or(("journal.pipeline_stages", &e));
                return err(key, message.to_string());
            }
        }
        if let Err(e) = crate::logging::filter(&self.server.log_level) {
            return err("server.log_level", e);
        }
        if self.targets.is_empty() && self.journal.is_none() {
            return err(
                "targets",
                "no files to tail: add a target with `paths`, pass --path GLOB, or set `discovery: kubernetes`".into(),
            );
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.paths.is_empty() && t.file_sd_configs.iter().all(|sd| sd.files.is_empty()) {
                return err(
                    &format!("targets[{i}].paths"),
                    "is empty: list at least one glob, or target group files in file_sd_configs".into(),
                );
            }
            for (list, globs) in [("paths", &t.paths), ("exclude", &t.exclude)] {
                for (j, g) in globs.iter().enumerate() {
                    let key = format!("targets[{i}].{list}[{j}]");
                    if list == "paths" && !g.starts_with('/') {
                        return err(&key, format!("`{g}` must be an absolute path glob"));
                    }
                    if let Err(e) = glob::Pattern::new(g) {
                        return err(&key, format!("`{g}` is not a valid glob: {e}"));
                    }
                }
            }
            for name in t.labels.keys() {
                if !valid_label_name(name) || name.starts_with("__") {
                    return err(
                        &format!("targets[{i}].labels.{name}"),
                        "is not a valid Loki label name: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __".into(),
                    );
                }
            }
        }
        let t = &self.tail;
        if t.max_line_size.0 == 0 {
            return err("tail.max_line_size", "must be more than 0".into());
        }
        if t.read_buffer_size.0 < 4096 || t.read_buffer_size.0 > 16 << 20 {
            return err("tail.read_buffer_size", "must be between 4KiB and 16MiB".into());
        }
        if t.ring_capacity == 0 {
            return err("tail.ring_capacity", "must be at least 1".into());
        }
        if t.poll_interval.0.is_zero() {
            return err("tail.poll_interval", "must be more than 0".into());
        }
        if t.rescan_interval.0.is_zero() {
            return err("tail.rescan_interval", "must be more than 0".into());
        }
        if self.positions.filename.as_os_str().is_empty() {
            return err("positions.filename", "must name a file".into());
        }
        if let Err(e) = self.compile_targets() {
            // Compile errors start with the key of the bad stage or rule.
            let (key, message) = e.split_once(": ").unwrap_or(("", &e));
            return err(key, message.to_string());
        }
        let l = &self.label_limits;
        if l.max_label_names_per_series < 2 || l.max_label_name_length == 0 || l.max_label_value_length == 0 {
            return err(
                "label_limits",
                "max_label_names_per_series must be at least 2, the lengths at least 1 (Loki's defaults: 15, 1024, 2048)".into(),
            );
        }
        if self.positions.sync_period.0.is_zero() {
            return err("positions.sync_period", "must be more than 0".into());
        }
        if let Err(e) = super::ImportFrom::parse(&self.positions.import_from) {
            return err("positions.import_from", e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<Config, ConfigError> {
        let c = load_str(yaml, "test.yaml")?;
        c.validate("test.yaml")?;
        Ok(c)
    }

    const OK: &str = "targets:\n  - paths: [/var/log/*.log]\n";

    #[test]
    fn a_duplicate_top_level_key_names_its_second_line() {
        let e = check(&format!(
            "{OK}server:\n  log_level: info\n# x\nserver :\n  log_level: debug\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.yaml: duplicate field `server` at line 6: keep one of them"
        );
        // Nested ones already carry their place.
        let e = check("client:\n  url: http://a:1/p\n  url: http://b:1/p\n").unwrap_err();
        assert!(e.to_string().contains("at line "), "{e}");
        assert!(!e.to_string().contains("keep one"), "{e}");
    }

    #[test]
    fn kubernetes_discovery_adds_the_docker_target_when_its_root_exists() {
        let d = tempfile::tempdir().unwrap();
        let yaml = format!(
            "discovery: kubernetes\nkubernetes:\n  node_name: n1\n  docker_root: {}\n",
            d.path().display()
        );
        let mut c = load_str(&yaml, "test.yaml").unwrap();
        c.add_discovered_targets();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[1].paths, [format!("{}/*/*-json.log", d.path().display())]);
        assert_eq!(c.targets[1].path_labels, super::super::PathLabels::Docker);
        assert_eq!(c.targets[1].labels["node_name"], "n1");
        // Without the API server nothing names a docker container's pod: no docker target.
        let mut c = load_str(&format!("{yaml}  api: false\n"), "test.yaml").unwrap();
        c.add_discovered_targets();
        assert_eq!(c.targets.len(), 1);
    }

    #[test]
    fn unknown_structured_metadata_is_named_with_its_path() {
        let e = load_str("kubernetes:\n  structured_metadata: [pod_uid, node_ip]\n", "test.yaml").unwrap_err();
        assert_eq!(e.key, "kubernetes.structured_metadata[1]");
        assert!(e.to_string().contains("node_ip"), "{e}");
    }

    #[test]
    fn a_missing_kubeconfig_is_named() {
        let mut c = load_str(
            "discovery: kubernetes\nkubernetes:\n  kubeconfig: /nonexistent/kubeconfig\n",
            "test.yaml",
        )
        .unwrap();
        c.add_discovered_targets();
        let e = c.validate("test.yaml").unwrap_err();
        assert_eq!(e.key, "kubernetes.kubeconfig");
        assert!(e.to_string().contains("/nonexistent/kubeconfig"), "{e}");
    }

    #[test]
    fn kubernetes_discovery_adds_the_kubelet_target() {
        let mut c = load_str(
            "discovery: kubernetes\nkubernetes:\n  pods_root: /var/log/pods/\n  node_name: n1\n  docker_root: /nonexistent\n",
            "test.yaml",
        )
        .unwrap();
        c.add_discovered_targets();
        c.validate("test.yaml").unwrap();
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].paths, ["/var/log/pods/*/*/*.log"]);
        assert_eq!(c.targets[0].path_labels, super::super::PathLabels::Kubelet);
        assert_eq!(c.targets[0].labels["node_name"], "n1");

        let mut c = load_str("discovery: kubernetes\nkubernetes:\n  pods_root: pods\n", "test.yaml").unwrap();
        c.add_discovered_targets();
        let e = c.validate("test.yaml").unwrap_err();
        assert_eq!(e.key, "kubernetes.pods_root");
        assert!(e.message.contains("absolute"), "{e}");

        let e = load_str("discovery: kubelet\n", "test.yaml").unwrap_err();
        assert_eq!(e.key, "discovery");

        // The pods' own rules and stages: on the discovered target only, errors under `kubernetes`.
        let yaml = "discovery: kubernetes\nkubernetes:\n  api: false\n  node_name: n1\n  pipeline_stages: [{json: {expressions: {level: }}}]\n  relabel_configs: [{target_label: team, replacement: a}]\ntargets: [{paths: [/var/log/syslog]}]\n";
        let mut c = load_str(yaml, "test.yaml").unwrap();
        c.add_discovered_targets();
        c.validate("test.yaml").unwrap();
        assert!(c.targets[0].pipeline_stages.is_empty() && c.targets[0].relabel_configs.is_empty());
        assert_eq!(c.targets[1].pipeline_stages.len(), 1);
        assert_eq!(c.targets[1].relabel_configs.len(), 1);
        let bad = yaml.replace("{json: {expressions: {level: }}}", "{regex: {expression: '('}}");
        let mut c = load_str(&bad, "test.yaml").unwrap();
        c.add_discovered_targets();
        let e = c.validate("test.yaml").unwrap_err();
        assert_eq!(e.key, "kubernetes.pipeline_stages[0].regex", "{e}");
    }

    #[test]
    fn defaults_apply() {
        let c = check(OK).unwrap();
        assert_eq!(c.client.batch_size.0, 1 << 20);
        assert_eq!(c.client.backoff.max_retries, 0);
        assert_eq!(c.tail.max_line_size.0, 256 << 10);
        assert_eq!(c.positions.sync_period, super::super::Dur::secs(1));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "client:\n  batch_wait: 5 seconds\n",
                "client.batch_wait",
                "not a duration",
            ),
            ("client:\n  bakoff: {}\n", "client.bakoff", "unknown field `bakoff`"),
            (
                "client:\n  backoff:\n    min_period: 10x\n",
                "client.backoff.min_period",
                "duration",
            ),
            ("tail:\n  start_at: middle\n", "tail.start_at", "unknown variant"),
            (
                "targets:\n  - paths: [relative/*.log]\n",
                "targets[0].paths[0]",
                "absolute",
            ),
            (
                "targets:\n  - paths: ['/a/[.log']\n",
                "targets[0].paths[0]",
                "not a valid glob",
            ),
            (
                "targets:\n  - paths: [/a]\n    labels: {bad-name: x}\n",
                "targets[0].labels.bad-name",
                "label name",
            ),
            (
                "client:\n  url: ftp://x\ntargets: [{paths: [/a]}]\n",
                "client.url",
                "http(s) URL",
            ),
            ("targets: []\n", "targets", "no files"),
            (
                "tail:\n  max_line_size: 12 parsecs\n",
                "tail.max_line_size",
                "not a size",
            ),
            (
                "targets:\n  - paths: [/a]\n    format: xml\n",
                "targets[0].format",
                "unknown variant",
            ),
        ];
        for (yaml, key, what) in cases {
            let e = check(yaml).unwrap_err();
            assert_eq!(&e.key, key, "{yaml} -> {e}");
            assert!(e.to_string().contains(what), "{yaml} -> {e}");
            assert!(e.to_string().starts_with("test.yaml: "), "{e}");
        }
    }

    #[test]
    fn env_expansion() {
        std::env::set_var("SHIPPER_TEST_LOKI", "http://loki.example:3100/loki/api/v1/push");
        let c = check("client:\n  url: ${SHIPPER_TEST_LOKI}\ntargets: [{paths: [/a]}]\n").unwrap();
        assert_eq!(c.client.url, "http://loki.example:3100/loki/api/v1/push");
        let e = check("client:\n  url: ${SHIPPER_TEST_UNSET_VAR}\n").unwrap_err();
        assert!(e.to_string().contains("SHIPPER_TEST_UNSET_VAR"), "{e}");
    }

    #[test]
    fn effective_config_round_trips() {
        let c = check(OK).unwrap();
        let yaml = serde_yaml_ng::to_string(&c).unwrap();
        assert_eq!(load_str(&yaml, "x").unwrap(), c);
    }
}
