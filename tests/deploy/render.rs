//! Rendering the chart with Helm itself (`helm template`, `helm lint`, the version `cargo xtask setup`
//! builds from the Go module proxy), reading manifests into k8s-openapi's types strictly, and checking
//! the generated agent configuration with the real binary.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/shipper");
pub const BIN: &str = env!("CARGO_BIN_EXE_shipper");

/// A positions file as `shipper positions` prints it (its own format is not JSON).
pub fn positions(file: &Path) -> Value {
    let o = Command::new(BIN)
        .arg("positions")
        .arg(file)
        .output()
        .expect("run shipper positions");
    assert!(
        o.status.success(),
        "shipper positions {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("shipper positions prints JSON")
}

/// The Helm that `cargo xtask setup` installs (`$SHIPPER_TOOLS/bin/helm`, by default under
/// `/var/cache/shipper-tools`).
pub fn helm_bin() -> PathBuf {
    let tools = std::env::var_os("SHIPPER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/shipper-tools"));
    let helm = tools.join("bin/helm");
    assert!(
        helm.exists(),
        "{} is missing: run `cargo xtask setup` (it builds the pinned Helm from the Go module proxy)",
        helm.display()
    );
    helm
}

/// `helm <args>` with its own scratch home (no repositories, no plugins, no kubeconfig of the user).
pub fn helm(args: &[&str]) -> Output {
    helm_with(None, args)
}

/// `helm <args>` with its own scratch home, reaching the cluster of `kubeconfig` (none: no cluster).
pub fn helm_with(kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig.map_or_else(|| home.path().join("no-kubeconfig"), Path::to_path_buf);
    Command::new(helm_bin())
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run helm")
}

/// A values file holding `values`, for `-f`.
pub fn values_file(values: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), values).unwrap();
    file
}

/// The chart rendered by `helm template shipper deploy/helm/shipper -n monitoring --skip-tests -f
/// <values>` (what is applied: the plain manifests, an ArgoCD sync, which runs no Helm test hooks):
/// the YAML stream, or with `notes` the NOTES.txt that `helm install` prints.
pub fn render_text(values: Option<&str>, notes: bool) -> String {
    try_render(values, notes).unwrap_or_else(|e| panic!("rendering the chart failed: {e}"))
}

/// Renders the chart; Helm's error when it refuses to.
pub fn try_render(values: Option<&str>, notes: bool) -> Result<String, String> {
    try_render_with(values, notes, if notes { &[] } else { &["--skip-tests"] })
}

/// Renders the chart with more of `helm template`'s flags.
pub fn try_render_with(values: Option<&str>, notes: bool, flags: &[&str]) -> Result<String, String> {
    let file = values.map(values_file);
    let mut args = if notes {
        vec!["install", "shipper", CHART, "-n", "monitoring", "--dry-run=client"]
    } else {
        vec!["template", "shipper", CHART, "-n", "monitoring"]
    };
    args.extend(flags);
    if let Some(f) = &file {
        args.extend(["-f", f.path().to_str().unwrap()]);
    }
    let out = helm(&args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    if !notes {
        return Ok(text);
    }
    let (_, notes) = text
        .split_once("\nNOTES:\n")
        .ok_or("helm install --dry-run printed no NOTES")?;
    Ok(notes.to_owned())
}

/// `helm lint --strict deploy/helm/shipper -f <values>`: Helm's output when it finds anything.
pub fn lint(values: Option<&str>) -> Result<(), String> {
    let file = values.map(values_file);
    let mut args = vec!["lint", "--strict", CHART];
    if let Some(f) = &file {
        args.extend(["-f", f.path().to_str().unwrap()]);
    }
    let out = helm(&args);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the recommendation of an icon is tolerated (the chart is not published to a hub).
    let findings: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with('[') && !l.contains("icon is recommended"))
        .collect();
    if out.status.success() && findings.is_empty() {
        Ok(())
    } else {
        Err(said)
    }
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
            "Pod" => drop(strict::<core::Pod>(o)),
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

/// Whether `program` is here; outside CI a test skips itself without it (saying why). Under CI
/// `cargo xtask setup` installs it, so a missing one fails.
pub fn have(program: &str, test: &str) -> bool {
    if Command::new(program).arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{program} is missing");
    eprintln!("skipping {test}: {program} is not installed (cargo xtask setup installs it)");
    false
}
