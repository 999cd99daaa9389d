//! Every example in README.md and the book (docs/src) is checked by what it claims to be, per its
//! fence: ```yaml is a whole shipper config (`shipper check`), ```yaml,values our chart's values
//! (`helm lint --strict`, then `helm template`, its objects typed and its config checked),
//! ```yaml,k8s Kubernetes objects (typed; an ArgoCD Application is linted and rendered with its
//! values), ```yaml,promtail and ```alloy configs that `shipper convert` reads (exit 0 or 3). Any
//! other fence naming yaml is refused.

use crate::render::{check_config, documents, render, strict_all, BIN, ROOT};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Block {
    at: String,
    info: String,
    text: String,
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![Path::new(ROOT).join("README.md")];
    walk(&Path::new(ROOT).join("docs/src"), &mut out);
    out.sort();
    out
}

/// The fenced code blocks of a Markdown file, with `file:line` of their opening fence.
fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.strip_prefix(ROOT).unwrap_or(file).display().to_string();
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - trimmed.len();
                    open = Some((i + 1, info.trim().to_string(), " ".repeat(indent), String::new()));
                }
            }
            Some((start, info, indent, body)) => {
                if trimmed.starts_with("```") {
                    out.push(Block {
                        at: format!("{name}:{start}"),
                        info: info.clone(),
                        text: std::mem::take(body),
                    });
                    open = None;
                } else {
                    body.push_str(line.strip_prefix(indent.as_str()).unwrap_or(line));
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{name}: a code fence is never closed");
    out
}

/// Runs the agent's binary on `text` saved as a file; Err with its stderr when the exit code is not allowed.
fn run(args: &[&str], text: &str, ok: &[i32]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .args(args)
        .arg(&file)
        .env("NODE_NAME", "node-1")
        .env("HOSTNAME", "node-1")
        .output()
        .unwrap();
    match out.status.code() {
        Some(c) if ok.contains(&c) => Ok(()),
        code => Err(format!(
            "`shipper {}` exited {code:?}:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

fn check(b: &Block) -> Result<(), String> {
    let caught = |f: &dyn Fn()| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    };
    match b.info.as_str() {
        "yaml" => run(&["check", "--config"], &b.text, &[0]),
        "yaml,values" => crate::render::lint(Some(&b.text))
            .map_err(|e| format!("helm lint --strict: {e}"))
            .and_then(|_| caught(&|| drop(check_config(&render(Some(&b.text)))))),
        "yaml,k8s" => caught(&|| {
            let objects = documents(&b.text);
            assert!(!objects.is_empty(), "no object");
            let (apps, others): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| o["kind"] == "Application");
            strict_all(&others);
            for app in &apps {
                crate::argocd::check_application(app);
            }
        }),
        "yaml,promtail" => run(&["convert", "--from", "promtail"], &b.text, &[0, 3]),
        "alloy" => run(&["convert", "--from", "alloy"], &b.text, &[0, 3]),
        other if other.contains("yaml") => Err(format!(
            "```{other} is not a kind of example the docs test knows: use yaml (a shipper config), \
             yaml,values, yaml,k8s, yaml,promtail, or text for an excerpt"
        )),
        _ => Ok(()),
    }
}

#[test]
fn every_yaml_example_in_the_docs_passes_its_check() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in markdown_files() {
        for b in blocks(&file) {
            if b.info.contains("yaml") || b.info == "alloy" {
                checked += 1;
            }
            if let Err(e) = check(&b) {
                failures.push(format!("{} (```{}): {e}", b.at, b.info));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} examples fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(checked >= 10, "only {checked} YAML examples found: is docs/src there?");
}

/// `shipper <command> --help`'s text.
fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "shipper {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command-line page has a section for every subcommand and names every long option of each,
/// as clap (the code) knows them; a new command or flag without a line there fails.
#[test]
fn the_command_line_page_covers_every_command_and_flag() {
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/src/reference/cli.md")).unwrap();
    let top = help(&[]);
    let commands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 4, "commands parsed from --help: {commands:?}");
    let mut missing = Vec::new();
    for c in &commands {
        if !page.contains(&format!("\n## shipper {c}\n")) {
            missing.push(format!("no `## shipper {c}` section"));
        }
        for flag in help(&[c]).split_whitespace().filter(|w| w.starts_with("--")) {
            let flag = flag.trim_end_matches(|ch: char| !ch.is_ascii_alphanumeric());
            if ["--help", "--version"].contains(&flag) || flag.len() < 4 {
                continue;
            }
            if !page.contains(&format!("`{flag}")) && !page.contains(&format!("`-c`, `{flag}")) {
                missing.push(format!("shipper {c} {flag}"));
            }
        }
    }
    missing.dedup();
    assert!(missing.is_empty(), "docs/src/reference/cli.md lacks: {missing:?}");
}
