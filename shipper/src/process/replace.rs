//! The `replace` stage (Promtail's `replace`, Alloy's `stage.replace`): every capture group of
//! every match of a regular expression in the line (or an extracted value) is replaced by a
//! template's output, `.Value` being what the group captured.
//!
//! ```yaml
//! - replace: {expression: 'password=(\S+)', replace: '****'}
//! - replace: {expression: '(?P<ip>\d+\.\d+\.\d+\.\d+)', replace: '{{ .Value | Sha2Hash "salt" }}'}
//! ```
//!
//! Only the groups are replaced, not the whole match (an expression without a group changes
//! nothing). Named groups are also extracted, with their replaced value.

use super::template::TemplateStage;
use super::Line;
use bytes::Bytes;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the `replace` stage (Promtail's shape).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaceConfig {
    /// A regular expression with capture groups; what each group captures is replaced.
    pub expression: String,
    /// Replace in this extracted value instead of the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What a group's text becomes: a Go template (`.Value` is the captured text, `.name` an
    /// extracted value), or plain text such as `****`. Empty: the groups are removed.
    pub replace: String,
}

#[derive(Debug)]
pub struct ReplaceStage {
    re: Regex,
    /// Group index → extracted name, for the named groups.
    named: Vec<(usize, Arc<str>)>,
    source: Option<Arc<str>>,
    template: TemplateStage,
}

impl ReplaceStage {
    pub fn new(c: &ReplaceConfig) -> Result<ReplaceStage, String> {
        if c.expression.is_empty() {
            return Err("expression: give a regular expression with the groups to replace".into());
        }
        let re =
            Regex::new(&c.expression).map_err(|e| format!("expression: {:?} does not compile: {e}", c.expression))?;
        if re.captures_len() < 2 {
            return Err(format!(
                "expression: {:?} has no capture group: only what groups capture is replaced",
                c.expression
            ));
        }
        if c.source.as_deref() == Some("") {
            return Err("source: name an extracted value, or leave it out to replace in the line".into());
        }
        let named = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, Arc::from(n))))
            .collect();
        let template = TemplateStage::compile(&c.replace).map_err(|e| format!("replace: {e}"))?;
        Ok(ReplaceStage {
            re,
            named,
            source: c.source.as_deref().map(Arc::from),
            template,
        })
    }

    /// Replaces in the line (or `source`). False: no source, no match, or the template failed
    /// (the line is then unchanged).
    pub fn apply(&self, line: &mut Line) -> bool {
        let input = match &self.source {
            Some(s) => match line.extracted.get(s) {
                Some(v) => v.to_string(),
                None => return false,
            },
            None => line.text().to_string(),
        };
        let mut result = String::with_capacity(input.len());
        let mut prev = 0;
        // Named group → its replacement (the first match's).
        let mut named: Vec<(Arc<str>, String)> = Vec::new();
        let mut first = true;
        let mut out = String::new();
        for caps in self.re.captures_iter(&input) {
            for i in 1..caps.len() {
                let Some(m) = caps.get(i) else { continue };
                out.clear();
                if self.template.render_value(line, Some(m.as_str()), &mut out).is_err() {
                    return false;
                }
                // Groups inside a group already replaced are left (the outer one won).
                if prev == 0 || prev < m.start() {
                    result.push_str(&input[prev..m.start()]);
                    result.push_str(&out);
                    prev = m.end();
                }
                if first {
                    if let Some((_, name)) = self.named.iter().find(|(g, _)| *g == i) {
                        named.push((name.clone(), out.clone()));
                    }
                }
            }
            first = false;
        }
        if first {
            return false;
        }
        result.push_str(&input[prev..]);
        match &self.source {
            Some(s) => line.extracted.set(s, &result),
            None => line.line = Bytes::from(result),
        }
        for (name, v) in named {
            line.extracted.set(&name, &v);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: ReplaceConfig, text: &str) -> (bool, Line) {
        let mut line = Line::new(
            0,
            Bytes::copy_from_slice(text.as_bytes()),
            crate::parse::StreamKind::Unknown,
            0,
        );
        let ok = ReplaceStage::new(&c).unwrap().apply(&mut line);
        (ok, line)
    }

    fn cfg(expression: &str, replace: &str) -> ReplaceConfig {
        ReplaceConfig {
            expression: expression.into(),
            replace: replace.into(),
            source: None,
        }
    }

    #[test]
    fn groups_of_every_match_are_replaced_as_promtails_docs_show() {
        // Promtail's documented example: the IP and user of each access-log line masked.
        let text = "11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] \"GET /1986.js HTTP/1.1\" 200 932";
        let (ok, l) = run(
            cfg(r"^(\S+) (\S+) (\S+)", "{{ if eq .Value \"-\" }}-{{ else }}***{{ end }}"),
            text,
        );
        assert!(ok);
        assert_eq!(
            l.text(),
            "*** - *** [25/Jan/2000:14:00:01 -0500] \"GET /1986.js HTTP/1.1\" 200 932"
        );
        let (_, l) = run(
            cfg(r"(\d{2}\.\d{2}\.\d{2}\.\d{2}) - (\S+)", "x"),
            "11.11.11.11 - frank 12.12.12.12 - frank",
        );
        assert_eq!(l.text(), "x - x x - x");
        let (_, l) = run(cfg(r"password=(\S+)", ""), "user=a password=hunter2 ok");
        assert_eq!(l.text(), "user=a password= ok");
    }

    #[test]
    fn named_groups_are_extracted_with_their_new_value_and_templates_read_extracted_values() {
        let (ok, l) = run(
            cfg(r"level=(?P<level>\w+)", "{{ .Value | ToUpper }}"),
            "ts=1 level=warn msg=x",
        );
        assert!(ok);
        assert_eq!(l.text(), "ts=1 level=WARN msg=x");
        assert_eq!(l.extracted.get("level"), Some("WARN"));
    }

    #[test]
    fn in_an_extracted_value_the_line_stays() {
        let mut line = Line::new(0, Bytes::from_static(b"keep me"), crate::parse::StreamKind::Unknown, 0);
        line.extracted.set(&Arc::from("msg"), "id=42 id=7");
        let c = ReplaceConfig {
            source: Some("msg".into()),
            ..cfg(r"id=(\d+)", "N")
        };
        let st = ReplaceStage::new(&c).unwrap();
        assert!(st.apply(&mut line));
        assert_eq!(line.extracted.get("msg"), Some("id=N id=N"));
        assert_eq!(line.text(), "keep me");
        line.extracted.clear();
        assert!(!st.apply(&mut line), "no source: a failure, nothing changed");
    }

    #[test]
    fn no_match_is_a_failure_and_bad_settings_are_refused() {
        let (ok, l) = run(cfg(r"secret=(\S+)", "x"), "nothing here");
        assert!(!ok);
        assert_eq!(l.text(), "nothing here");
        for (c, want) in [
            (cfg("", "x"), "expression: give"),
            (cfg("no group", "x"), "no capture group"),
            (cfg("(", "x"), "does not compile"),
            (cfg("(a)", "{{ nosuchfunc }}"), "replace: "),
        ] {
            let e = ReplaceStage::new(&c).err().unwrap();
            assert!(e.contains(want), "{e}");
        }
    }
}
