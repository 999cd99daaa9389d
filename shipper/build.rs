//! Builds the BPF programs (`shipper-ebpf`, for `bpfel-unknown-none`) with aya-build; the agent embeds
//! the object. Needs rust-src and bpf-linker, which `cargo xtask setup` installs.

use std::path::Path;
use std::process::Command;

fn main() {
    // xtask builds the library without the programs (it installs the toolchain they need).
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!(
            "\nerror: building shipper's eBPF programs needs {}.\n       Run `cargo xtask setup` (installs them, once), then build again.\n",
            missing.join(" and ")
        );
        std::process::exit(1);
    }
    // The same toolchain as this build; `core` is built for the BPF target with `-Z build-std`, which a
    // stable toolchain allows under RUSTC_BOOTSTRAP.
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    std::env::set_var("RUSTC_BOOTSTRAP", "1");
    // aya-build relays the inner cargo's progress as warnings; errors still come through.
    std::env::set_var("CARGO_TERM_QUIET", "true");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shipper-ebpf");
    let root = root.to_string_lossy();
    let package = aya_build::Package {
        name: "shipper-ebpf",
        root_dir: &root,
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain)) {
        eprintln!("\nerror: building shipper's eBPF programs failed: {e:#}\n");
        std::process::exit(1);
    }
}

/// What the BPF build needs and this machine lacks.
fn missing_tools() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("bpf-linker");
    }
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !Path::new(&sysroot).join("lib/rustlib/src/rust/library/core").is_dir() {
        missing.push("the rust-src component");
    }
    missing
}
