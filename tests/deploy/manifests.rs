//! The plain manifests (`deploy/kubernetes`) are the chart rendered with its defaults, so they cannot
//! drift from it; `SHIPPER_UPDATE_MANIFESTS=1 cargo test -p shipper --test deploy manifests` rewrites them.

use crate::helm::assert_deployable;
use crate::render::{documents, render_text, ROOT};
use std::path::Path;

const HEADER: &str = "# Generated from deploy/helm/shipper with its default values (namespace monitoring):\n# SHIPPER_UPDATE_MANIFESTS=1 cargo test -p shipper --test deploy manifests\n";

const MANAGED_BY_HELM: &str = "app.kubernetes.io/managed-by: Helm";

#[test]
fn plain_manifests_are_the_chart_with_its_defaults() {
    let file = Path::new(ROOT).join("deploy/kubernetes/shipper.yaml");
    // Applied with kubectl, not managed by Helm: the one label that says so differs.
    let rendered = render_text(None, false).replace(MANAGED_BY_HELM, "app.kubernetes.io/managed-by: kubectl");
    assert!(
        !rendered.contains("Helm"),
        "the chart names Helm elsewhere than in {MANAGED_BY_HELM}"
    );
    let expected = format!("{HEADER}{rendered}");
    if std::env::var_os("SHIPPER_UPDATE_MANIFESTS").is_some() {
        std::fs::write(&file, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == expected,
        "{} differs from the chart rendered with its defaults: rerun with SHIPPER_UPDATE_MANIFESTS=1",
        file.display()
    );
    let objects = documents(&committed);
    assert_deployable(&objects);
    let managed = &objects[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"];
    assert_eq!(managed, "kubectl");
}

#[test]
fn kustomization_lists_the_namespace_and_the_manifests() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let k: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(k["kind"], "Kustomization");
    assert_eq!(k["namespace"], "monitoring");
    let resources: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(resources, ["namespace.yaml", "shipper.yaml"]);
    let ns = documents(&std::fs::read_to_string(dir.join("namespace.yaml")).unwrap());
    crate::render::strict_all(&ns);
    assert_eq!(ns[0]["metadata"]["name"], "monitoring");
}
