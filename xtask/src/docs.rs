//! `cargo xtask docs`: the book under docs/ — the configuration reference regenerated from the code
//! (`shipper reference`) and the chart values' from values.yaml, the book built with mdbook, then every link of the built HTML checked
//! offline: each relative link must name a file of the book and each `#anchor` an id in that file.
//! README.md's relative links are checked too (they point into docs/src).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The mdbook version `cargo xtask setup` installs.
pub const MDBOOK: &str = "0.5.4";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let root = root();
    reference(&root)?;
    let docs = root.join("docs");
    crate::run(Command::new(mdbook()).arg("build").arg(&docs))?;
    let book = docs.join("book");
    let problems = check_links(&book)?
        .into_iter()
        .chain(check_readme(&root))
        .collect::<Vec<_>>();
    if !problems.is_empty() {
        return Err(format!("{} broken links:\n{}", problems.len(), problems.join("\n")));
    }
    eprintln!(
        "docs: built {} with every link resolved",
        book.join("index.html").display()
    );
    Ok(())
}

/// mdbook from PATH, else where `cargo install` put it.
fn mdbook() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match home.map(|h| h.join("bin/mdbook")) {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("mdbook"),
    }
}

/// Installs mdbook MDBOOK unless that version is there (for `setup`).
pub fn install_mdbook() -> Result<(), String> {
    let version = Command::new(mdbook()).arg("--version").output();
    if version.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(MDBOOK)) {
        return Ok(());
    }
    eprintln!("installing mdbook {MDBOOK} (a few minutes, once)");
    crate::run(crate::cargo().args(["install", "mdbook", "--locked", "--version", MDBOOK]))
}

/// Rewrites the generated reference pages when they differ: the configuration reference (from the
/// config structs) and the chart's values (from values.yaml).
fn reference(root: &Path) -> Result<(), String> {
    let (config, _) = shipper::config::reference::generate();
    let (values, _) = crate::values_ref::generate(root)?;
    for (page, text) in [
        ("docs/src/reference/configuration.md", config),
        (crate::values_ref::PAGE, values),
    ] {
        let file = root.join(page);
        if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            eprintln!("docs: {page} regenerated; commit it");
        }
    }
    Ok(())
}

/// The values of `attr="..."` in an HTML text.
fn attributes<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            html_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "html") {
            out.push(p);
        }
    }
    Ok(())
}

/// `base/rel` with `.` and `..` resolved, without touching the file system.
fn join(base: &Path, rel: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn external(link: &str) -> bool {
    link.contains("://") || link.starts_with("mailto:") || link.starts_with("javascript:") || link.starts_with("data:")
}

/// Every broken relative link and anchor of the built book, as `page: link (why)`.
fn check_links(book: &Path) -> Result<Vec<String>, String> {
    // Canonical, so that a link's target resolved with `..` is the same key as the page's own path.
    let book = &book.canonicalize().map_err(|e| format!("{}: {e}", book.display()))?;
    let mut pages = Vec::new();
    html_files(book, &mut pages)?;
    // mdbook writes 404.html with links from the site's root (`/`), for a server to show anywhere.
    pages.retain(|p| p.file_name().is_none_or(|n| n != "404.html"));
    if pages.len() < 5 {
        return Err(format!("{}: only {} pages were built", book.display(), pages.len()));
    }
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut texts = Vec::new();
    for p in &pages {
        let html = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        ids.insert(
            p.clone(),
            attributes(&html, "id").into_iter().map(String::from).collect(),
        );
        texts.push((p.clone(), html));
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for (page, html) in &texts {
        let shown = page.strip_prefix(book).unwrap_or(page).display().to_string();
        for link in attributes(html, "href").into_iter().chain(attributes(html, "src")) {
            if external(link) || link.is_empty() {
                continue;
            }
            checked += 1;
            let link = link.split('?').next().unwrap_or(link);
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link, None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                let t = join(page.parent().unwrap_or(book), file);
                if t.is_dir() {
                    t.join("index.html")
                } else {
                    t
                }
            };
            if !target.exists() {
                problems.push(format!("{shown}: {link} (no such file in the book)"));
                continue;
            }
            if let Some(a) = anchor.filter(|a| !a.is_empty()) {
                let known = ids.get(&target).is_some_and(|s| s.contains(a));
                if !known && target.extension().is_some_and(|x| x == "html") {
                    problems.push(format!("{shown}: {link} (no id `{a}` in that page)"));
                }
            }
        }
    }
    eprintln!("docs: {checked} links checked in {} pages", pages.len());
    Ok(problems)
}

/// README.md's relative links: each must name a file of the repository.
fn check_readme(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .filter(|l| !external(l) && !l.starts_with('#'))
        .filter(|l| !root.join(l.split('#').next().unwrap_or(l)).exists())
        .map(|l| format!("README.md: {l} (no such file)"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_page_and_a_missing_anchor_are_reported() {
        let dir = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let page = |name: &str, body: &str| std::fs::write(dir.join(name), body).unwrap();
        page(
            "index.html",
            r##"<h1 id="top">x</h1><a href="sub/a.html#here">ok</a><a href="#top">ok</a>"##,
        );
        page(
            "sub/a.html",
            r##"<h2 id="here"></h2><a href="../index.html#gone">bad</a><a href="../nope.html">bad</a>"##,
        );
        for n in ["b", "c", "d"] {
            page(&format!("{n}.html"), r#"<a href="https://example.com/">external</a>"#);
        }
        let problems = check_links(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("#gone") && problems[1].contains("nope.html"),
            "{problems:?}"
        );
    }
}
