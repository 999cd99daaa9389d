//! Rendering the chart with `helm-render` (Go's text/template + sprig, built from Debian's packages by
//! `cargo xtask setup`), reading manifests into k8s-openapi's types strictly, and checking the
//! generated agent configuration with the real binary.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/shipper");
pub const BIN: &str = env!("CARGO_BIN_EXE_shipper");

/// Builds `tests/deploy/helm-render` once per test run (GOPATH mode against Debian's Go libraries).
fn renderer() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(ROOT).join("target"));
        let dir = target.join("deploy-tools");
        let exe = dir.join("helm-render");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&exe)
            .arg(".")
            .current_dir(Path::new(ROOT).join("tests/deploy/helm-render"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", dir.join("gocache"))
            .env("GOFLAGS", "")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `go` ({e}): run `cargo xtask setup` (installs golang-go and sprig)")
            });
        assert!(
            out.status.success(),
            "building helm-render failed (run `cargo xtask setup`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    })
}

/// The chart rendered like `helm template shipper deploy/helm/shipper -n monitoring -f <values>`:
/// the YAML stream, or NOTES.txt with `notes`.
pub fn render_text(values: Option<&str>, notes: bool) -> String {
    render_as(values, notes, "Helm")
}

/// `render_text` with `.Release.Service` set to `service` (the plain manifests are not Helm's).
pub fn render_as(values: Option<&str>, notes: bool, service: &str) -> String {
    try_render(values, notes, service).unwrap_or_else(|e| panic!("rendering the chart failed: {e}"))
}

/// Renders the chart; the renderer's error (as `helm template` would print it) when it fails.
pub fn try_render(values: Option<&str>, notes: bool, service: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(renderer());
    cmd.args([
        "-chart",
        CHART,
        "-name",
        "shipper",
        "-namespace",
        "monitoring",
        "-service",
        service,
    ]);
    if let Some(v) = values {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, v).unwrap();
        cmd.arg("-f").arg(file);
    }
    if notes {
        cmd.arg("-notes");
    }
    let out = cmd.output().expect("run helm-render");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

/// Every non-empty document of a YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("a valid YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart's objects with `values` (YAML) over the defaults.
pub fn render(values: Option<&str>) -> Vec<Value> {
    documents(&render_text(values, false))
}

/// The one object of `kind` (and `name`, if given).
pub fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut found = objects.iter().filter(|o| o["kind"] == kind);
    let first = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(found.next().is_none(), "more than one {kind}");
    first
}

/// Reads `object` as the k8s-openapi type `T` and back: a misspelt or misplaced field (which the
/// API server would reject or silently drop) makes the round trip differ.
pub fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> T {
    let typed: T =
        serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{} does not parse: {e}", object["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(path) = difference(object, &back, String::new()) {
        panic!(
            "{} {}: `{path}` is not a field of its type (misspelt or misplaced)",
            object["kind"], object["metadata"]["name"]
        );
    }
    typed
}

/// The path of the first value of `a` that `b` lacks or holds differently.
fn difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| difference(v, y.get(k).unwrap_or(&Value::Null), format!("{path}.{k}"))),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| difference(v, w, format!("{path}[{i}]"))),
        _ => (a != b).then_some(path),
    }
}

/// Reads every object with its k8s-openapi type (objects of CRDs are only checked for kind).
pub fn strict_all(objects: &[Value]) {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac};
    for o in objects {
        match o["kind"].as_str().unwrap_or_default() {
            "DaemonSet" => drop(strict::<apps::DaemonSet>(o)),
            "ConfigMap" => drop(strict::<core::ConfigMap>(o)),
            "ServiceAccount" => drop(strict::<core::ServiceAccount>(o)),
            "Service" => drop(strict::<core::Service>(o)),
            "Namespace" => drop(strict::<core::Namespace>(o)),
            "ClusterRole" => drop(strict::<rbac::ClusterRole>(o)),
            "ClusterRoleBinding" => drop(strict::<rbac::ClusterRoleBinding>(o)),
            "ServiceMonitor" => assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1"),
            other => panic!("unexpected kind {other}"),
        }
    }
}

/// Runs `shipper check` on the ConfigMap's `shipper.yaml` as the pod would see it: the Secret
/// volumes' files are created (under a scratch root) where the DaemonSet mounts them, and the
/// config's paths under `/etc/shipper/secrets` point there. Returns the checked config as JSON.
pub fn check_config(objects: &[Value]) -> Value {
    let config = find(objects, "ConfigMap")["data"]["shipper.yaml"]
        .as_str()
        .expect("shipper.yaml in the ConfigMap")
        .to_owned();
    let root = tempfile::tempdir().unwrap();
    let pod = &find(objects, "DaemonSet")["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    for volume in pod["volumes"].as_array().unwrap() {
        let Some(secret) = volume.get("secret") else { continue };
        let mount = mounts
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("secret volume {} is not mounted", volume["name"]));
        let dir = root
            .path()
            .join(mount["mountPath"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let items: Vec<String> = match secret["items"].as_array() {
            Some(items) => items.iter().map(|i| i["path"].as_str().unwrap().to_owned()).collect(),
            None => vec!["ca.crt".into()],
        };
        for item in items {
            let content = if item.ends_with(".crt") { TEST_CA } else { "s3cret" };
            std::fs::write(dir.join(item), content).unwrap();
        }
    }
    let here = root.path().join("etc/shipper/secrets");
    let file = root.path().join("shipper.yaml");
    std::fs::write(
        &file,
        config.replace("/etc/shipper/secrets", &here.display().to_string()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shipper check refuses the chart's config:\n{config}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_str(&config).unwrap()
}

/// A CA certificate for `ca_file` (any valid PEM certificate; the check only parses it).
const TEST_CA: &str = include_str!("test-ca.pem");
