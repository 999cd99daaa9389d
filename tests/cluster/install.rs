//! What users install, given to a real API server: the chart with its defaults (`helm template`,
//! `kubectl apply`), the chart as ArgoCD renders and applies an Application (`helm template
//! --namespace --values <valuesObject>`, the Helm hooks left out as its sync does, then a server-side
//! apply) for ours and for the one `shipper convert` writes from an Alloy Application, and `deploy/kubernetes` (`kubectl apply -k`) — each
//! first as a server-side dry run, then applied for real. Every object must be accepted (admission,
//! validation, RBAC escalation checks, the priority class).

use crate::kube::cluster;
use crate::render::{documents, render_text, values_file, CHART, ROOT};
use serde_json::Value;
use std::path::Path;

const CLIENT_SIDE: &[&str] = &["apply", "-o", "name"];
/// As ArgoCD's server-side apply: its own field manager, taking over fields an earlier apply owned.
const SERVER_SIDE: &[&str] = &[
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=argocd-controller",
    "-o",
    "name",
];

/// deploy/argocd/shipper.yaml.
fn argocd_application() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/shipper.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The Application's `spec.source.helm.valuesObject`.
pub fn argocd_values() -> Value {
    argocd_application()["spec"]["source"]["helm"]["valuesObject"].clone()
}

/// What `shipper convert --from alloy-helm-values --to argocd` writes for the Alloy Application of
/// tests/convert.
fn converted_alloy_application() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("application.yaml");
    let out = std::process::Command::new(crate::render::BIN)
        .args(["convert", "--from", "alloy-helm-values", "--to", "argocd"])
        .arg(Path::new(ROOT).join("tests/convert/alloy-argocd-application.yaml"))
        .arg("-o")
        .arg(&written)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_yaml_ng::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap()
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

/// What an ArgoCD sync applies of a rendered chart, and the Helm hooks it leaves out. ArgoCD's
/// `helm template` renders the test hooks too (unless the Application sets `skipTests`); its sync
/// (gitops-engine) runs a Helm hook only as the ArgoCD hook it maps to — pre-install and pre-upgrade
/// as PreSync, post-install and post-upgrade as PostSync — so a `helm.sh/hook: test` object, which
/// maps to none, is never applied. Objects without the annotation are applied as they are.
fn argocd_syncs(objects: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    const SYNCED_HOOKS: [&str; 4] = ["pre-install", "pre-upgrade", "post-install", "post-upgrade"];
    let (applied, left): (Vec<Value>, Vec<Value>) =
        objects
            .into_iter()
            .partition(|o| match o["metadata"]["annotations"]["helm.sh/hook"].as_str() {
                None | Some("crd-install") => true,
                Some(types) => types.split(',').any(|t| SYNCED_HOOKS.contains(&t.trim())),
            });
    let left = left
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap().to_lowercase(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    (applied, left)
}

fn sorted_lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect();
    v.sort();
    v
}

/// A server-side dry run, then `real` (`kubectl apply`, or `kubectl apply --server-side` as ArgoCD's
/// server-side apply does); both must name every object.
fn accepted(what: &str, objects: &[Value], real: &[&str], apply: impl Fn(&[&str]) -> Result<String, String>) {
    let want = names(objects);
    let dry_run = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-o",
        "name",
    ];
    for args in [&dry_run[..], real] {
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
    accepted(
        "the chart with its defaults",
        &documents(&defaults),
        CLIENT_SIDE,
        |args| c.with_stdin(args, &defaults),
    );

    // ArgoCD renders an Application with `helm template --namespace <destination> --values
    // <valuesObject>` and applies what its sync keeps of the result: ours, and the one `shipper convert --to argocd`
    // writes for the Alloy Application of tests/convert.
    let converted = converted_alloy_application();
    for (what, app) in [
        ("deploy/argocd/shipper.yaml", argocd_application()),
        ("the converted Alloy Application", converted),
    ] {
        let namespace = app["spec"]["destination"]["namespace"].as_str().unwrap().to_owned();
        let values = values_file(&serde_yaml_ng::to_string(&app["spec"]["source"]["helm"]["valuesObject"]).unwrap());
        let release = app["spec"]["source"]["helm"]["releaseName"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = crate::render::helm(&[
            "template",
            &release,
            CHART,
            "--namespace",
            &namespace,
            "--values",
            values.path().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        let (objects, hooks) = argocd_syncs(documents(&String::from_utf8(out.stdout).unwrap()));
        assert_eq!(
            hooks,
            [format!("pod/{release}-test-ready")],
            "{what}: the chart's `helm test` pod is rendered, and not applied"
        );
        let text = objects
            .iter()
            .map(|o| serde_yaml_ng::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        accepted(what, &objects, SERVER_SIDE, |args| c.with_stdin(args, &text));
        // The API server stored what was sent: the DaemonSet carries the Application's priority class.
        let ds = c.json(&["get", "daemonset", "shipper", "-n", &namespace]);
        assert_eq!(
            ds["spec"]["template"]["spec"]["priorityClassName"], "system-node-critical",
            "{what}"
        );
    }

    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let plain = std::fs::read_to_string(dir.join("namespace.yaml")).unwrap()
        + "\n---\n"
        + &std::fs::read_to_string(dir.join("shipper.yaml")).unwrap();
    accepted(
        "deploy/kubernetes (kubectl apply -k)",
        &documents(&plain),
        CLIENT_SIDE,
        |args| {
            let mut all = args.to_vec();
            all.extend(["-k", dir.to_str().unwrap()]);
            let out = c.kubectl(&all);
            if out.status.success() {
                Ok(String::from_utf8(out.stdout).unwrap())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        },
    );
    c.uninstall();
}
