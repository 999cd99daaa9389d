//! Container images without a registry: an OCI image layout (one uncompressed layer, reproducible:
//! sorted names, time 0, owner 0) written to a tarball and imported into containerd's `k8s.io`
//! namespace, where the CRI finds it (pods use `imagePullPolicy: IfNotPresent`/`Never`).
//! - pause: kubelet's sandbox process, `build/pause/linux/pause.c` of the Kubernetes tree, static.
//! - busybox: Debian's busybox-static and its applets, for logger pods.
//! - shipper: the release binary, the libraries `ldd` lists, a CA bundle (what distroless/cc holds),
//!   tagged as the chart's default image so the chart runs unchanged.

use super::{sh, Layout};
use crate::run;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sandbox image kubelet 1.20 and containerd ask for.
pub const PAUSE: &str = "k8s.gcr.io/pause:3.2";
pub const BUSYBOX: &str = "shipper.local/busybox:1";

/// The chart's default image: `image.repository:appVersion` from deploy/helm/shipper.
pub fn shipper_ref(root: &Path) -> Result<String, String> {
    let values = std::fs::read_to_string(root.join("deploy/helm/shipper/values.yaml")).map_err(|e| e.to_string())?;
    let chart = std::fs::read_to_string(root.join("deploy/helm/shipper/Chart.yaml")).map_err(|e| e.to_string())?;
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(key)
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
            .ok_or_else(|| format!("no `{key}` in the chart"))
    };
    Ok(format!(
        "{}:{}",
        field(&values, "repository:")?,
        field(&chart, "appVersion:")?
    ))
}

/// Builds the three images and imports them (again: the agent's image follows the binary).
pub fn build_all(l: &Layout, pause_c: &Path, root: &Path, agent: &Path) -> Result<Vec<String>, String> {
    let dir = l.state.join("images");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut refs = Vec::new();

    let rootfs = dir.join("pause-rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    run(Command::new("gcc")
        .args(["-Os", "-static", "-o"])
        .arg(rootfs.join("pause"))
        .arg(pause_c))?;
    refs.push(import(l, &dir, "pause", PAUSE, &rootfs, &["/pause"], &[])?);

    let rootfs = dir.join("busybox-rootfs");
    for d in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .map_err(|e| format!("/bin/busybox: {e} (install busybox-static)"))?;
    let applets = sh("/bin/busybox --list")?;
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    // Like Docker's busybox: no entrypoint, `sh` by default (a pod's `args` are the command).
    refs.push(import(l, &dir, "busybox", BUSYBOX, &rootfs, &[], &["sh"])?);

    let rootfs = dir.join("shipper-rootfs");
    let bin = rootfs.join("usr/local/bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(rootfs.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::copy(agent, bin.join("shipper")).map_err(|e| format!("{}: {e}", agent.display()))?;
    for lib in libraries(agent)? {
        let to = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
        // The loader's path is often a symlink: copy what it points at.
        std::fs::copy(&lib, &to).map_err(|e| format!("{}: {e}", lib.display()))?;
    }
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.exists() {
        std::fs::create_dir_all(rootfs.join("etc/ssl/certs")).map_err(|e| e.to_string())?;
        std::fs::copy(ca, rootfs.join("etc/ssl/certs/ca-certificates.crt")).map_err(|e| e.to_string())?;
    }
    let reference = shipper_ref(root)?;
    let cmd = ["run", "--config", "/etc/shipper/shipper.yaml"];
    refs.push(import(
        l,
        &dir,
        "shipper",
        &reference,
        &rootfs,
        &["/usr/local/bin/shipper"],
        &cmd,
    )?);
    Ok(refs)
}

/// The shared libraries `ldd` lists for `bin` (absolute paths).
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, String> {
    let out = sh(&format!("ldd '{}'", bin.display()))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split("=>").nth(1).unwrap_or(l).split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// `dir`'s content as the tarball `to`, reproducibly (sorted names, time 0, owner 0).
fn tar(to: &Path, dir: &Path) -> Result<(), String> {
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
        ])
        .arg(to)
        .arg("-C")
        .arg(dir)
        .arg("."))
}

fn sha256(path: &Path) -> Result<String, String> {
    let out = sh(&format!("sha256sum '{}'", path.display()))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| format!("sha256sum {}: no output", path.display()))
}

/// Writes `content` as a blob of the layout; returns its digest and size.
fn blob(layout: &Path, file: &Path) -> Result<(String, u64), String> {
    let digest = sha256(file)?;
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let to = layout.join("blobs/sha256").join(&digest);
    std::fs::rename(file, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    Ok((format!("sha256:{digest}"), size))
}

fn import(
    l: &Layout,
    dir: &Path,
    name: &str,
    reference: &str,
    rootfs: &Path,
    entrypoint: &[&str],
    cmd: &[&str],
) -> Result<String, String> {
    let layout = dir.join(format!("{name}-oci"));
    std::fs::create_dir_all(layout.join("blobs/sha256")).map_err(|e| e.to_string())?;
    let layer = dir.join(format!("{name}-layer.tar"));
    tar(&layer, rootfs)?;
    let (layer_digest, layer_size) = blob(&layout, &layer)?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let write = |file: &str, value: &serde_json::Value| -> Result<PathBuf, String> {
        let p = dir.join(file);
        std::fs::write(&p, serde_json::to_vec(value).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        Ok(p)
    };
    let (config_digest, config_size) = blob(&layout, &write(&format!("{name}-config.json"), &config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = blob(&layout, &write(&format!("{name}-manifest.json"), &manifest)?)?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| e.to_string())?;
    let tarball = dir.join(format!("{name}.oci.tar"));
    tar(&tarball, &layout)?;
    run(Command::new("ctr")
        .arg("--address")
        .arg(l.containerd_sock())
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&tarball))
    .map_err(|e| format!("{e}: importing {reference} into containerd failed"))?;
    Ok(reference.to_string())
}
