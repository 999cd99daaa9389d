//! Go tools the tests run, built from the Go module proxy into a cache outside the repo.
//!
//! - Helm (`helm.sh/helm/v4`): the deploy tests render and lint the chart with it, the cluster tests
//!   install, upgrade, roll back, test and uninstall it.
//!
//! Each tool is built once per version into `<cache>/<name>-<version>/`, and `<cache>/bin/<name>`
//! links to the pinned one: the tests run `<cache>/bin/<name>` (`/var/cache/shipper-tools/bin/helm`).

use crate::run;
use std::path::PathBuf;
use std::process::Command;

/// Helm's module and the version the chart is tested with.
const HELM: (&str, &str) = ("helm.sh/helm/v4/cmd/helm", "v4.3.2");

/// Where the tools are kept (`SHIPPER_TOOLS` overrides it; the tests read the same variable).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SHIPPER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/shipper-tools"))
}

/// The pinned Helm, built unless it is there already.
pub fn helm() -> Result<PathBuf, String> {
    go_install("helm", HELM.0, HELM.1)
}

/// `go install module@version` into `<cache>/<name>-<version>/` unless already there, then points
/// `<cache>/bin/<name>` at it. Idempotent; a few minutes the first time.
fn go_install(name: &str, module: &str, version: &str) -> Result<PathBuf, String> {
    let cache = cache_dir();
    let dir = cache.join(format!("{name}-{version}"));
    let exe = dir.join(name);
    if !exe.exists() {
        let go = modern_go()?;
        eprintln!(
            "building {name} {version} from the Go module proxy into {} (a few minutes, once)",
            dir.display()
        );
        run(go_command(&go)
            .args(["install", &format!("{module}@{version}")])
            .env("GOBIN", &dir))
        .map_err(|e| format!("{e}: building {name} needs Go ≥ 1.24 and the Go module proxy"))?;
    }
    let bin = cache.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let link = bin.join(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(link)
}

thread_local! {
    static IN_BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// From now on, the Go builds this thread starts run at the lowest CPU priority (`nice -n 19`):
/// they take only the CPU that the rest leaves idle (the tests, mostly waiting), and slow nothing.
pub fn build_in_background() {
    IN_BACKGROUND.with(|b| b.set(true));
}

/// `go` with the tools' module and build caches (shared by every Go build of the project: Helm and
/// the current Kubernetes), pure Go, and no toolchain download.
pub fn go_command(go: &std::path::Path) -> Command {
    let cache = cache_dir();
    let mut cmd = if IN_BACKGROUND.with(|b| b.get()) {
        let mut nice = Command::new("nice");
        nice.args(["-n", "19"]).arg(go);
        nice
    } else {
        Command::new(go)
    };
    cmd.env("GOPATH", cache.join("gopath"))
        .env("GOMODCACHE", cache.join("gopath/pkg/mod"))
        .env("GOCACHE", cache.join("gocache"))
        .env("GOFLAGS", "-modcacherw")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    cmd
}

/// A Go recent enough for current modules: `go` on PATH, or the upstream install in
/// `/usr/local/go` (Debian's `golang-go` is 1.19, which only the Kubernetes 1.20 build uses).
pub fn modern_go() -> Result<PathBuf, String> {
    let candidates = [PathBuf::from("go"), PathBuf::from("/usr/local/go/bin/go")];
    for go in &candidates {
        let Ok(out) = Command::new(go).args(["env", "GOVERSION"]).output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if minor(&version).is_some_and(|m| m >= 24) {
            return Ok(go.clone());
        }
    }
    Err(format!(
        "no Go ≥ 1.24 found (tried {}): install one from go.dev/dl into /usr/local/go",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `go1.26.8` → 26.
fn minor(version: &str) -> Option<u32> {
    version.strip_prefix("go1.")?.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_versions_are_read() {
        assert_eq!(super::minor("go1.26.8"), Some(26));
        assert_eq!(super::minor("go1.19.8"), Some(19));
        assert_eq!(super::minor("go1.24rc1"), None);
        assert_eq!(super::minor(""), None);
    }
}
