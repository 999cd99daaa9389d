//! `cargo xtask fuzz [TARGET…] [--seconds N]`: builds the fuzz targets in `fuzz/` with libFuzzer and
//! SanitizerCoverage (stable Rust: `-Cpasses=sancov-module`, no nightly needed) and runs each for N
//! seconds (default 60), starting from the corpus in `fuzz/corpus/<target>`. Inputs that find new
//! coverage collect in `target/fuzz/corpus/<target>` (not in the repo); a crash stops the run, leaves
//! the input in `target/fuzz/artifacts/<target>/` and says how to replay it.

use crate::{cargo, run};
use std::path::Path;
use std::process::Command;

pub const TARGETS: [&str; 7] = ["cri", "docker", "positions", "config", "stages", "journal", "alloy"];

/// The flags cargo-fuzz uses for coverage-guided fuzzing, minus the sanitizers that need nightly.
const RUSTFLAGS: [&str; 8] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "--cfg=fuzzing",
    "-Cdebug-assertions",
];

pub fn run_fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a whole number of seconds")?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => {
                return Err(format!(
                    "unknown fuzz target or flag {other:?}; targets: {}",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = root.join("target/fuzz");
    let host = host_triple()?;
    // An explicit --target keeps the instrumentation off build scripts and proc macros.
    run(cargo()
        .args(["build", "--release", "--bins", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .args(["--target", &host, "--target-dir"])
        .arg(&work)
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\u{1f}"))
        .env_remove("RUSTFLAGS"))?;
    for target in targets {
        let bin = work.join(&host).join("release").join(target);
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let seeds = root.join("fuzz/corpus").join(target);
        eprintln!("fuzzing {target} for {seconds} s (seeds: {})", seeds.display());
        let result = run(Command::new(&bin)
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048")
            .arg("-max_len=65536")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus)
            .arg(&seeds));
        if let Err(e) = result {
            return Err(format!(
                "{e}\nthe fuzz target {target} found an input that breaks it: see {dir}; replay it with\n  {bin} {dir}/<crash-file>",
                dir = artifacts.display(),
                bin = bin.display()
            ));
        }
    }
    Ok(())
}

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV printed no host".to_string())
}
