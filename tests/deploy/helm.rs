//! The Helm chart, rendered with its defaults and with non-default values: every object reads into
//! its Kubernetes type, and the DaemonSet, RBAC, Service and configuration are what the issue asks.

use crate::render::{check_config, find, render, render_text, strict, strict_all};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::rbac::v1::ClusterRole;
use serde_json::Value;

/// The DaemonSet's pod spec, typed.
fn pod(objects: &[Value]) -> PodSpec {
    let ds: DaemonSet = strict(find(objects, "DaemonSet"));
    ds.spec.unwrap().template.spec.unwrap()
}

/// Mount path → (hostPath, readOnly) for every hostPath volume of the agent's container.
fn host_mounts(pod: &PodSpec) -> Vec<(String, String, bool)> {
    let c = &pod.containers[0];
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    c.volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name)?;
            let host = v.host_path.as_ref()?;
            Some((m.mount_path.clone(), host.path.clone(), m.read_only == Some(true)))
        })
        .collect()
}

fn capabilities(pod: &PodSpec) -> (Vec<String>, Vec<String>, bool) {
    let sc = pod.containers[0].security_context.clone().unwrap();
    let caps = sc.capabilities.unwrap_or_default();
    (
        caps.add.unwrap_or_default(),
        caps.drop.unwrap_or_default(),
        sc.privileged == Some(true),
    )
}

/// What must hold whatever the values (used by the ArgoCD and plain-manifest tests too).
pub fn assert_deployable(objects: &[Value]) {
    assert_deployable_where(objects, true);
}

/// [`assert_deployable`]; `every_node`: the pods tolerate every taint (false for values that
/// bring their own tolerations, as converted ones do).
pub fn assert_deployable_where(objects: &[Value], every_node: bool) {
    strict_all(objects);
    let pod = pod(objects);
    let ds = find(objects, "DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], "monitoring");
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    // Standard labels; the selector picks the pod template's labels.
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for key in [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
    ] {
        assert!(labels[key].is_string(), "pod label {key} missing: {labels}");
        assert!(
            ds["metadata"]["labels"][key].is_string(),
            "DaemonSet label {key} missing"
        );
    }
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector label {k}");
    }
    // Every node: a toleration with operator Exists and no key tolerates every taint.
    let tolerations = pod.tolerations.clone().unwrap_or_default();
    assert!(
        !every_node
            || tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none()),
        "{tolerations:?}"
    );
    let c = &pod.containers[0];
    // NODE_NAME from the downward API.
    let node = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
    // Probes on the port the agent listens on.
    let config = check_config(objects);
    let listen = config["server"]["http_listen"].as_str().unwrap();
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http-metrics"))
        .unwrap();
    assert!(
        listen.ends_with(&format!(":{}", port.container_port)),
        "{listen} vs {port:?}"
    );
    for (probe, path) in [(&c.liveness_probe, "/healthz"), (&c.readiness_probe, "/ready")] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("HTTP probe");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            serde_json::to_value(&get.port).unwrap(),
            "http-metrics",
            "probe on the metrics port"
        );
    }
    // Host mounts: logs read-only; positions the one writable mount, holding the positions file.
    let mounts = host_mounts(&pod);
    for (path, host, read_only) in &mounts {
        let positions_dir = std::path::Path::new(config["positions"]["filename"].as_str().unwrap()).parent();
        if positions_dir == Some(std::path::Path::new(path)) {
            assert!(!read_only, "positions must be writable");
            assert_eq!(host, "/var/lib/shipper");
        } else {
            assert!(read_only, "host mount {path} ({host}) must be read-only");
        }
    }
    for path in ["/var/log", "/var/lib/docker/containers", "/var/lib/shipper"] {
        assert!(mounts.iter().any(|m| m.0 == path), "{path} not mounted: {mounts:?}");
    }
    assert_eq!(config["kubernetes"]["pods_root"], "/var/log/pods");
    // RBAC: read-only, pods (and namespaces), bound to the pod's service account.
    let role: ClusterRole = strict(find(objects, "ClusterRole"));
    for rule in role.rules.iter().flatten() {
        assert_eq!(rule.verbs, ["get", "list", "watch"]);
        for r in rule.resources.iter().flatten() {
            assert!(r == "pods" || r == "namespaces", "{r}");
        }
    }
    let binding = find(objects, "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"]["name"],
        find(objects, "ClusterRole")["metadata"]["name"]
    );
    let subject = &binding["subjects"][0];
    assert_eq!(subject["namespace"], "monitoring");
    assert_eq!(subject["name"].as_str(), pod.service_account_name.as_deref());
}

#[test]
fn default_values_render_a_least_privilege_daemonset() {
    let objects = render(None);
    assert_deployable(&objects);
    let pod = pod(&objects);
    let (add, drop, privileged) = capabilities(&pod);
    assert!(!privileged);
    assert_eq!(drop, ["ALL"]);
    assert_eq!(
        add,
        crate::CAPABILITIES,
        "the capabilities eBPF, log reading and fd limits need"
    );
    let sc = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let mounts = host_mounts(&pod);
    for path in ["/sys/kernel/btf", "/sys/kernel/tracing"] {
        assert!(
            mounts.iter().any(|m| m.0 == path && m.2),
            "{path} read-only: {mounts:?}"
        );
    }
    let config = check_config(&objects);
    assert_eq!(
        config["client"]["url"],
        "http://loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push"
    );
    assert_eq!(config["discovery"], "kubernetes");
    assert_eq!(config["tail"]["watch"], "auto");
    let role: ClusterRole = strict(find(&objects, "ClusterRole"));
    let resources: Vec<_> = role
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.resources.clone().unwrap())
        .collect();
    assert_eq!(
        resources,
        ["pods", "namespaces"],
        "namespaces for the exclude annotation"
    );
    let svc = find(&objects, "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
    assert!(!objects.iter().any(|o| o["kind"] == "ServiceMonitor"));
    let notes = render_text(None, true);
    assert!(
        notes.contains("kubectl get pods -n monitoring -l app.kubernetes.io/name=shipper"),
        "{notes}"
    );
}

const CUSTOM: &str = r#"
fullnameOverride: logs
priorityClassName: system-node-critical
loki:
  url: https://loki.example.com/loki/api/v1/push
  tenantId: team-a
  externalLabels: {cluster: prod-eu}
  basicAuth: {username: shipper, secretName: loki-auth, passwordKey: pw}
  tls: {secretName: loki-ca, serverName: loki.internal}
kubernetes:
  watchNamespaces: false
  podLabels: {team: team}
  structuredMetadata: [pod_uid, image]
ebpf:
  enabled: false
securityContext:
  capabilities: [DAC_READ_SEARCH, SYS_RESOURCE]
hostNetwork: true
extraConfig:
  tail: {max_open_files: 20000}
  relabel_configs:
    - {source_labels: [__meta_kubernetes_namespace], regex: kube-system, action: drop}
  pipeline_stages:
    - json: {expressions: {level: ""}}
    - labels: {level: ""}
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
"#;

#[test]
fn non_default_values_reach_the_objects_and_the_config() {
    let objects = render(Some(CUSTOM));
    assert_deployable(&objects);
    let pod = pod(&objects);
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    assert_eq!(find(&objects, "DaemonSet")["metadata"]["name"], "logs");
    // Without eBPF: no BTF/tracefs mounts, no BPF capabilities; inotify instead.
    // SYS_RESOURCE is opt-in (for a runtime whose descriptor limit is below max_open_files).
    let (add, _, _) = capabilities(&pod);
    assert_eq!(add, ["DAC_READ_SEARCH", "SYS_RESOURCE"]);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert!(!host_mounts(&pod).iter().any(|m| m.0.starts_with("/sys")));
    let config = check_config(&objects);
    assert_eq!(config["tail"]["watch"], "inotify");
    assert_eq!(config["tail"]["max_open_files"], 20000);
    // Stages and relabel rules go through extraConfig, checked by `shipper check`.
    assert_eq!(config["pipeline_stages"][1]["labels"]["level"], "");
    assert_eq!(config["relabel_configs"][0]["action"], "drop");
    let client = &config["client"];
    assert_eq!(client["tenant_id"], "team-a");
    assert_eq!(client["external_labels"]["cluster"], "prod-eu");
    assert_eq!(client["basic_auth"]["username"], "shipper");
    assert_eq!(client["tls"]["server_name"], "loki.internal");
    assert_eq!(config["kubernetes"]["structured_metadata"][1], "image");
    assert_eq!(config["kubernetes"]["pod_labels"]["team"], "team");
    // The password comes from the Secret's key, as a file; it is not in the ConfigMap.
    let volumes = pod.volumes.clone().unwrap();
    let auth = volumes.iter().find_map(|v| v.secret.clone()).unwrap();
    assert_eq!(auth.secret_name.as_deref(), Some("loki-auth"));
    assert_eq!(auth.items.unwrap()[0].key, "pw");
    // No namespace watch: no namespaces in the role, and the agent does not ask.
    assert_eq!(config["kubernetes"]["watch_namespaces"], false);
    let role: ClusterRole = strict(find(&objects, "ClusterRole"));
    assert_eq!(role.rules.unwrap().len(), 1);
    let monitor = find(&objects, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        find(&objects, "Service")["spec"]["ports"][0]["name"]
    );
}

#[test]
fn privileged_switch_replaces_the_capabilities() {
    let objects = render(Some("securityContext:\n  privileged: true\n"));
    assert_deployable(&objects);
    let (add, drop, privileged) = capabilities(&pod(&objects));
    assert!(privileged && add.is_empty() && drop.is_empty());
}

#[test]
fn a_changed_config_rolls_the_pods() {
    let annotation = |objects: &[Value]| {
        find(objects, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone()
    };
    let a = annotation(&render(None));
    assert_eq!(a, annotation(&render(None)));
    assert_ne!(a, annotation(&render(Some("logLevel: debug\n"))));
}

#[test]
fn half_configured_basic_auth_is_refused_at_render_time() {
    // A username without the Secret would crash-loop on a missing password file; a Secret without a
    // username would silently send no credentials.
    for values in [
        "loki:\n  basicAuth: {username: shipper}\n",
        "loki:\n  basicAuth: {secretName: loki-auth}\n",
    ] {
        let err = crate::render::try_render(Some(values), false).expect_err(values);
        assert!(
            err.contains("loki.basicAuth needs both username and secretName"),
            "{err}"
        );
    }
}

#[test]
fn the_defaults_pass_helm_lint_strict() {
    crate::render::lint(None).unwrap();
}

/// values.schema.json makes Helm itself (`helm template`, `helm install`, and ArgoCD's render)
/// refuse a misspelt or mistyped value, naming it.
#[test]
fn misspelt_and_mistyped_values_are_refused_naming_the_key() {
    let cases = [
        (
            "loki:\n  ulr: http://loki:3100/loki/api/v1/push\n",
            "at '/loki': additional properties 'ulr' not allowed",
        ),
        ("extraEnvs: []\n", "additional properties 'extraEnvs' not allowed"),
        ("http:\n  port: \"9080\"\n", "at '/http/port': got string, want integer"),
        (
            "ebpf:\n  enabled: \"false\"\n",
            "at '/ebpf/enabled': got string, want boolean",
        ),
        (
            "logFormat: logfmt\n",
            "at '/logFormat': value must be one of 'json', 'text'",
        ),
        (
            "kubernetes:\n  podLabels: {team: [a]}\n",
            "at '/kubernetes/podLabels/team': got array, want string",
        ),
    ];
    for (values, said) in cases {
        let err = crate::render::try_render(Some(values), false).expect_err(values);
        assert!(err.contains(said), "helm template with {values:?}: {err}");
        let err = crate::render::try_render(Some(values), true).expect_err(values);
        assert!(err.contains(said), "helm install with {values:?}: {err}");
    }
    // As a user types it on the command line.
    let out = crate::render::helm(&["template", "shipper", crate::render::CHART, "--set", "loki.tenantID=a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("additional properties 'tenantID' not allowed"),
        "{err}"
    );
    // Free-form maps take any key.
    render(Some(
        "loki:\n  externalLabels: {anything: x}\nextraConfig: {tail: {max_open_files: 9}}\n",
    ));
}

/// The schema and values.yaml name the same values: a value added to one but not the other fails.
#[test]
fn the_schema_has_every_value_and_no_other() {
    let chart = std::path::Path::new(crate::render::CHART);
    let values: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap()).unwrap();
    fn walk(values: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
        let props = schema["properties"].as_object();
        if let Some(map) = values.as_object() {
            if props.is_none() {
                return; // a free-form map: its keys are the user's
            }
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => walk(v, s, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is in values.yaml, not in the schema")),
                }
            }
        }
        for k in props.into_iter().flat_map(|p| p.keys()) {
            // Values Kubernetes or Helm define that the chart passes on without a default.
            let optional = ["global", "claims", "maxSurge"].contains(&k.as_str());
            if !optional && values.get(k).is_none() {
                out.push(format!("{path}.{k} is in the schema, not in values.yaml"));
            }
        }
    }
    let mut out = Vec::new();
    walk(&values, &schema, "", &mut out);
    assert!(out.is_empty(), "{out:#?}");
}

/// `helm test`'s hook: a pod that asks /ready of the agent on its node (hostNetwork) or through the
/// metrics Service, removed once it passed, on the nodes the agents run on.
#[test]
fn the_test_hook_asks_an_agent_whether_it_is_ready() {
    let hook = |values: &str| {
        let text = crate::render::try_render_with(Some(values), false, &["--show-only", "templates/tests/ready.yaml"])
            .unwrap();
        let objects = crate::render::documents(&text);
        strict_all(&objects);
        let pod: k8s_openapi::api::core::v1::Pod = strict(find(&objects, "Pod"));
        let annotations = pod.metadata.annotations.clone().unwrap();
        assert_eq!(annotations["helm.sh/hook"], "test");
        assert!(annotations["helm.sh/hook-delete-policy"].contains("hook-succeeded"));
        pod
    };
    let on_node = hook("hostNetwork: true\ntest: {image: {repository: shipper.local/busybox, tag: '1'}}\n");
    let spec = on_node.spec.unwrap();
    assert_eq!(spec.host_network, Some(true));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("shipper.local/busybox:1"));
    assert_eq!(
        c.command.as_ref().unwrap().last().unwrap(),
        "http://$(NODE_IP):9080/ready"
    );
    assert_eq!(spec.tolerations.unwrap()[0].operator.as_deref(), Some("Exists"));
    let via_service = hook("http: {port: 9100}\n").spec.unwrap();
    assert_eq!(
        via_service.containers[0].command.as_ref().unwrap().last().unwrap(),
        "http://shipper-metrics.monitoring.svc:9100/ready"
    );
    // What is applied without Helm (plain manifests, an ArgoCD sync) has no test pod.
    assert!(!render(None).iter().any(|o| o["kind"] == "Pod"));
}

/// `migration.importPositionsFrom`: the replaced agent's positions file is read where the chart
/// mounts its directory from the node (read-only), and the config imports it at the first start.
#[test]
fn importing_the_replaced_agents_positions_mounts_its_directory_read_only() {
    let objects = render(Some(
        "migration:\n  importPositionsFrom: promtail:/run/promtail/positions.yaml\n",
    ));
    assert_deployable(&objects);
    let config = check_config(&objects);
    assert_eq!(
        config["positions"]["import_from"],
        "promtail:/var/lib/shipper-import/positions.yaml"
    );
    assert_eq!(config["positions"]["filename"], "/var/lib/shipper/positions.json");
    let pod = pod(&objects);
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/lib/shipper-import")
        .expect("the import directory mounted");
    assert_eq!(mount.read_only, Some(true));
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).unwrap();
    assert_eq!(volume.host_path.as_ref().unwrap().path, "/run/promtail");
    // None by default.
    assert!(check_config(&render(None))["positions"].get("import_from").is_none());
}

/// `extraEnv` and `envFrom` (what `shipper convert` carries from Alloy's and Promtail's charts)
/// reach the agent's container beside NODE_NAME; the config reads them as `${VAR}` at start.
#[test]
fn extra_env_and_env_from_reach_the_agents_container() {
    let values = r#"
loki:
  tenantId: ${LOKI_TENANT:-team-a}
extraEnv:
  - name: LOKI_HOST
    value: loki-gateway.monitoring.svc.cluster.local
  - name: LOKI_TENANT
    valueFrom:
      secretKeyRef: {name: loki-tenant, key: tenant}
envFrom:
  - secretRef: {name: loki-credentials}
  - configMapRef: {name: loki-settings}
    prefix: LOKI_
"#;
    let objects = render(Some(values));
    assert_deployable(&objects);
    let container = pod(&objects).containers.remove(0);
    let env = container.env.unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["NODE_NAME", "LOKI_HOST", "LOKI_TENANT"]);
    assert_eq!(
        env[1].value.as_deref(),
        Some("loki-gateway.monitoring.svc.cluster.local")
    );
    let secret = env[2].value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!((secret.name.as_str(), secret.key.as_str()), ("loki-tenant", "tenant"));
    let from = container.env_from.unwrap();
    assert_eq!(from[0].secret_ref.as_ref().unwrap().name, "loki-credentials");
    assert_eq!(from[1].config_map_ref.as_ref().unwrap().name, "loki-settings");
    assert_eq!(from[1].prefix.as_deref(), Some("LOKI_"));
    let config = find(&objects, "ConfigMap")["data"]["shipper.yaml"].as_str().unwrap();
    assert!(config.contains("tenant_id: ${LOKI_TENANT:-team-a}"), "{config}");
    // None by default.
    assert!(pod(&render(None)).containers[0].env_from.is_none());
    let err = crate::render::try_render(Some("envFrom:\n  - secretRef: {}\n"), false).unwrap_err();
    assert!(err.contains("envFrom"), "{err}");
}
