//! What the cluster tests share: the chart installed with Helm as a user would (the ArgoCD
//! Application's values) plus the little this VM needs, logger Deployments of busybox pods, and the check that a
//! pod's lines all arrived in order with the pod's labels.

use crate::install::argocd_values;
use crate::kube::{Cluster, NAMESPACE};
use crate::render::{values_file, CHART};
use serde_json::{json, Value};
use shipper_testkit::receiver::labels::parse_labels;
use shipper_testkit::Receiver;
use std::collections::BTreeMap;
use std::time::Duration;

/// `helm install shipper deploy/helm/shipper -n monitoring --create-namespace` with the
/// Application's values and `vm_overlay` as values files, plus `extra` flags (`--set rbac.create=false`,
/// say); returns the agent's pod once Ready.
pub fn install(c: &Cluster, receiver: &Receiver, extra: &[&str]) -> String {
    c.uninstall();
    remove_apps(c);
    helm_install(c, receiver, extra)
}

/// `install` on a cluster already cleared of the chart and the apps.
pub fn helm_install(c: &Cluster, receiver: &Receiver, extra: &[&str]) -> String {
    let application = values_file(&serde_yaml_ng::to_string(&argocd_values()).unwrap());
    let overlay = vm_overlay(c, &receiver.url());
    let keys: Vec<&String> = overlay.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["extraEnv", "hostNetwork", "loki", "test"],
        "the overlay holds only what this VM cannot give"
    );
    let overlay = values_file(&serde_yaml_ng::to_string(&overlay).unwrap());
    let mut args = vec!["install", "shipper", CHART, "-n", NAMESPACE, "--create-namespace"];
    args.extend([
        "-f",
        application.path().to_str().unwrap(),
        "-f",
        overlay.path().to_str().unwrap(),
    ]);
    args.extend(extra);
    c.helm_ok(&args);
    c.agent_ready(None)
}

/// What this VM cannot give a pod, and only that: the API server listens on 127.0.0.1 with no
/// kube-proxy, so the agent uses the node's network and is told the API server's address (a pod on
/// the pod network could reach neither it nor the test's Loki receiver); no registry, so `helm
/// test`'s pod uses the busybox image imported into the node.
pub fn vm_overlay(c: &Cluster, loki: &str) -> Value {
    let busybox = c.image("busybox");
    let (repository, tag) = busybox.rsplit_once(':').unwrap();
    json!({
        "loki": {"url": loki},
        "hostNetwork": true,
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": c.api_port.to_string()},
        ],
        "test": {"image": {"repository": repository, "tag": tag}},
    })
}

/// A Deployment of busybox pods that write `lines` numbered lines to stdout (paced: ≤ 2,000 a second),
/// then `<pod> done`, then sleep.
pub fn app(c: &Cluster, name: &str, lines: u32) -> String {
    let script = format!(
        "pad=$(printf '%0180d' 0); i=1; while [ $i -le {lines} ]; do printf '%s %07d %s\\n' \"$POD_NAME\" $i \"$pad\"; \
         if [ $((i % 200)) -eq 0 ]; then sleep 0.1; fi; i=$((i+1)); done; echo \"$POD_NAME done\"; exec sleep 100000"
    );
    let d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "team": "payments"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "nodeSelector": {"kubernetes.io/hostname": c.node},
                    "containers": [{
                        "name": name,
                        "image": c.image("busybox"),
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", script],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    }],
                },
            },
        },
    });
    c.with_stdin(&["apply"], &d.to_string()).unwrap();
    name.to_owned()
}

/// The names of `app`'s pods, running or not.
pub fn pods_of(c: &Cluster, app: &str) -> Vec<String> {
    let list = c.json(&["get", "pods", "-n", NAMESPACE, "-l", &format!("app={app}")]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The directory kubelet writes a pod's container logs to.
pub fn log_dir(pod: &str, container: &str) -> Option<std::path::PathBuf> {
    let prefix = format!("{NAMESPACE}_{pod}_");
    let dir = std::fs::read_dir("/var/log/pods")
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))?;
    Some(dir.path().join(container))
}

/// Whether kubelet wrote the pod's `done` line: it is in `0.log`, or in the newest file kubelet rotated
/// away (plain until the next rotation compresses it).
pub fn finished(pod: &str, container: &str) -> bool {
    let Some(files) = log_dir(pod, container).and_then(|d| std::fs::read_dir(d).ok()) else {
        return false;
    };
    let done = format!(" {pod} done\n");
    files.flatten().any(|f| {
        let path = f.path();
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let out = std::process::Command::new("zcat").arg(&path).output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        } else {
            std::fs::read_to_string(&path).unwrap_or_default()
        };
        text.contains(&done)
    })
}

/// Files kubelet rotated away in the pod's log directory so far.
pub fn rotated(pod: &str, container: &str) -> usize {
    log_dir(pod, container)
        .and_then(|d| std::fs::read_dir(d).ok())
        .map_or(0, |d| d.flatten().filter(|e| e.file_name() != "0.log").count())
}

/// Checks the pod's stream: every numbered line and `done`, in order, labelled as the pod. Returns
/// the duplicates (at-least-once allows them; a graceful restart should leave none).
pub fn check_stream(r: &Receiver, c: &Cluster, app: &str, pod: &str, lines: u32) -> Result<usize, String> {
    let streams = r.streams();
    let mut mine = streams
        .iter()
        .filter(|(labels, _)| labels.contains(&format!("pod=\"{pod}\"")));
    let Some((labels, entries)) = mine.next() else {
        return Err(format!("no stream for pod {pod}"));
    };
    if let Some((other, _)) = mine.next() {
        return Err(format!("pod {pod} in two streams: {labels} and {other}"));
    }
    let got: BTreeMap<String, String> = parse_labels(labels).unwrap().into_iter().collect();
    let want = [
        ("namespace", NAMESPACE.to_owned()),
        ("pod", pod.to_owned()),
        ("container", app.to_owned()),
        ("app", app.to_owned()),
        ("job", format!("{NAMESPACE}/{app}")),
        ("node_name", c.node.clone()),
        // The Application's values: externalLabels and podLabels {team: team}.
        ("cluster", "my-cluster".to_owned()),
        ("team", "payments".to_owned()),
    ];
    for (k, v) in want {
        if got.get(k) != Some(&v) {
            return Err(format!(
                "pod {pod}: label {k} is {:?}, not {v:?} (labels {labels})",
                got.get(k)
            ));
        }
    }
    let mut next = 1u32;
    let mut dups = 0;
    let mut done = false;
    for e in entries {
        if e.line == format!("{pod} done") {
            done = true;
            continue;
        }
        let mut parts = e.line.split(' ');
        let (who, n) = (parts.next(), parts.next().and_then(|n| n.parse::<u32>().ok()));
        match n {
            Some(n) if who == Some(pod) && n == next => next += 1,
            Some(n) if who == Some(pod) && n < next => dups += 1,
            _ => {
                return Err(format!(
                    "pod {pod}: line {:?} where {next} was due",
                    &e.line[..e.line.len().min(40)]
                ))
            }
        }
    }
    if next <= lines || !done {
        return Err(format!(
            "pod {pod}: {} of {lines} lines so far (done: {done})",
            next - 1
        ));
    }
    Ok(dups)
}

/// Waits for the one pod of `app` and for its `lines` to arrive, in order with its labels (60 s).
pub fn shipped(r: &Receiver, c: &Cluster, app: &str, lines: u32) {
    let pod = c.wait("the app's pod", Duration::from_secs(60), || pods_of(c, app).pop());
    let what = format!("{app}'s lines all arriving with its labels");
    c.wait_ok(&what, Duration::from_secs(60), || check_stream(r, c, app, &pod, lines));
}

pub fn agent_log(c: &Cluster, pod: &str) -> String {
    c.ok(&["logs", "-n", NAMESPACE, pod])
}

/// Deletes every Deployment of the tests (all of the namespace's; an earlier run that failed may have
/// left some) and waits for their pods to go.
pub fn remove_apps(c: &Cluster) {
    let _ = c.kubectl(&["delete", "deployment", "--all", "-n", NAMESPACE]);
    c.wait("the test apps' pods gone", Duration::from_secs(90), || {
        let list = c.json(&["get", "pods", "-n", NAMESPACE, "-l", "app"]);
        list["items"].as_array().unwrap().is_empty().then_some(())
    });
}
