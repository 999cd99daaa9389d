//! Disk trouble where the positions live: a read-only or full filesystem never stops shipping; the
//! agent warns, counts the failed writes, and writes the positions as soon as it can again.

use crate::support::{wait_all, wait_metric, write_tagged, Agent, Env};
use shipper_testkit::{Format, LogWriter};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount").args(["-o", opts]).arg(&self.0).status().unwrap();
        assert!(ok.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn read_only_or_full_positions_directory_keeps_shipping_and_retries() {
    let why = "mounting a small tmpfs for the positions needs root (CAP_SYS_ADMIN)";
    if !crate::support::has_any_cap(crate::support::CAP_SYS_ADMIN, "read_only_or_full_positions", why) {
        return;
    }
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let mnt = env.path("state/x").parent().unwrap().to_path_buf();
    let fs = Tmpfs::mount(&mnt, "64k");
    let positions = mnt.join("positions.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let old = env.dir.path().join("positions.json").display().to_string();
    std::fs::write(&config, text.replace(&old, &positions.display().to_string())).unwrap();

    // Read-only from the start.
    fs.remount("remount,ro");
    let mut w = LogWriter::create(env.path("app/app.log"), Format::Cri).unwrap();
    let agent = Agent::start(&config);
    write_tagged(&mut w, 0, 0..1_000);
    wait_all(&env, &agent, &[(0, 1_000)], 30);
    let errors = "shipper_positions_writes_total{status=\"error\"}";
    wait_metric(&agent, errors, 2.0, 20);
    assert!(!positions.exists());

    // Writable again but full.
    fs.remount("remount,rw");
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 << 10]);
    let before = agent.metric(errors);
    write_tagged(&mut w, 0, 1_000..2_000);
    let account = wait_all(&env, &agent, &[(0, 2_000)], 30);
    crate::support::assert_exact_or_log(&account, &agent);
    wait_metric(&agent, errors, before + 2.0, 20);

    // Space again: the next sync writes the positions.
    std::fs::remove_file(&filler).unwrap();
    wait_metric(&agent, "shipper_positions_writes_total{status=\"ok\"}", 1.0, 20);
    assert!(positions.exists());
    let log = agent.log();
    assert!(log.contains("cannot write the positions file"), "{}", agent.log_tail());
    agent.assert_peak_rss_below(64, "positions dir read-only, then full");
    agent.stop();
    let saved = crate::support::positions_at(&positions);
    assert!(
        saved["files"][0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("app.log")),
        "{saved}"
    );
}
