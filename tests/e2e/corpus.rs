//! `shipper convert` on configurations other people wrote: `tests/convert/corpus/` holds Alloy
//! and Promtail configs, chart values and ArgoCD Applications as published (Grafana's docs and
//! charts, public GitOps repositories, bug reports), each with its source in its first lines.
//!
//! Each is converted by the binary: none may be refused (exit 2) unless its header says Alloy or
//! Promtail refuses it too (`Refused by its own agent:`), what is left out must be on the list of
//! things outside a node agent's job, and every config written must pass
//! `shipper check` once the variables and secret files the report asks for are there. The table
//! of results in docs/src/migration.md is this test's output (`SHIPPER_WRITE_CORPUS=1` rewrites
//! it); the test fails when they differ.

use crate::support::BIN;
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/convert/corpus");
const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/migration.md");
const START: &str = "<!-- corpus results: written by tests/e2e/corpus.rs -->";
const END: &str = "<!-- end of corpus results -->";

/// What converting one file gave.
struct Outcome {
    file: String,
    exit: i32,
    /// The reasons of the NOT SUPPORTED lines.
    left_out: Vec<String>,
    /// The NEEDS INPUT lines: variables and files the user gives.
    needs: usize,
    /// The config written, if any.
    written: Option<PathBuf>,
}

fn kind(file: &str) -> &'static str {
    match file {
        f if f.starts_with("alloy-values-") => "alloy-helm-values",
        f if f.starts_with("promtail-values-") => "promtail-helm-values",
        f if f.starts_with("alloy-") => "alloy",
        _ => "promtail",
    }
}

/// The `--values-dir` a user with a checkout of the Application's values repository passes: its
/// header's `Values file for --values-dir: PATH = CORPUS FILE` lines, laid out under `dir`.
fn values_dir(dir: &Path, file: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(Path::new(DIR).join(file)).unwrap();
    let root = dir.join(format!("{file}.values"));
    let mut any = false;
    for l in text.lines().take(12) {
        let Some((path, stored)) = l
            .split_once("Values file for --values-dir: ")
            .and_then(|(_, rest)| rest.split_once(" = "))
        else {
            continue;
        };
        let to = root.join(path.trim());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(DIR).join(stored.trim()), &to).unwrap_or_else(|e| panic!("{file}: {stored}: {e}"));
        any = true;
    }
    any.then_some(root)
}

fn convert(dir: &Path, file: &str) -> Outcome {
    let out = dir.join(format!("{file}.shipper.yaml"));
    let mut cmd = Command::new(BIN);
    cmd.args(["convert", "--from", kind(file)])
        .arg(Path::new(DIR).join(file))
        .arg("-o")
        .arg(&out);
    if let Some(values) = values_dir(dir, file) {
        cmd.arg("--values-dir").arg(values);
    }
    let o = cmd.output().expect("run shipper convert");
    let report = String::from_utf8_lossy(&o.stderr);
    let left_out = report
        .lines()
        .filter_map(|l| l.split_once(": NOT SUPPORTED: ").map(|(_, why)| why.to_string()))
        .collect();
    Outcome {
        file: file.to_string(),
        exit: o.status.code().unwrap_or(-1),
        left_out,
        needs: report.lines().filter(|l| l.contains(": NEEDS INPUT: ")).count(),
        written: out.exists().then_some(out),
    }
}

/// `shipper check` on a converted config, given what its report asks the user for: each
/// `${VAR}` set (a URL where it stands for one) and each secret file there.
fn check(config: &Path, scratch: &Path) -> Result<(), String> {
    let mut text = std::fs::read_to_string(config).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            let Some(end) = rest[at..].find('}') else { break };
            let name = rest[at + 2..at + end]
                .split(":-")
                .next()
                .unwrap_or_default()
                .to_string();
            let value = if line.trim_start().starts_with("url:") && line.contains(&format!("url: ${{{name}}}")) {
                "http://loki.example:3100"
            } else {
                "stand-in"
            };
            env.push((name, value.to_string()));
            rest = &rest[at + end..];
        }
    }
    // The secrets a user mounts: a password or token, or a CA and client certificate.
    let pki = shipper_testkit::receiver::TestPki::generate();
    for (key, content) in [
        ("password_file", "secret"),
        ("bearer_token_file", "secret"),
        ("ca_file", pki.ca_pem()),
        ("cert_file", pki.client_cert_pem()),
        ("key_file", pki.client_key_pem()),
    ] {
        let paths: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{key}: ")).map(str::to_string))
            .collect();
        for p in paths {
            if !Path::new(&p).exists() {
                let file = scratch.join(p.trim_start_matches('/').replace('/', "_"));
                std::fs::write(&file, content).unwrap();
                text = text.replace(&p, &file.display().to_string());
            }
        }
    }
    let given = scratch.join("given.yaml");
    std::fs::write(&given, &text).unwrap();
    let o = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&given)
        .envs(env)
        .output()
        .unwrap();
    match o.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// The first line naming where the file comes from.
fn source(file: &str) -> String {
    let text = std::fs::read_to_string(Path::new(DIR).join(file)).unwrap();
    text.lines()
        .find_map(|l| {
            let l = l.trim_start_matches(['#', '/', ' ']);
            l.strip_prefix("Source: ").map(str::to_string)
        })
        .unwrap_or_else(|| panic!("{file}: no `Source:` line in its header"))
}

/// Whether its header says Alloy or Promtail itself refuses it.
fn refused_by_its_agent(file: &str) -> bool {
    let text = std::fs::read_to_string(Path::new(DIR).join(file)).unwrap();
    text.lines().take(12).any(|l| l.contains("Refused by its own agent:"))
}

/// The share of a reason that names the documented out-of-scope list.
fn out_of_scope(why: &str) -> bool {
    why.starts_with("outside a node log agent's job")
}

fn table(results: &[Outcome]) -> String {
    let mut t = String::from(
        "| config | from | exit | left out | of which outside a node agent's job | needing input |\n|---|---|---|---|---|---|\n",
    );
    for r in results {
        let scope = r.left_out.iter().filter(|w| out_of_scope(w)).count();
        let source = source(&r.file);
        // The address, without the note on which part of the page it is.
        let link = source.split_whitespace().next().unwrap_or_default();
        t.push_str(&format!(
            "| [{}]({link}) | {} | {} | {} | {scope} | {} |\n",
            r.file.trim_end_matches(".yaml").trim_end_matches(".alloy"),
            kind(&r.file),
            r.exit,
            r.left_out.len(),
            r.needs,
        ));
    }
    let n = results.len();
    let count = |code: i32| results.iter().filter(|r| r.exit == code).count();
    t.push_str(&format!(
        "\n{n} configs: {} converted whole (exit 0), {} with something left out or to give (exit 3), {} refused (exit 2, as their own agent refuses them).\n",
        count(0),
        count(3),
        count(2)
    ));
    t
}

#[test]
fn configs_people_publish_convert_and_what_is_written_passes_check() {
    let scratch = tempfile::tempdir().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "only {} configs in {DIR}", files.len());
    let mut failures = Vec::new();
    let mut results = Vec::new();
    for file in &files {
        let r = convert(scratch.path(), file);
        match (r.exit, refused_by_its_agent(file)) {
            (2, true) | (0 | 3, false) => {}
            (code, refused) => failures.push(format!("{file}: exit {code} (its header says refused: {refused})")),
        }
        // What is left out is outside a node agent's job (the documented list), nothing else.
        for why in r.left_out.iter().filter(|w| !out_of_scope(w)) {
            failures.push(format!("{file}: left out, though a node agent's job: {why}"));
        }
        if r.exit == 0 && (!r.left_out.is_empty() || r.needs > 0) {
            failures.push(format!("{file}: exit 0 with lines left out or needing input"));
        }
        if let Some(w) = &r.written {
            if let Err(e) = check(w, scratch.path()) {
                failures.push(format!("{file}: the converted config fails `shipper check`: {e}"));
            }
        } else if r.exit != 2 && !r.left_out.iter().any(|w| w.contains("nothing left to tail")) {
            failures.push(format!("{file}: nothing written"));
        }
        results.push(r);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let page = std::fs::read_to_string(PAGE).unwrap();
    let (Some(a), Some(b)) = (page.find(START), page.find(END)) else {
        panic!("{PAGE} has no corpus results section ({START} … {END})");
    };
    let want = format!("{START}\n\n{}\n{END}", table(&results));
    let now = &page[a..b + END.len()];
    if std::env::var_os("SHIPPER_WRITE_CORPUS").is_some() {
        std::fs::write(PAGE, page.replace(now, &want)).unwrap();
    } else {
        assert_eq!(
            now, want,
            "the corpus results in {PAGE} are not this run's: run with SHIPPER_WRITE_CORPUS=1"
        );
    }
}
