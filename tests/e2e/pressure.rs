//! CPU pressure for the agent: a cgroup with a CPU quota, as a pod's CPU limit or a noisy node
//! gives it. Tests that must hold when the agent falls behind (the crash loop, the outage) run it
//! inside one, so the loss of a starved agent shows every time instead of when CI happens to be
//! loaded.

use std::path::PathBuf;

/// A CPU cgroup (v2's `cpu.max`, or v1's `cpu` controller) the agent is started in.
pub struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// A cgroup limited to `millicores` thousandths of one core. None when this process cannot make
    /// one (not root): the caller skips outside CI, saying why; under CI (root) it fails.
    pub fn new(test: &str, millicores: u64) -> Option<CpuQuota> {
        let name = format!("shipper-e2e-{}-{test}", std::process::id());
        let period = 100_000u64;
        let quota = period * millicores / 1000;
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let made = if std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.contains("cpu")) {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            let dir = v2.join(&name);
            std::fs::create_dir(&dir)
                .and_then(|_| std::fs::write(dir.join("cpu.max"), format!("{quota} {period}")))
                .map(|_| dir)
        } else {
            let dir = PathBuf::from("/sys/fs/cgroup/cpu").join(&name);
            std::fs::create_dir(&dir)
                .and_then(|_| std::fs::write(dir.join("cpu.cfs_period_us"), period.to_string()))
                .and_then(|_| std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()))
                .map(|_| dir)
        };
        match made {
            Ok(dir) => Some(CpuQuota { dir }),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI runs as root: {test} must run there, but no CPU cgroup could be made: {e}"
                );
                eprintln!("skipping {test}: cannot make a CPU cgroup ({e}; it needs root)");
                None
            }
        }
    }

    /// A wrapper for [`Agent::start_via`](crate::support::Agent::start_via): the agent's shell joins
    /// the cgroup, then becomes the agent (its threads are born inside).
    pub fn wrapper(&self) -> Vec<String> {
        let procs = self.dir.join("cgroup.procs");
        vec![
            "sh".into(),
            "-c".into(),
            format!("echo $$ > {} && exec \"$@\"", procs.display()),
            "sh".into(),
        ]
    }

    /// CPU seconds the cgroup's processes were held back by the quota so far (v1's and v2's
    /// `throttled_usec`/`throttled_time`), to show that the pressure was real.
    pub fn throttled_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        stat.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                let v: f64 = v.trim().parse().ok()?;
                match k {
                    "throttled_usec" => Some(v / 1e6),
                    "throttled_time" => Some(v / 1e9),
                    _ => None,
                }
            })
            .unwrap_or(0.0)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Its agents are gone (killed or stopped) by now; an empty cgroup can be removed.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
