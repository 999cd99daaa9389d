//! Our configuration as it is being built from a source: YAML values under the keys
//! `shipper check` prints, rendered in a fixed order.

use super::report::Report;
use serde_json::{Map, Value};

/// Where secrets given inline in the source go: files the user creates.
pub const SECRETS_DIR: &str = "/etc/shipper/secrets";

#[derive(Default)]
pub struct Out {
    pub server: Map<String, Value>,
    pub positions: Map<String, Value>,
    /// Loki endpoints; the first becomes `client`, the rest `clients`.
    pub clients: Vec<Map<String, Value>>,
    pub kubernetes_discovery: bool,
    pub kubernetes: Map<String, Value>,
    pub targets: Vec<Value>,
    pub relabel_configs: Vec<Value>,
    pub pipeline_stages: Vec<Value>,
    pub journal: Option<Map<String, Value>>,
    pub tail: Map<String, Value>,
}

impl Out {
    /// The config as YAML, sections in the order of `shipper check`.
    pub fn render(&self) -> String {
        let mut root = serde_yaml_ng::Mapping::new();
        let mut put = |k: &str, v: Value| {
            root.insert(k.into(), serde_yaml_ng::to_value(v).unwrap_or_default());
        };
        if !self.server.is_empty() {
            put("server", Value::Object(self.server.clone()));
        }
        if !self.positions.is_empty() {
            put("positions", Value::Object(self.positions.clone()));
        }
        if let Some((first, rest)) = self.clients.split_first() {
            put("client", Value::Object(first.clone()));
            if !rest.is_empty() {
                put("clients", rest.iter().cloned().map(Value::Object).collect());
            }
        }
        if !self.tail.is_empty() {
            put("tail", Value::Object(self.tail.clone()));
        }
        if !self.targets.is_empty() {
            put("targets", Value::Array(self.targets.clone()));
        }
        if self.kubernetes_discovery {
            put("discovery", "kubernetes".into());
        }
        if !self.kubernetes.is_empty() {
            put("kubernetes", Value::Object(self.kubernetes.clone()));
        }
        if !self.relabel_configs.is_empty() {
            put("relabel_configs", Value::Array(self.relabel_configs.clone()));
        }
        if !self.pipeline_stages.is_empty() {
            put("pipeline_stages", Value::Array(self.pipeline_stages.clone()));
        }
        if let Some(j) = &self.journal {
            put("journal", Value::Object(j.clone()));
        }
        serde_yaml_ng::to_string(&root).unwrap_or_default()
    }
}

impl Out {
    /// Calls `f` on every string of the config (keys of label maps are not values: left alone).
    pub fn strings_mut(&mut self, f: &mut dyn FnMut(&mut String)) {
        fn walk(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
            match v {
                Value::String(s) => f(s),
                Value::Array(a) => a.iter_mut().for_each(|v| walk(v, f)),
                Value::Object(m) => m.values_mut().for_each(|v| walk(v, f)),
                _ => {}
            }
        }
        let maps = [
            &mut self.server,
            &mut self.positions,
            &mut self.kubernetes,
            &mut self.tail,
        ];
        for m in maps
            .into_iter()
            .chain(self.clients.iter_mut())
            .chain(self.journal.as_mut())
        {
            m.values_mut().for_each(|v| walk(v, f));
        }
        for list in [&mut self.targets, &mut self.relabel_configs, &mut self.pipeline_stages] {
            list.iter_mut().for_each(|v| walk(v, f));
        }
    }
}

/// A literal string of the source as it must be written in our config, where `${` starts an
/// environment variable and `$$` is one `$`: both are doubled to stay literal.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '{')) {
            out.push('$');
        }
    }
    out
}

/// Every string of a Promtail config as our loader must read it: `${NAME}` stays an environment
/// variable (as with Promtail's `-config.expand-env`), any other `${` (`${1}` in a replacement)
/// is kept literal.
pub fn keep_env_refs(v: &mut Value) {
    match v {
        Value::String(s) => {
            let mut outs = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(at) = rest.find("${") {
                outs.push_str(&rest[..at]);
                let after = &rest[at + 2..];
                let name = after.split('}').next().unwrap_or("");
                let name = name.split(":-").next().unwrap_or("");
                let env = after.contains('}')
                    && !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                outs.push_str(if env { "${" } else { "$${" });
                rest = after;
            }
            outs.push_str(rest);
            *s = outs;
        }
        Value::Array(a) => a.iter_mut().for_each(keep_env_refs),
        Value::Object(m) => m.values_mut().for_each(keep_env_refs),
        _ => {}
    }
}

/// The file a secret given inline goes to: `<SECRETS_DIR>/<name>`.
pub fn secret_file(name: &str) -> String {
    format!("{SECRETS_DIR}/{name}")
}

/// What an unset `${name}` stands for while the converted config is checked: a Loki URL where a
/// `url:` takes it, else a host name.
fn stand_in(yaml: &str, name: &str) -> String {
    let reference = format!("${{{name}");
    let as_url = yaml
        .lines()
        .filter(|l| l.contains(&reference))
        .any(|l| l.trim_start().trim_start_matches("- ").starts_with("url:"));
    match as_url {
        true => "http://localhost:3100/loki/api/v1/push".into(),
        false => "localhost".into(),
    }
}

/// Checks the written config with the loader of `shipper check`. Environment variables the
/// config reads are taken from this process where set, else a stand-in (the agent needs them set
/// where it runs); secret files the report asks for may not exist yet.
/// Variables in `explained` have a report line already.
pub fn check(yaml: &str, explained: &[String], report: &mut Report) -> Result<(), String> {
    // Variables without a default that are unset here get a stand-in, one at a time.
    let mut unset: Vec<String> = Vec::new();
    let text = loop {
        let lookup = |k: &str| {
            let real = std::env::var(k).ok().filter(|v| !v.is_empty());
            real.or_else(|| unset.iter().any(|u| u == k).then(|| stand_in(yaml, k)))
        };
        match crate::config::expand_env(yaml, lookup) {
            Ok(t) => break t,
            Err(e) => {
                let var = e.split('`').nth(1).map(str::to_string);
                match var {
                    Some(v) if e.contains("is not set") && !unset.contains(&v) => unset.push(v),
                    _ => {
                        return Err(format!(
                            "the converted config does not load (a bug of shipper convert): {e}"
                        ))
                    }
                }
            }
        }
    };
    for k in unset.into_iter().filter(|k| !explained.contains(k)) {
        report.not_needed(
            None,
            format!("environment variable {k}"),
            format!("read when the agent starts (`${{{k}}}` in the config): set it where shipper runs"),
        );
    }
    let mut cfg = crate::config::parse_expanded(&text, "the converted config")
        .map_err(|e| format!("the converted config does not load (a bug of shipper convert): {e}"))?;
    cfg.add_discovered_targets();
    // A geoip stage's database is on the nodes: it cannot be read here.
    super::stages::without_geoip(&mut cfg.pipeline_stages);
    for t in &mut cfg.targets {
        super::stages::without_geoip(&mut t.pipeline_stages);
    }
    if let Some(j) = cfg.journal.as_mut() {
        super::stages::without_geoip(&mut j.pipeline_stages);
    }
    match cfg.validate("the converted config") {
        Ok(()) => Ok(()),
        Err(e) if e.key.ends_with("password_file") || e.key.ends_with("bearer_token_file") => Ok(()),
        Err(e) => Err(format!("the converted config does not pass `shipper check`: {e}")),
    }
}

/// A scalar value as text (strings, numbers, bools); None for anything else.
pub(super) fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The environment variable name for `text`: letters and digits in capitals, anything else `_`.
pub fn env_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
