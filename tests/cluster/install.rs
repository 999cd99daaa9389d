//! What users install, given to a real API server: the chart with its defaults, the chart with the
//! ArgoCD Application's values, and `deploy/kubernetes` (`kubectl apply -k`) — each first as a
//! server-side dry run, then applied for real. Every object must be accepted (admission, validation,
//! RBAC escalation checks, the priority class).

use crate::kube::{cluster, NAMESPACE};
use crate::render::{documents, render_text, ROOT};
use serde_json::Value;
use std::path::Path;

/// The Application's `spec.source.helm.valuesObject`, as a values file.
pub fn argocd_values() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/shipper.yaml")).unwrap();
    let app: Value = serde_yaml_ng::from_str(&text).unwrap();
    app["spec"]["source"]["helm"]["valuesObject"].clone()
}

/// `kind/name` of each object, as `kubectl … -o name` prints them (`daemonset.apps/shipper`).
fn names(objects: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objects
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap().to_lowercase();
            let group = o["apiVersion"]
                .as_str()
                .unwrap()
                .rsplit_once('/')
                .map(|(g, _)| g.to_owned());
            let kind = match group {
                Some(g) => format!("{kind}.{g}"),
                None => kind,
            };
            format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn sorted_lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect();
    v.sort();
    v
}

/// Dry run, then for real; both must name every object.
fn accepted(what: &str, objects: &[Value], apply: impl Fn(&[&str]) -> Result<String, String>) {
    let want = names(objects);
    for args in [
        &["apply", "--server-side", "--dry-run=server", "-o", "name"][..],
        &["apply", "-o", "name"][..],
    ] {
        let out = apply(args).unwrap_or_else(|e| panic!("{what}: `kubectl {}` refused: {e}", args.join(" ")));
        assert_eq!(
            sorted_lines(&out),
            want,
            "{what}: `kubectl {}` did not accept every object",
            args.join(" ")
        );
    }
}

#[test]
fn the_chart_and_the_manifests_are_accepted_by_a_real_api_server() {
    let Some((c, _lock)) = cluster() else { return };
    // As `helm install --create-namespace` and ArgoCD's CreateNamespace=true do.
    c.ensure_namespace();

    let defaults = render_text(None, false);
    accepted("the chart with its defaults", &documents(&defaults), |args| {
        c.with_stdin(args, &defaults)
    });

    let values = serde_yaml_ng::to_string(&argocd_values()).unwrap();
    let argocd = render_text(Some(&values), false);
    let objects = documents(&argocd);
    let pod = &objects.iter().find(|o| o["kind"] == "DaemonSet").unwrap()["spec"]["template"]["spec"];
    assert_eq!(
        pod["priorityClassName"], "system-node-critical",
        "the Application's values rendered"
    );
    accepted("the chart with the ArgoCD Application's values", &objects, |args| {
        c.with_stdin(args, &argocd)
    });
    // The API server stored what was sent: the DaemonSet carries the Application's priority class.
    let ds = c.json(&["get", "daemonset", "shipper", "-n", NAMESPACE]);
    assert_eq!(
        ds["spec"]["template"]["spec"]["priorityClassName"],
        "system-node-critical"
    );

    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let plain = std::fs::read_to_string(dir.join("namespace.yaml")).unwrap()
        + "\n---\n"
        + &std::fs::read_to_string(dir.join("shipper.yaml")).unwrap();
    accepted("deploy/kubernetes (kubectl apply -k)", &documents(&plain), |args| {
        let mut all = args.to_vec();
        all.extend(["-k", dir.to_str().unwrap()]);
        let out = c.kubectl(&all);
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    c.uninstall();
}
