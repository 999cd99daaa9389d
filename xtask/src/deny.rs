//! A `cargo deny`-style check that runs offline (part of `cargo xtask test`): every dependency comes
//! from crates.io (no git sources) under a licence we can ship with an Apache-2.0 agent, and crates
//! present in several versions are listed (they cost build time and binary size).

use crate::cargo;
use std::collections::BTreeMap;
use std::path::Path;

/// Licences a dependency may be used under (SPDX ids; `WITH` exceptions only widen them).
const ALLOWED: [&str; 14] = [
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "Unlicense",
    "BSL-1.0",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CDLA-Permissive-2.0",
    "NCSA",
    "CC0-1.0",
];

pub fn check(manifests: &[&Path]) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for manifest in manifests {
        let out = cargo()
            .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
            .arg(manifest)
            .output()
            .map_err(|e| format!("cargo metadata: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo metadata --locked for {} failed (is Cargo.lock up to date?):\n{}",
                manifest.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))?;
        let ours: Vec<&str> = meta["workspace_members"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for p in meta["packages"].as_array().into_iter().flatten() {
            let (name, version) = (p["name"].as_str().unwrap_or("?"), p["version"].as_str().unwrap_or("?"));
            if p["id"].as_str().is_some_and(|id| ours.contains(&id)) {
                continue;
            }
            let source = p["source"].as_str().unwrap_or("");
            if !source.is_empty() && !source.starts_with("registry+") {
                problems.push(format!(
                    "{name} {version}: from {source}; only crates.io sources are allowed"
                ));
            }
            match p["license"].as_str() {
                Some(expr) if allowed(expr) => {}
                Some(expr) => problems.push(format!("{name} {version}: licence {expr:?} is not on the allow list")),
                None => problems.push(format!("{name} {version}: no SPDX licence expression")),
            }
            let v = versions.entry(name.to_string()).or_default();
            if !v.iter().any(|x| x == version) {
                v.push(version.to_string());
            }
        }
    }
    let dups: Vec<String> = versions
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(n, v)| format!("{n} ({})", v.join(", ")))
        .collect();
    if !dups.is_empty() {
        eprintln!("dependencies in more than one version: {}", dups.join("; "));
    }
    if problems.is_empty() {
        eprintln!("licences and sources of {} crates: ok", versions.len());
        Ok(())
    } else {
        Err(format!("dependency check failed:\n  {}", problems.join("\n  ")))
    }
}

/// Whether an SPDX expression (`A OR B`, `A AND B`, `A WITH exception`, parentheses, and the old
/// `A/B` for OR) lets us use the crate under allowed licences only.
pub fn allowed(expr: &str) -> bool {
    let spaced = expr.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let ok = or_expr(&tokens, &mut pos);
    ok == Some(true) && pos == tokens.len()
}

fn or_expr(t: &[&str], pos: &mut usize) -> Option<bool> {
    let mut any = and_expr(t, pos)?;
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        any |= and_expr(t, pos)?;
    }
    Some(any)
}

fn and_expr(t: &[&str], pos: &mut usize) -> Option<bool> {
    let mut all = term(t, pos)?;
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        all &= term(t, pos)?;
    }
    Some(all)
}

fn term(t: &[&str], pos: &mut usize) -> Option<bool> {
    let tok = *t.get(*pos)?;
    *pos += 1;
    let ok = if tok == "(" {
        let inner = or_expr(t, pos)?;
        (t.get(*pos) == Some(&")")).then_some(())?;
        *pos += 1;
        inner
    } else {
        ALLOWED.contains(&tok)
    };
    if t.get(*pos) == Some(&"WITH") {
        t.get(*pos + 1)?;
        *pos += 2;
    }
    Some(ok)
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn spdx_expressions() {
        assert!(allowed("MIT OR Apache-2.0"));
        assert!(allowed("MIT/Apache-2.0"));
        assert!(allowed("Apache-2.0 / MIT"));
        assert!(allowed("(MIT OR Apache-2.0) AND Unicode-3.0"));
        assert!(allowed("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"));
        assert!(allowed("MIT OR Apache-2.0 OR LGPL-2.1-or-later"));
        assert!(!allowed("GPL-3.0-only"));
        assert!(!allowed("MIT AND GPL-2.0-only"));
        assert!(!allowed("(MIT OR Apache-2.0"));
        assert!(!allowed(""));
        assert!(!allowed("MIT OR"));
    }
}
