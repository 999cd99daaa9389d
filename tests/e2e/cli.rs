//! The exit codes of `shipper run`, `check` and `convert`, as the command-line page's "Exit codes"
//! table gives them: each case the table names is provoked with the real binary, and its code must
//! be the one of the table's row that names it. A row changed without the code (or the code without
//! the row) fails, and so does a case in the table that no provocation here covers.

use crate::support::{Agent, Env, BIN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/reference/cli.md");
const COMMANDS: [&str; 3] = ["run", "check", "convert"];

/// The table under `## Exit codes`: per row its code and the cell of each command (run, check,
/// convert), empty where the command never exits with that code.
fn exit_code_table() -> Vec<(i32, [String; 3])> {
    let page = std::fs::read_to_string(PAGE).expect("the command-line page");
    let section = page
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("cli.md has an `## Exit codes` section");
    let mut rows = Vec::new();
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells[0] == "code" {
            assert_eq!(
                cells[1..],
                ["`run`", "`check`", "`convert`"],
                "the table's columns: {line}"
            );
            continue;
        }
        if cells[0].starts_with("---") {
            continue;
        }
        assert_eq!(cells.len(), 4, "a row of the exit codes table has 4 cells: {line}");
        let code = cells[0].parse().unwrap_or_else(|_| panic!("not an exit code: {line}"));
        rows.push((code, [1, 2, 3].map(|i| cells[i].to_string())));
    }
    assert!(rows.len() >= 4, "exit codes table rows: {rows:?}");
    rows
}

/// Runs the binary and returns its exit code, killing it (None) if it still runs after 30 s.
fn exit_code(cmd: &mut Command) -> Option<i32> {
    let mut child = cmd
        .env("NODE_NAME", "node-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shipper");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for shipper") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A promtail config that converts whole (the varlogs job), and one with a job left out (syslog).
const PROMTAIL: &str = "clients: [{url: http://loki:3100/loki/api/v1/push}]\nscrape_configs:\n  - job_name: varlogs\n    static_configs: [{targets: [localhost], labels: {job: varlogs, __path__: /var/log/*.log}}]\n";
const SYSLOG_JOB: &str = "  - job_name: syslog\n    syslog: {listen_address: 0.0.0.0:1514}\n";

#[test]
fn each_exit_code_is_the_one_the_command_line_page_gives() {
    let table = exit_code_table();
    let env = Env::new();
    let dir = env.dir.path();
    let logs = format!("{}/*.log", dir.display());
    let positions = format!("{}/positions.json", dir.display());
    let loki = env.loki.url();
    // `run` or `check` with flags only, plus `extra` flags.
    let flags = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let base = [cmd, "--path", &logs, "--loki", &loki, "--positions", &positions];
        base.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let args = |a: &[&str]| -> Vec<String> { a.iter().map(|a| a.to_string()).collect() };
    let convert = |extra: &[&str]| -> Vec<String> { args(&[&["convert", "--from", "promtail"], extra].concat()) };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().to_string();
    let unknown_key = write(dir, "unknown-key.yaml", "client:\n  urll: http://loki:3100\n");
    let missing_ca = write(
        dir,
        "missing-ca.yaml",
        &format!(
            "client:\n  url: {loki}\n  tls:\n    ca_file: {}/no-such-ca.pem\n",
            dir.display()
        ),
    );
    let no_journalctl = write(
        dir,
        "no-journalctl.yaml",
        &format!(
            "client:\n  url: {loki}\njournal:\n  journalctl_path: {}/no-such-journalctl\n",
            dir.display()
        ),
    );
    // Found, but not executable (not even by root): spawning it fails once the agent started.
    let journalctl = write(dir, "journalctl", "#!/bin/sh\n");
    std::fs::set_permissions(&journalctl, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let stuck_journalctl = write(
        dir,
        "stuck-journalctl.yaml",
        &format!(
            "server:\n  http_listen: \"\"\nclient:\n  url: {loki}\npositions:\n  filename: {positions}\njournal:\n  journalctl_path: {journalctl}\n"
        ),
    );
    let whole = write(dir, "promtail-whole.yaml", PROMTAIL);
    let left_out = write(dir, "promtail-left-out.yaml", &format!("{PROMTAIL}{SYSLOG_JOB}"));
    let unparsable = write(dir, "promtail-unparsable.yaml", "scrape_configs: [\n");
    let missing = format!("{}/no-such-promtail.yaml", dir.display());
    let unwritable = format!("{}/no-such-dir/out.yaml", dir.display());
    let strict_out = format!("{}/strict-out.yaml", dir.display());

    // (command, a phrase of the table's cell for the case, the arguments that provoke it)
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        ("run", "HTTP port is taken", flags("run", &["--http-listen", &taken])),
        ("run", "bad flag", flags("run", &["--no-such-flag"])),
        ("run", "names the key", args(&["run", "-c", &unknown_key])),
        ("run", "http_listen", flags("run", &["--http-listen", "nonsense"])),
        ("run", "TLS files", args(&["run", "-c", &missing_ca])),
        ("run", "missing `journalctl`", args(&["run", "-c", &no_journalctl])),
        ("run", "cannot be started", args(&["run", "-c", &stuck_journalctl])),
        ("check", "is valid", flags("check", &[])),
        ("check", "bad flag", flags("check", &["--no-such-flag"])),
        ("check", "bad flag or config", args(&["check", "-c", &unknown_key])),
        ("check", "refuse at start", args(&["check", "-c", &missing_ca])),
        ("convert", "carried over", convert(&[&whole])),
        ("convert", "cannot be written", convert(&[&whole, "-o", &unwritable])),
        ("convert", "cannot be read", convert(&[&missing])),
        ("convert", "does not parse", convert(&[&unparsable])),
        ("convert", "left out", convert(&[&left_out])),
        (
            "convert",
            "--strict",
            convert(&[&left_out, "--strict", "-o", &strict_out]),
        ),
    ];
    // The one case that is not a command line: an agent that started, then SIGTERM.
    let clean_stop = || Agent::start(&env.config("*.log", "")).stop().code();
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    let provoked = cases
        .iter()
        .map(|(command, phrase, argv)| (*command, *phrase, exit_code(Command::new(BIN).args(argv))))
        .chain([("run", "clean stop", clean_stop())]);
    for (command, phrase, got) in provoked {
        let column = COMMANDS.iter().position(|c| *c == command).unwrap();
        let rows: Vec<i32> = table
            .iter()
            .filter(|(_, cells)| cells[column].contains(phrase))
            .map(|(code, _)| *code)
            .collect();
        let [documented] = rows[..] else {
            failures.push(format!(
                "`{command}`: {} rows of the table say `{phrase}` (rows with codes {rows:?}); one should",
                rows.len()
            ));
            continue;
        };
        covered.insert((column, documented));
        if got != Some(documented) {
            failures.push(format!(
                "`{command}` ({phrase}): exited with {got:?}, the table says {documented}"
            ));
        }
    }
    assert!(!Path::new(&strict_out).exists(), "convert --strict wrote {strict_out}");
    for (code, cells) in &table {
        for (column, cell) in cells.iter().enumerate() {
            if !cell.is_empty() && !covered.contains(&(column, *code)) {
                failures.push(format!(
                    "`{}` exit {code} ({cell}): no case of this test provokes it",
                    COMMANDS[column]
                ));
            }
        }
    }
    drop(listener);
    assert!(
        failures.is_empty(),
        "docs/src/reference/cli.md, Exit codes:\n{}",
        failures.join("\n")
    );
}
