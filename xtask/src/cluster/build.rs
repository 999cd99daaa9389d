//! Kubernetes 1.20.2 from Debian's `kubernetes` source package, built once into the cache.
//!
//! No registry here carries Kubernetes binaries, but Debian's source package holds the whole tree
//! with its `vendor/`. It builds in GOPATH mode with Debian's Go 1.19 (module mode refuses the tree),
//! after two repairs: the generated OpenAPI definitions the tarball lacks (`make gen_openapi`), and the
//! vendored reflect2 1.0.1 replaced by Debian's 1.0.2 (with Go ≥ 1.18 the old one makes the API server
//! panic on every JSON body holding a map). See `../shared/kubernetes-from-debian.md`.

use super::{apt_install, cache_dir, sh};
use crate::run;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const VERSION: &str = "1.20.2";
/// The binaries `up` runs, and a kubectl of the same version; kube-proxy is not needed (pods that reach the API server use the host's
/// network here).
pub const BINARIES: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
];
/// Changing how the binaries are built changes this, and the cache builds them again.
const RECIPE: &str = "1.20.2 gopath go1.19 cgo0 reflect2-1.0.2 gen_openapi v1";
/// Debian's Go 1.19 (`golang-go`), by its full path: the tree builds in GOPATH mode with it, and
/// the `go` first on PATH may be a newer one.
const GO_1_19: &str = "/usr/lib/go-1.19/bin";

/// What building needs from Debian (`rsync` for `make gen_openapi`).
const BUILD_PACKAGES: [&str; 4] = ["golang-go", "golang-github-modern-go-reflect2-dev", "rsync", "make"];

/// Where the built binaries are kept (built or not).
pub fn bin_dir() -> PathBuf {
    cache_dir().join(format!("kubernetes-{VERSION}/bin"))
}

/// The cached binaries' directory, building them first unless a build with the same recipe is there.
pub fn binaries() -> Result<PathBuf, String> {
    let cache = cache_dir();
    let bin = bin_dir();
    let stamp = bin.join(".recipe");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == RECIPE) && BINARIES.iter().all(|b| bin.join(b).exists()) {
        return Ok(bin);
    }
    apt_install(&BUILD_PACKAGES)?;
    let tree = source_tree(&cache)?;
    eprintln!(
        "building Kubernetes {VERSION} ({}) into {} — about 7 minutes on 2 cores, once per machine",
        BINARIES.join(", "),
        bin.display()
    );
    let gopath = cache.join("gopath");
    // `make gen_openapi` runs `go` from PATH: Go 1.19's first.
    let path = format!("{GO_1_19}:{}", std::env::var("PATH").unwrap_or_default());
    let go = |args: &[&str]| {
        let mut cmd = Command::new(format!("{GO_1_19}/go"));
        cmd.args(args)
            .env("PATH", &path)
            .current_dir(&tree)
            .env("GOPATH", &gopath)
            .env("GO111MODULE", "off")
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "")
            .env("GOCACHE", cache.join("gocache"));
        cmd
    };
    let generated = tree.join("pkg/generated/openapi/zz_generated.openapi.go");
    if !generated.exists() {
        run(Command::new("make")
            .arg("gen_openapi")
            .current_dir(&tree)
            .env("PATH", &path)
            .env("GOPATH", &gopath)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", cache.join("gocache")))
        .map_err(|e| format!("{e}: generating the OpenAPI definitions in {} failed", tree.display()))?;
    }
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut ldflags = String::from("-s -w");
    for pkg in [
        "k8s.io/kubernetes/vendor/k8s.io/component-base/version",
        "k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version",
    ] {
        let (major, minor) = VERSION.split_once('.').unwrap_or(("1", "20"));
        let minor = minor.split('.').next().unwrap_or("20");
        ldflags += &format!(
            " -X {pkg}.gitVersion=v{VERSION} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
        );
    }
    for name in BINARIES {
        let out = bin.join(name);
        let out = out.to_str().ok_or("cache path is not UTF-8")?;
        run(&mut go(&[
            "build",
            "-o",
            out,
            "-ldflags",
            &ldflags,
            &format!("./cmd/{name}"),
        ]))
        .map_err(|e| format!("{e}: building {name} in {} failed", tree.display()))?;
    }
    std::fs::write(&stamp, RECIPE).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}

/// `$GOPATH/src/k8s.io/kubernetes`: Debian's tarball unpacked, reflect2 swapped. Idempotent.
fn source_tree(cache: &Path) -> Result<PathBuf, String> {
    let tree = cache.join("gopath/src/k8s.io/kubernetes");
    let unpacked = tree.join(".unpacked");
    if !unpacked.exists() {
        let tarball = source_tarball(cache)?;
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
        run(Command::new("tar")
            .args(["xzf"])
            .arg(&tarball)
            .args(["--strip-components=1", "-C"])
            .arg(&tree))?;
        std::fs::write(&unpacked, "").map_err(|e| format!("{}: {e}", unpacked.display()))?;
    }
    let reflect2 = tree.join("vendor/github.com/modern-go/reflect2");
    let debian = Path::new("/usr/share/gocode/src/github.com/modern-go/reflect2");
    if !reflect2.join("go_above_118.go").exists() {
        if !debian.join("go_above_118.go").exists() {
            return Err(format!(
                "{} is not reflect2 1.0.2: install golang-github-modern-go-reflect2-dev",
                debian.display()
            ));
        }
        let _ = std::fs::remove_dir_all(&reflect2);
        // Copies, not a symlink: the tree must stay whole if the package is removed.
        run(Command::new("cp").arg("-rL").arg(debian).arg(&reflect2))?;
    }
    Ok(tree)
}

/// Debian's `kubernetes` orig tarball, downloaded with `apt-get source` into the cache once (adds a
/// `deb-src` entry for the machine's Debian mirror if there is none).
fn source_tarball(cache: &Path) -> Result<PathBuf, String> {
    let src = cache.join("src");
    let find = || {
        std::fs::read_dir(&src).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".orig.tar.gz") && p.to_string_lossy().contains("kubernetes_"))
        })
    };
    if let Some(t) = find() {
        return Ok(t);
    }
    std::fs::create_dir_all(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    ensure_deb_src()?;
    run(Command::new("apt-get")
        .args(["source", "--download-only", "kubernetes"])
        .current_dir(&src))
    .map_err(|e| {
        format!("{e}: downloading Debian's kubernetes source package failed (is the Debian mirror reachable?)")
    })?;
    find().ok_or_else(|| format!("apt-get source left no kubernetes_*.orig.tar.gz in {}", src.display()))
}

/// A `deb-src` source for bookworm beside the machine's `deb` one, then `apt-get update`.
fn ensure_deb_src() -> Result<(), String> {
    // grep exits 2 when one of the paths is missing (no /etc/apt/sources.list on Debian 12), matches or not.
    let listed = sh("grep -rlsE '^(Types: *deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ || true")?;
    if !listed.trim().is_empty() {
        return Ok(());
    }
    let uri = sh("grep -hsm1 '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}'")?;
    let uri = if uri.trim().is_empty() {
        "http://deb.debian.org/debian"
    } else {
        uri.trim()
    };
    let entry = format!(
        "# Added by `cargo xtask cluster up`: Kubernetes is built from Debian's source package.\nTypes: deb-src\nURIs: {uri}\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    let path = "/etc/apt/sources.list.d/shipper-deb-src.sources";
    std::fs::write(path, entry).map_err(|e| format!("{path}: {e} (run as root)"))?;
    run(Command::new("apt-get").args(["update", "-q"]))
}
