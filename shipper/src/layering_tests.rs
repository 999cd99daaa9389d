//! The layering README describes, checked on the source: no two top-level modules import each
//! other, directly or round a circle, and neither do the files of one directory. A new import
//! that closes a circle fails here with the edges that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module files under `src`, as (module path, file).
fn modules(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if p.extension().is_none_or(|x| x != "rs") || name == "tests" || name.ends_with("_tests") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let mut path: Vec<String> = rel
                .parent()
                .unwrap()
                .iter()
                .map(|c| c.to_string_lossy().to_string())
                .collect();
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                path.push(name);
            }
            out.push((path, p));
        }
    }
    out
}

/// The code of a file without comments and without its test module.
fn code(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

/// Every `crate::a::b…` and `super::…` path named in `line`, resolved from module `at`.
fn references(at: &[String], is_mod_file: bool, line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` of a mod.rs file is its parent directory's module.
            let mut b = at.to_vec();
            if !is_mod_file || !b.is_empty() {
                b.pop();
            }
            b
        }),
    ] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let ok_before = rest[..i]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != ':');
            let after = &rest[i + prefix.len()..];
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            if ok_before {
                let mut path = base.clone();
                path.extend(after[..end].split("::").filter(|s| !s.is_empty()).map(str::to_string));
                // `use crate::a::{b, c::D}`: each item of the group.
                let group = after[end..]
                    .strip_prefix('{')
                    .and_then(|g| g.split_once('}'))
                    .map(|(g, _)| g);
                match group {
                    Some(items) => {
                        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                            let mut p = path.clone();
                            p.extend(item.split("::").map(|s| s.trim().to_string()));
                            out.push(p);
                        }
                    }
                    None => out.push(path),
                }
            }
            rest = &after[end..];
        }
    }
    out
}

/// Finds a circle in `edges` (module → modules it imports), if any.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_round_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|(p, _)| p.clone()).collect();
    // Edges between top-level modules, and between sibling files of one directory.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), String> = BTreeMap::new();
    for (at, file) in &mods {
        let is_mod_file = file.file_stem().is_some_and(|s| s == "mod" || s == "lib");
        for (n, line) in code(file) {
            for r in references(at, is_mod_file, &line) {
                // The longest known module the path names.
                let Some(target) = (1..=r.len()).rev().map(|k| r[..k].to_vec()).find(|p| known.contains(p)) else {
                    continue;
                };
                let place = format!("{}:{n}", file.strip_prefix(&src).unwrap().display());
                if let (Some(a), Some(b)) = (at.first(), target.first()) {
                    if a != b {
                        top.entry(a.clone()).or_default().insert(b.clone());
                        why.entry((a.clone(), b.clone())).or_insert(place.clone());
                    }
                }
                let same_dir =
                    at.len() == target.len() && at.len() >= 2 && at[..at.len() - 1] == target[..target.len() - 1];
                if same_dir && at != &target && !is_mod_file {
                    let (a, b) = (at.join("/"), target.join("/"));
                    siblings.entry(a.clone()).or_default().insert(b.clone());
                    why.entry((a, b)).or_insert(place);
                }
            }
        }
    }
    for (what, edges) in [("top-level modules", &top), ("files of one directory", &siblings)] {
        if let Some(c) = circle(edges) {
            let steps: Vec<String> = c
                .windows(2)
                .map(|w| format!("{} → {} ({})", w[0], w[1], why[&(w[0].clone(), w[1].clone())]))
                .collect();
            panic!("{what} import round a circle:\n  {}", steps.join("\n  "));
        }
    }
}
