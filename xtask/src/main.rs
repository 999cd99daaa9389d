//! `cargo xtask <task>`: everything a newcomer or CI runs.
//!
//! - `setup`: installs what the build needs (idempotent, fast when done).
//! - `test`: setup, then formatting, lints and the whole test suite — README's test command.
//! - `demo`: a pod-like log tree shipped through the real agent to a local Loki-compatible receiver.
//! - `bench`: the benchmark scenarios, with exact line accounting and a report.

mod agent;
mod bench;
mod demo;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("test") => setup().and_then(|_| test(&args[1..])),
        Some("demo") => setup().and_then(|_| demo::run(&args[1..])),
        Some("bench") => setup().and_then(|_| bench::run(&args[1..])),
        _ => {
            eprintln!("usage: cargo xtask <setup|test|demo|bench>\n\n  setup   install what the build needs (idempotent)\n  test    run fmt, clippy and the whole test suite\n  demo    ship a generated pod log tree to a local receiver and verify every line\n  bench   [SCENARIO…] [--quick]: throughput, CPU per GiB, memory, latency, every line accounted for");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("+ {shown}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Installs the rustup components the checks use. Idempotent: only missing pieces are added.
fn setup() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for component in ["rustfmt", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace", "--all-targets"]).args(extra))
}
