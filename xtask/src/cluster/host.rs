//! What `up` changes on the host, recorded before it starts anything, and undone by `down` once every
//! process it started is gone: directories it created, mounts (pod volumes, container root
//! filesystems, network namespaces), cgroups (kubelet's `kubepods` tree), iptables rules and chains,
//! sysctls kubelet and the CNI bridge set, and the bridge link.

use super::{sh, Layout};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Directories the cluster may create; those that did not exist before `up` are removed by `down`.
pub const DIRS: [&str; 9] = [
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/shipper",
    "/run/netns",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/run/shipper-cluster",
];
/// Sysctls kubelet (`protectKernelDefaults: false`) and the CNI bridge plugin may set.
const SYSCTLS: [&str; 7] = [
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];
const TABLES: [&str; 3] = ["filter", "nat", "mangle"];
/// Mounts below these are the cluster's (pod volumes, container root filesystems, netns).
fn mount_prefixes(l: &Layout) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "/var/lib/kubelet",
        "/run/netns",
        "/var/run/netns",
        "/run/shipper-cluster",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    v.push(l.state.clone());
    v
}

#[derive(Serialize, Deserialize, Default)]
pub struct Before {
    dirs: BTreeMap<String, bool>,
    mounts: BTreeSet<String>,
    /// Controller directory → its children's names.
    cgroups: BTreeMap<String, BTreeSet<String>>,
    /// Table → `iptables-save` lines (chains and rules).
    iptables: BTreeMap<String, BTreeSet<String>>,
    sysctls: BTreeMap<String, String>,
    links: BTreeSet<String>,
}

/// Records the host as it is, unless a record of an earlier `up` not yet brought down exists.
pub fn record(l: &Layout) -> Result<(), String> {
    let path = l.state.join("host-before.json");
    if path.exists() {
        return Ok(());
    }
    let before = Before {
        dirs: DIRS.iter().map(|d| (d.to_string(), Path::new(d).exists())).collect(),
        mounts: mounts()?,
        cgroups: cgroups(),
        iptables: iptables(),
        sysctls: SYSCTLS
            .iter()
            .filter_map(|s| Some((s.to_string(), sysctl(s)?)))
            .collect(),
        links: links(),
    };
    let state_existed = l.state.exists();
    std::fs::create_dir_all(&l.state).map_err(|e| format!("{}: {e}", l.state.display()))?;
    let mut before = before;
    before.dirs.insert(l.state.display().to_string(), state_existed);
    let text = serde_json::to_string_pretty(&before).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Undoes what changed since `record` (every process must be stopped first). Reports what it could
/// not undo instead of stopping at the first failure.
pub fn restore(l: &Layout) -> Result<(), String> {
    let path = l.state.join("host-before.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let before: Before = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut failed = Vec::new();
    // Mounts, deepest first.
    let prefixes = mount_prefixes(l);
    let mut new: Vec<String> = mounts()?
        .into_iter()
        .filter(|m| !before.mounts.contains(m) && prefixes.iter().any(|p| Path::new(m).starts_with(p)))
        .collect();
    new.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
    for m in &new {
        if sh(&format!("umount '{m}' 2>/dev/null || umount -l '{m}'")).is_err() {
            failed.push(format!("unmount {m}"));
        }
    }
    // Cgroups: what kubelet and the containers created, children first.
    for (controller, children) in cgroups() {
        let old = before.cgroups.get(&controller).cloned().unwrap_or_default();
        for child in children.difference(&old) {
            let dir = Path::new(&controller).join(child);
            let out = sh(&format!(
                "find '{}' -depth -type d -exec rmdir {{}} \\; 2>&1 ; test ! -e '{}'",
                dir.display(),
                dir.display()
            ));
            if out.is_err() {
                failed.push(format!("remove cgroup {}", dir.display()));
            }
        }
    }
    // iptables: new rules first, then new chains.
    for (table, lines) in iptables() {
        let old = before.iptables.get(&table).cloned().unwrap_or_default();
        for rule in lines.difference(&old).filter(|l| l.starts_with("-A ")) {
            if sh(&format!("iptables -w -t {table} -D {}", &rule[3..])).is_err() {
                failed.push(format!("iptables -t {table} {rule}"));
            }
        }
        for chain in lines.difference(&old).filter(|l| l.starts_with(':')) {
            let name = chain[1..].split_whitespace().next().unwrap_or_default();
            if sh(&format!(
                "iptables -w -t {table} -F {name} && iptables -w -t {table} -X {name}"
            ))
            .is_err()
            {
                failed.push(format!("iptables -t {table} -X {name}"));
            }
        }
    }
    for (name, value) in &before.sysctls {
        if sysctl(name).as_deref() != Some(value) && sh(&format!("sysctl -qw '{name}={value}'")).is_err() {
            failed.push(format!("sysctl {name}={value}"));
        }
    }
    for link in links().difference(&before.links) {
        if (link == super::config::BRIDGE || link.starts_with("veth")) && sh(&format!("ip link del '{link}'")).is_err()
        {
            failed.push(format!("ip link del {link}"));
        }
    }
    // Directories last (the record lives in the state directory).
    for (dir, existed) in before.dirs.iter().rev() {
        if !existed && Path::new(dir).exists() && sh(&format!("rm -rf --one-file-system '{dir}'")).is_err() {
            failed.push(format!("rm -rf {dir}"));
        }
    }
    if Path::new(&l.state).exists() {
        let _ = std::fs::remove_file(&path);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "could not undo: {} (see `mount`, `iptables-save`, /sys/fs/cgroup)",
            failed.join("; ")
        ))
    }
}

/// Mount points, unescaped (`\040` is a space in mountinfo).
fn mounts() -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .collect())
}

fn cgroups() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for c in controllers.flatten().filter(|e| e.path().is_dir()) {
        let children = std::fs::read_dir(c.path())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(c.path().display().to_string(), children);
    }
    out
}

fn iptables() -> BTreeMap<String, BTreeSet<String>> {
    TABLES
        .iter()
        .map(|t| {
            let lines = sh(&format!("iptables-save -t {t} 2>/dev/null"))
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    l.starts_with("-A ")
                        || (l.starts_with(':')
                            && !l.starts_with(":INPUT")
                            && !l.starts_with(":OUTPUT")
                            && !l.starts_with(":FORWARD")
                            && !l.starts_with(":PREROUTING")
                            && !l.starts_with(":POSTROUTING"))
                })
                // Chain counters change; keep the name only.
                .map(|l| {
                    if l.starts_with(':') {
                        l.split_whitespace().next().unwrap_or(l).to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            (t.to_string(), lines)
        })
        .collect()
}

fn sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name.replace('.', "/")))
        .ok()
        .map(|s| s.trim().to_string())
}

fn links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
