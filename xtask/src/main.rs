//! `cargo xtask <task>`: everything a newcomer or CI runs.
//!
//! - `setup`: installs what the build needs (idempotent, fast when done).
//! - `test`: setup, then formatting, lints, the dependency licence check and the whole test suite —
//!   README's test command.
//! - `demo`: a pod-like log tree shipped through the real agent to a local Loki-compatible receiver.
//! - `bench`: the benchmark scenarios, with exact line accounting and a report.
//! - `fuzz`: the fuzz targets of the parsers, the positions loader and the config loader.
//! - `docs`: the book under docs/ (reference regenerated from the code, links checked).

mod agent;
mod bench;
mod cluster;
mod demo;
mod deny;
mod docs;
mod fuzz;
mod tools;
mod values_ref;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") if args.get(1).map(String::as_str) == Some("--build-only") => build_setup(),
        Some("setup") => setup(),
        Some("test") => setup().and_then(|_| test(&args[1..])),
        // The demo, the bench and the fuzzers need only the build's tools, not the tests' packages
        // (which need root to install).
        Some("demo") => build_setup().and_then(|_| demo::run(&args[1..])),
        Some("bench") => build_setup().and_then(|_| bench::run(&args[1..])),
        Some("fuzz") => build_setup().and_then(|_| fuzz::run_fuzz(&args[1..])),
        Some("docs") => docs::install_mdbook().and_then(|_| docs::run(&args[1..])),
        Some("cluster") => cluster::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <setup|test|demo|bench|fuzz|docs|cluster>\n\n  setup   [--build-only]: install what the build (and the tests) need (idempotent)\n  test    run fmt, clippy and the whole test suite\n  demo    ship a generated pod log tree to a local receiver and verify every line\n  bench   [SCENARIO…] [--quick]: throughput, CPU per GiB, memory, latency, every line accounted for\n  fuzz    [TARGET…] [--seconds N]: libFuzzer on cri, docker, positions, config, stages, journal, alloy (60 s each by default)\n  docs    build the book (docs/book) with the configuration reference regenerated, and check its links\n  cluster up [--nodes N] [--version 1.34|1.20] | down | status | restart COMPONENT | nodes N: a real Kubernetes node on this machine (root; 1.34 by default)");
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
    let started = std::time::Instant::now();
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let took = started.elapsed().as_secs();
    if took >= 10 {
        // Where a run's time goes, for whoever keeps CI within its budget.
        eprintln!("= {}m {:02}s: {shown}", took / 60, took % 60);
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Installs the rustup components the checks use. Idempotent: only missing pieces are added.
/// Installs what the build needs, idempotently and quickly when it is already there: rustfmt and
/// clippy, rust-src (the eBPF programs build `core` for `bpfel-unknown-none`) and bpf-linker, built
/// against the LLVM inside the Rust toolchain.
fn setup() -> Result<(), String> {
    // On a new machine each of these is minutes of compiling: Helm builds with Go while cargo builds
    // bpf-linker and mdbook (both spend part of their time downloading or linking on one core).
    let helm = std::thread::spawn(tools::helm);
    let rest = build_setup()
        .and_then(|_| docs::install_mdbook())
        .and_then(|_| apt_packages());
    let helm = helm.join().unwrap_or_else(|_| Err("building Helm panicked".into()));
    rest.and(helm.map(drop))
}

/// What building the agent needs (the image build runs only this: `setup --build-only`).
fn build_setup() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for component in ["rustfmt", "clippy", "rust-src"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    bpf_linker()
}

/// Debian packages the tests use: systemd for `systemd-analyze verify` and `journalctl`;
/// systemd-journal-remote to write the journal files the journald input is tested against;
/// libsnappy-dev for the snappy encoders' comparison bench (`benches/snappy.rs`, linted with the rest).
/// prometheus for promtool (the alert rules' tests) and the Prometheus server the cluster test fires an alert on.
const APT_PACKAGES: [&str; 4] = ["systemd", "systemd-journal-remote", "libsnappy-dev", "prometheus"];

/// Installs the missing ones of APT_PACKAGES (needs root, as in CI).
fn apt_packages() -> Result<(), String> {
    apt_install(&APT_PACKAGES)
}

/// Installs those of `packages` that are missing (needs root, as in CI). Idempotent.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    // A fresh machine may have no package lists yet: fetch them once and try again.
    install()
        .or_else(|_| run(Command::new("apt-get").args(["update", "-q"])).and_then(|_| install()))
        .map_err(|e| format!("{e} (install them as root: apt-get install {})", missing.join(" ")))
}

/// The bpf-linker version the eBPF build is known to work with here.
const BPF_LINKER: &str = "0.13.0";

/// Installs bpf-linker unless a working one of the right version is on PATH. It links against the
/// toolchain's own libLLVM (Debian's LLVM is too old): a folder whose `lib/` links to that library is
/// its `LLVM_PREFIX`, and must stay, since bpf-linker loads libLLVM from there when it runs.
fn bpf_linker() -> Result<(), String> {
    let version = Command::new("bpf-linker").arg("--version").output();
    if version.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER)) {
        return Ok(());
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc --print sysroot: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let lib = sysroot.join("lib");
    let llvm = std::fs::read_dir(&lib)
        .map_err(|e| format!("{}: {e}", lib.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .ok_or_else(|| format!("no libLLVM.so.* in {}: is this a rustup toolchain?", lib.display()))?;
    // `libLLVM.so.22.1-rust-1.95.0-stable` → LLVM 22.
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let prefix = home.join("shipper-llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib).map_err(|e| format!("{}: {e}", prefix_lib.display()))?;
    for name in ["libLLVM.so", llvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&llvm), &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    eprintln!("installing bpf-linker {BPF_LINKER} against the toolchain's LLVM {major} (about a minute, once)");
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER,
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{major}")])
        .env("LLVM_PREFIX", &prefix))
}

fn test(extra: &[String]) -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fuzz = root.join("fuzz/Cargo.toml");
    run(cargo()
        .args(["fmt", "--manifest-path"])
        .arg(&fuzz)
        .args(["--", "--check"]))?;
    deny::check(&[&root.join("Cargo.toml"), &fuzz])?;
    // The cluster tests (tests/cluster) need a real Kubernetes: under CI (root) this starts one and
    // stops it afterwards; elsewhere they run against a cluster already up, or skip saying why. On a
    // new machine its binaries are a Go build of several minutes: it runs at the lowest CPU priority
    // from here on, on what the Rust builds and the tests leave idle (the end-to-end tests leave
    // most of it), and the cluster tests (a target cargo runs only when named) come last.
    let start = std::env::var_os("CI").is_some() && !cluster::is_up();
    let prepared = start.then(|| {
        std::thread::spawn(|| {
            tools::build_in_background();
            cluster::prepare(cluster::DEFAULT)
        })
    });
    run(cargo()
        .args(CLIPPY)
        .args(["--workspace", "--all-targets"])
        .args(CLIPPY_FLAGS))?;
    run(cargo()
        .args(CLIPPY)
        .args(["-p", "shipper", "--test", "cluster"])
        .args(CLIPPY_FLAGS))?;
    let others = run(cargo().args(["test", "--workspace", "--all-targets"]).args(extra));
    if let Some(prepared) = prepared {
        prepared
            .join()
            .unwrap_or_else(|_| Err("preparing the cluster panicked".into()))?;
        cluster::run(&["up".into()])?;
    }
    let cluster_tests = run(cargo().args(["test", "-p", "shipper", "--test", "cluster"]).args(extra));
    let down = if start { cluster::run(&["down".into()]) } else { Ok(()) };
    others.and(cluster_tests).and(down)
}

/// Clippy on every target, the snappy comparison bench too (its feature only adds the other
/// encoders it measures).
const CLIPPY: [&str; 3] = ["clippy", "--features", "shipper/snappy-alternatives"];
const CLIPPY_FLAGS: [&str; 3] = ["--", "-D", "warnings"];
