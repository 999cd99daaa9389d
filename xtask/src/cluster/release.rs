//! Which Kubernetes the cluster runs: 1.20.2 from Debian's source package (`build`), or a current
//! release from the Go module proxy (built here, through the Go module in `xtask/kubernetes`).
//! `cargo xtask cluster up --version 1.34|1.20`; `up` records the release in its state so `down`,
//! `status`, `restart` and `nodes` use the same binaries.

use super::{build, cache_dir, Layout};
use crate::run;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Kubernetes release the cluster can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// 1.20.2, from Debian's `kubernetes` source package (GOPATH mode, Debian's Go 1.19).
    Debian,
    /// A current release, from the Go module proxy (module mode, Go ≥ 1.24).
    Current,
}

/// The current release's version: `xtask/kubernetes/go.mod` requires it.
pub const CURRENT: &str = "1.34.4";
/// The release `up` starts without `--version`.
pub const DEFAULT: Release = Release::Current;

impl Release {
    pub fn parse(v: &str) -> Result<Release, String> {
        let v = v.trim_start_matches('v');
        if v == "1.20" || v == build::VERSION {
            Ok(Release::Debian)
        } else if v == "1.34" || v == CURRENT {
            Ok(Release::Current)
        } else {
            Err(format!(
                "Kubernetes {v} is not one this machine builds: --version 1.34 ({CURRENT}, from the Go module proxy) or 1.20 ({}, from Debian's source)",
                build::VERSION
            ))
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Release::Debian => build::VERSION,
            Release::Current => CURRENT,
        }
    }

    /// Whether flags and behaviours that Kubernetes dropped in 1.24 still apply (`--insecure-port`,
    /// `--port`, `--container-runtime`, a token Secret per ServiceAccount).
    pub fn before_1_24(self) -> bool {
        self == Release::Debian
    }

    /// The built binaries' directory (built or not).
    pub fn bin_dir(self) -> PathBuf {
        cache_dir().join(format!("kubernetes-{}/bin", self.version()))
    }

    /// The binaries, built first unless there.
    pub fn binaries(self) -> Result<PathBuf, String> {
        match self {
            Release::Debian => build::binaries(),
            Release::Current => current_binaries(),
        }
    }

    /// kubelet's sandbox program's source, from the release's tree.
    pub fn pause_c(self) -> Result<PathBuf, String> {
        let tree = match self {
            Release::Debian => cache_dir().join("gopath/src/k8s.io/kubernetes"),
            Release::Current => module_dir()?,
        };
        Ok(tree.join("build/pause/linux/pause.c"))
    }

    /// The release the cluster on this machine was started with (recorded by `up`).
    pub fn running(l: &Layout) -> Release {
        std::fs::read_to_string(l.state.join("release"))
            .ok()
            .and_then(|v| Release::parse(v.trim()).ok())
            .unwrap_or(DEFAULT)
    }

    pub fn record(self, l: &Layout) -> Result<(), String> {
        let path = l.state.join("release");
        std::fs::create_dir_all(&l.state).map_err(|e| format!("{}: {e}", l.state.display()))?;
        std::fs::write(&path, self.version()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The Go module that builds the current release.
fn module() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes")
}

/// `go` in the module, with the tools' Go caches (`/var/cache/shipper-tools`).
fn go(args: &[&str]) -> Result<Command, String> {
    let mut cmd = crate::tools::go_command(&crate::tools::modern_go()?);
    cmd.args(args).current_dir(module());
    Ok(cmd)
}

/// k8s.io/kubernetes's directory in the module cache (downloaded first if need be).
fn module_dir() -> Result<PathBuf, String> {
    let out = go(&["list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"])?
        .output()
        .map_err(|e| format!("go list: {e}"))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        let _ = run(&mut go(&["mod", "download", "k8s.io/kubernetes"])?);
        let out = go(&["list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"])?
            .output()
            .map_err(|e| format!("go list: {e}"))?;
        return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    Ok(PathBuf::from(dir))
}

/// Builds the current release's binaries into the cache unless a build of the same module is
/// there (the stamp holds go.mod and go.sum).
fn current_binaries() -> Result<PathBuf, String> {
    let bin = Release::Current.bin_dir();
    let stamp = bin.join(".recipe");
    let read = |f: &str| std::fs::read_to_string(module().join(f)).map_err(|e| format!("xtask/kubernetes/{f}: {e}"));
    let recipe = format!("{}{}-s -w trimpath cgo0 v1", read("go.mod")?, read("go.sum")?);
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == recipe)
        && build::BINARIES.iter().all(|b| bin.join(b).exists())
    {
        return Ok(bin);
    }
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    eprintln!(
        "building Kubernetes {CURRENT} ({}) from the Go module proxy into {} — about 15 minutes on 2 cores, once per machine",
        build::BINARIES.join(", "),
        bin.display()
    );
    let (major, minor) = CURRENT.split_once('.').unwrap_or(("1", "34"));
    let minor = minor.split('.').next().unwrap_or(minor);
    let mut ldflags = String::from("-s -w");
    for pkg in ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"] {
        ldflags += &format!(
            " -X {pkg}.gitVersion=v{CURRENT} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
        );
    }
    let out = format!("{}/", bin.display());
    let mut args = vec!["build", "-trimpath", "-ldflags", &ldflags, "-o", &out];
    let packages: Vec<String> = build::BINARIES
        .iter()
        .map(|b| format!("k8s.io/kubernetes/cmd/{b}"))
        .collect();
    args.extend(packages.iter().map(String::as_str));
    run(&mut go(&args)?).map_err(|e| format!("{e}: building Kubernetes {CURRENT} in {} failed", module().display()))?;
    std::fs::write(&stamp, recipe).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::Release;

    #[test]
    fn versions_name_a_release() {
        assert_eq!(Release::parse("1.34"), Ok(Release::Current));
        assert_eq!(Release::parse("v1.34.4"), Ok(Release::Current));
        assert_eq!(Release::parse("1.20"), Ok(Release::Debian));
        assert_eq!(Release::parse("1.20.2"), Ok(Release::Debian));
        let err = Release::parse("1.29").unwrap_err();
        assert!(err.contains("--version 1.34") && err.contains("1.20"), "{err}");
    }

    #[test]
    fn the_go_module_requires_the_current_release() {
        let go_mod = std::fs::read_to_string(super::module().join("go.mod")).unwrap();
        assert!(
            go_mod.contains(&format!("require k8s.io/kubernetes v{}", super::CURRENT)),
            "{go_mod}"
        );
        let staging = format!("=> k8s.io/api v0.{}", &super::CURRENT[2..]);
        assert!(
            go_mod.contains(&staging),
            "each staging module replaced by its release: {go_mod}"
        );
    }
}
