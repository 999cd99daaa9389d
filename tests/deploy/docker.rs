//! The Dockerfile. The test suite builds no image (it pulls no base images), so the test checks
//! what the image depends on: the stages and their commands, that the binary needs no library beyond
//! what distroless/cc ships, and that the eBPF programs are inside the binary.

use crate::render::{BIN, ROOT};
use std::path::Path;

/// Instructions of the Dockerfile (continuation lines joined), as (KEYWORD, arguments).
fn instructions(text: &str) -> Vec<(String, String)> {
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, a)| (k.to_uppercase(), a.trim().to_owned()))
        .collect()
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_distroless() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/Dockerfile")).unwrap();
    let ins = instructions(&text);
    let froms: Vec<&str> = ins.iter().filter(|i| i.0 == "FROM").map(|i| i.1.as_str()).collect();
    assert_eq!(
        froms.len(),
        3,
        "a build stage, the journal image and the default runtime: {froms:?}"
    );
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "debian:bookworm-slim AS journal");
    assert_eq!(
        froms[2], "gcr.io/distroless/cc-debian12:nonroot",
        "the default image is the last stage"
    );
    let run: String = ins.iter().filter(|i| i.0 == "RUN").map(|i| i.1.clone()).collect();
    assert!(run.contains("cargo xtask setup --build-only"), "{run}");
    assert!(run.contains("cargo build --release --locked -p shipper"), "{run}");
    let runtime = &ins[ins.iter().rposition(|i| i.0 == "FROM").unwrap()..];
    let copy = runtime
        .iter()
        .find(|i| i.0 == "COPY")
        .expect("COPY in the runtime stage");
    assert_eq!(copy.1, "--from=build /out/shipper /usr/local/bin/shipper");
    let get = |k: &str| runtime.iter().find(|i| i.0 == k).map(|i| i.1.as_str());
    assert_eq!(
        get("USER"),
        Some("nonroot"),
        "non-root unless the DaemonSet says otherwise"
    );
    assert_eq!(get("ENTRYPOINT"), Some(r#"["/usr/local/bin/shipper"]"#));
    // The chart passes the same arguments.
    assert_eq!(get("CMD"), Some(r#"["run", "--config", "/etc/shipper/shipper.yaml"]"#));
    // The journal image: journalctl (package systemd) and the same binary and command.
    let start = ins
        .iter()
        .position(|i| i.0 == "FROM" && i.1.ends_with(" AS journal"))
        .unwrap();
    let end = ins.iter().rposition(|i| i.0 == "FROM").unwrap();
    let journal = &ins[start..end];
    assert!(
        journal
            .iter()
            .any(|i| i.0 == "RUN" && i.1.contains("apt-get install -y --no-install-recommends systemd")),
        "{journal:?}"
    );
    for (k, v) in [
        ("COPY", "--from=build /out/shipper /usr/local/bin/shipper"),
        ("ENTRYPOINT", r#"["/usr/local/bin/shipper"]"#),
        ("CMD", r#"["run", "--config", "/etc/shipper/shipper.yaml"]"#),
    ] {
        assert!(journal.iter().any(|i| i.0 == k && i.1 == v), "{k} {v} in {journal:?}");
    }
    let chart = std::fs::read_to_string(Path::new(ROOT).join("deploy/helm/shipper/templates/daemonset.yaml")).unwrap();
    assert!(chart.contains("args: [run, --config, /etc/shipper/shipper.yaml]"));
    // `cargo xtask setup --build-only` exists (the image build runs it).
    let xtask = std::fs::read_to_string(Path::new(ROOT).join("xtask/src/main.rs")).unwrap();
    assert!(xtask.contains("\"--build-only\""));
}

/// Libraries gcr.io/distroless/cc-debian12 provides (glibc and libgcc_s).
const DISTROLESS_CC: [&str; 8] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
];

#[test]
fn the_binary_needs_only_glibc_and_carries_its_bpf_programs() {
    let out = std::process::Command::new("ldd").arg(BIN).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let lib = line.split_whitespace().next().unwrap_or_default();
        let name = Path::new(lib).file_name().and_then(|n| n.to_str()).unwrap_or(lib);
        assert!(DISTROLESS_CC.contains(&name), "{name} is not in distroless/cc:\n{text}");
    }
    // An ELF object for the BPF machine (EM_BPF = 247) inside the binary.
    let bytes = std::fs::read(BIN).unwrap();
    let embedded = bytes
        .windows(20)
        .skip(1)
        .any(|w| w.starts_with(b"\x7fELF") && u16::from_le_bytes([w[18], w[19]]) == 247);
    assert!(embedded, "no BPF object embedded in {BIN}");
}
