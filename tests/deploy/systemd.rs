//! The bare-node install (`deploy/systemd`): install.sh into a temporary root, `systemd-analyze` on
//! the installed unit, and the agent in the unit's sandbox as far as it can be built without systemd
//! as PID 1 (see `sandbox`).

use crate::render::have;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_shipper");
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd");
const UNIT: &str = "etc/systemd/system/shipper.service";
const CONFIG: &str = "etc/shipper/shipper.yaml";
const STATE: &str = "var/lib/shipper";
const INSTALLED: &str = "usr/local/bin/shipper";

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// stdout and stderr, for assertions and their messages.
fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn mode(p: &Path) -> u32 {
    let meta = fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    meta.permissions().mode() & 0o7777
}

/// Runs `install.sh --root ROOT ARGS…`.
fn install_sh(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(format!("{SRC}/install.sh")).arg("--root").arg(root);
    cmd.args(args).output().expect("run install.sh")
}

/// install.sh into a new temporary root; fails the test unless it succeeds.
fn installed() -> tempfile::TempDir {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let out = install_sh(root.path(), &["--binary", BIN, "--no-start"]);
    assert!(out.status.success(), "install.sh: {}", text(&out));
    root
}

#[test]
fn install_sh_installs_upgrades_and_never_overwrites_the_config() {
    let root = installed();
    let r = root.path();
    for (rel, want) in [(INSTALLED, 0o755), (UNIT, 0o644), (CONFIG, 0o640), (STATE, 0o700)] {
        assert_eq!(mode(&r.join(rel)), want, "mode of {rel}");
    }
    assert_eq!(fs::read(r.join(INSTALLED)).unwrap(), fs::read(BIN).unwrap());
    assert_eq!(read(r.join(UNIT)), read(format!("{SRC}/shipper.service")));
    assert_eq!(read(r.join(CONFIG)), read(format!("{SRC}/shipper.yaml")));
    let mut check = Command::new(r.join(INSTALLED));
    let check = check.arg("check").arg("--config").arg(r.join(CONFIG)).output().unwrap();
    assert!(check.status.success(), "shipper check: {}", text(&check));
    // The user edits the config (and the unit, which is the package's); a second run keeps the
    // first, replaces the second and mends the state directory's mode.
    let edited = read(r.join(CONFIG)).replace("start_at: end", "start_at: beginning");
    assert!(edited.contains("beginning"), "the example has no `start_at: end`");
    fs::write(r.join(CONFIG), &edited).unwrap();
    fs::write(r.join(UNIT), "# edited\n").unwrap();
    fs::set_permissions(r.join(STATE), fs::Permissions::from_mode(0o755)).unwrap();
    let again = install_sh(r, &["--binary", BIN, "--no-start"]);
    assert!(again.status.success(), "second run: {}", text(&again));
    assert!(text(&again).contains("keeping the existing"), "{}", text(&again));
    assert_eq!(read(r.join(CONFIG)), edited, "install.sh overwrote the config");
    assert_eq!(read(r.join(UNIT)), read(format!("{SRC}/shipper.service")));
    assert_eq!(mode(&r.join(STATE)), 0o700);
}

#[test]
fn install_sh_refuses_a_bad_config_or_binary_and_uninstalls() {
    let root = installed();
    let r = root.path();
    fs::write(r.join(UNIT), "# local\n").unwrap();
    fs::write(r.join(CONFIG), read(r.join(CONFIG)) + "bogus_key: 1\n").unwrap();
    let out = install_sh(r, &["--binary", BIN, "--no-start"]);
    let msg = text(&out);
    let names_file = format!("{} is not a valid shipper config", r.join(CONFIG).display());
    assert!(!out.status.success() && msg.contains(&names_file), "{msg}");
    assert!(msg.contains("bogus_key"), "shipper check names the key: {msg}");
    assert_eq!(read(r.join(UNIT)), "# local\n", "a failed run changed files");
    let out = install_sh(r, &["--binary", "/nonexistent/shipper", "--no-start"]);
    let msg = text(&out);
    let names_binary = "no executable shipper binary at /nonexistent/shipper";
    assert!(!out.status.success() && msg.contains(names_binary), "{msg}");
    // uninstall keeps the config and the positions; --purge removes them too.
    assert!(install_sh(r, &["uninstall"]).status.success());
    assert!(!r.join(INSTALLED).exists() && !r.join(UNIT).exists());
    assert!(r.join(CONFIG).is_file() && r.join(STATE).is_dir());
    assert!(install_sh(r, &["uninstall", "--purge"]).status.success());
    assert!(!r.join(CONFIG).exists() && !r.join(STATE).exists());
}

/// `systemd-analyze ARGS… --root=ROOT /etc/systemd/system/shipper.service`: the unit, the units it
/// names and ExecStart's binary are looked up under ROOT, so the system's units are copied there.
fn analyze(root: &Path, args: &[&str]) -> Output {
    let units = root.join("usr/lib/systemd/system");
    if !units.exists() {
        let system = ["/usr/lib/systemd/system", "/lib/systemd/system"];
        let system = system.into_iter().find(|d| Path::new(d).is_dir()).unwrap();
        fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
        let cp = Command::new("cp").arg("-a").arg(system).arg(&units).status();
        assert!(cp.is_ok_and(|s| s.success()), "cannot copy {system}");
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args).arg(format!("--root={}", root.display()));
    cmd.arg(format!("/{UNIT}")).output().unwrap()
}

/// What `systemd-analyze verify` has against the installed unit: a failed exit, and every line that
/// names shipper.service (it may also talk about other units, or that systemd is not PID 1 here).
fn verify_problems(root: &Path) -> Vec<String> {
    let out = analyze(root, &["verify"]);
    let lines = text(&out).lines().map(String::from).collect::<Vec<_>>();
    let mut problems: Vec<String> = lines.into_iter().filter(|l| l.contains("shipper.service")).collect();
    if !out.status.success() {
        problems.push(format!("exit {}: {}", out.status, text(&out)));
    }
    problems
}

/// `systemd-analyze security` rates a unit's exposure from 0 (locked down) to 10: at most 3 here.
fn exposure_is_low(root: &Path) -> Result<(), String> {
    let out = analyze(root, &["security", "--offline=yes", "--threshold=30"]);
    out.status.success().then_some(()).ok_or_else(|| text(&out))
}

#[test]
fn the_installed_unit_passes_systemd_analyze() {
    if !have("systemd-analyze", "the_installed_unit_passes_systemd_analyze") {
        return;
    }
    let root = installed();
    // The unit's ExecReload runs the node's /bin/kill (procps), which the empty root lacks.
    fs::create_dir_all(root.path().join("bin")).unwrap();
    fs::copy("/bin/kill", root.path().join("bin/kill")).expect("the host's /bin/kill");
    let problems = verify_problems(root.path());
    assert!(problems.is_empty(), "verify:\n{}", problems.join("\n"));
    exposure_is_low(root.path()).unwrap_or_else(|e| panic!("exposure above 3:\n{e}"));
}

#[test]
fn systemd_analyze_catches_a_misspelt_option_a_missing_binary_and_no_hardening() {
    if !have("systemd-analyze", "systemd_analyze_catches_…") {
        return;
    }
    let root = installed();
    let unit = root.path().join(UNIT);
    let good = read(&unit);
    fs::write(&unit, good.replace("ProtectSystem=strict", "ProtectSystm=strict")).unwrap();
    let problems = verify_problems(root.path());
    assert!(problems.iter().any(|l| l.contains("ProtectSystm")), "{problems:?}");
    let bare = "[Service]\nExecStart=/usr/local/bin/shipper run --config /etc/shipper/shipper.yaml\n";
    fs::write(&unit, bare).unwrap();
    assert!(exposure_is_low(root.path()).is_err(), "an unhardened unit passed");
    fs::write(&unit, good).unwrap();
    fs::remove_file(root.path().join(INSTALLED)).unwrap();
    let problems = verify_problems(root.path());
    assert!(problems.iter().any(|l| l.contains(INSTALLED)), "{problems:?}");
}

/// The agent run by the installed unit's ExecStart, Environment= and config (its node paths moved
/// under the temporary root) in the unit's sandbox, without systemd: its CapabilityBoundingSet (less
/// what this machine lacks, through setpriv), NoNewPrivileges, SystemCallFilter,
/// SystemCallArchitectures and RestrictAddressFamilies (the seccomp filter systemd would build), and
/// ProtectSystem=strict with ProtectKernelTunables/ProtectControlGroups (a mount namespace where every
/// mount but /dev, /proc and the state directory is read-only: /sys, tracefs and the BTF included).
/// x86_64 only, for the syscall numbers. Not reproduced: PrivateDevices, PrivateTmp, ProtectHome,
/// ProtectProc, MemoryDenyWriteExecute and the other namespace/seccomp options.
#[cfg(target_arch = "x86_64")]
mod sandbox;
