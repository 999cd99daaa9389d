//! docs/src/reference/chart-values.md, generated from the chart's values.yaml: every value with its
//! default (read as YAML) and the comment above it (read from the lines). A value without a comment
//! is reported, and a test fails on it and on a stale page.

use serde_yaml_ng::Value;
use std::fmt::Write;
use std::path::Path;

pub const VALUES: &str = "deploy/helm/shipper/values.yaml";
pub const PAGE: &str = "docs/src/reference/chart-values.md";

/// One key of values.yaml: its dotted path, the comment right above it, whether it holds a map.
struct Key {
    path: String,
    comment: String,
}

/// The keys of values.yaml in file order, each with the comment block right above it (a blank line
/// ends a block, so the file's header belongs to no key).
fn keys(text: &str) -> Vec<Key> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comment.clear();
        } else if let Some(c) = trimmed.strip_prefix('#') {
            comment.push(c.trim().to_string());
        } else if trimmed.starts_with('-') {
            comment.clear();
        } else if let Some((name, _)) = trimmed.split_once(':') {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let path = stack
                .iter()
                .map(|(_, k)| k.as_str())
                .chain([name])
                .collect::<Vec<_>>()
                .join(".");
            stack.push((indent, name.to_string()));
            out.push(Key {
                path,
                comment: comment.join(" "),
            });
            comment.clear();
        }
    }
    out
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// The page, and the values that have no comment of their own.
pub fn generate(root: &Path) -> Result<(String, Vec<String>), String> {
    let file = root.join(VALUES);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let values: Value = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut page = String::from(
        "# Helm chart values\n\n<!-- Generated from deploy/helm/shipper/values.yaml by `cargo xtask docs`; a test \
         fails when it is stale or a value has no comment. -->\n\nEvery value of the chart `deploy/helm/shipper`, \
         with its default and the comment it has in `values.yaml`. Maps are listed by their keys; a row \
         for a map gives what all its keys are about. Settings of the agent that no value names go under \
         `extraConfig` (see the [configuration reference](configuration.md)).\n\n| Value | Default | Meaning |\n|---|---|---|\n",
    );
    let mut missing = Vec::new();
    for key in keys(&text) {
        let v = lookup(&values, &key.path).unwrap_or(&Value::Null);
        let is_map = matches!(v, Value::Mapping(m) if !m.is_empty());
        if key.comment.is_empty() && !is_map {
            missing.push(key.path.clone());
        }
        if is_map && key.comment.is_empty() {
            continue;
        }
        let default = if is_map {
            "—".to_string()
        } else {
            shipper::config::reference::default(serde_json::to_value(v).ok().as_ref())
        };
        let _ = writeln!(
            page,
            "| `{}` | {} | {} |",
            key.path,
            default,
            key.comment.replace('|', "\\|")
        );
    }
    Ok((page, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn every_chart_value_has_a_comment_and_the_page_is_current() {
        let (page, missing) = generate(&root()).unwrap();
        assert!(
            missing.is_empty(),
            "{VALUES}: these values have no comment above them, so the values reference cannot say what \
             they do: {missing:?}"
        );
        let committed = std::fs::read_to_string(root().join(PAGE)).unwrap_or_default();
        assert!(
            committed == page,
            "{PAGE} is not what {VALUES} gives: run `cargo xtask docs` and commit it"
        );
    }

    #[test]
    fn comments_belong_to_the_key_below_them() {
        let text = "# header\n\na:\n  # about b\n  b: 1\n  c: {}\n# about d\nd:\n  - x: 1\n";
        let keys = keys(text);
        let got: Vec<(&str, &str)> = keys.iter().map(|k| (k.path.as_str(), k.comment.as_str())).collect();
        assert_eq!(got, [("a", ""), ("a.b", "about b"), ("a.c", ""), ("d", "about d")]);
    }
}
