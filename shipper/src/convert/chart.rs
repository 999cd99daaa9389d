//! A converted config as values of our chart (`deploy/helm/shipper`): what the chart has a value
//! for goes there (`loki.*`, `kubernetes.*`, `logLevel`…), everything else into `extraConfig`,
//! which the chart merges into the config it writes. Secrets become Secrets the chart mounts.

use super::out::Out;
use super::report::Report;
use serde_json::{json, Map, Value};

/// The Secrets the values name; the report says how to create each.
pub const BASIC_AUTH_SECRET: &str = "shipper-loki-basic-auth";
pub const BEARER_SECRET: &str = "shipper-loki-bearer-token";
pub const TLS_SECRET: &str = "shipper-loki-tls";

/// Sets `value` at the dotted `path` of `values`, creating maps on the way.
pub fn set(values: &mut Map<String, Value>, path: &str, value: Value) {
    let mut keys = path.split('.').peekable();
    let mut at = values;
    while let Some(k) = keys.next() {
        if keys.peek().is_none() {
            at.insert(k.to_string(), value);
            return;
        }
        let next = at.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        at = next.as_object_mut().expect("a map");
    }
}

/// Our chart's values for `out`. `what` names the config in the report (`the converted config`).
pub fn values(out: &Out, report: &mut Report) -> Map<String, Value> {
    let mut v = Map::new();
    let mut extra = Map::new();
    let to = |report: &mut Report, from: &str, to: &str| {
        report.mapped(None, format!("shipper config {from}"), format!("chart value {to}"))
    };
    if let Some(client) = out.clients.first() {
        let mut rest = Map::new();
        for (k, val) in client {
            match k.as_str() {
                "url"
                    if !val
                        .as_str()
                        .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) =>
                {
                    rest.insert(k.clone(), val.clone());
                    report.mapped(
                        None,
                        "shipper config client.url",
                        "chart value extraConfig.client.url (loki.url takes only a literal http(s) URL; the agent expands the variable when it starts)",
                    );
                }
                "url" => {
                    set(&mut v, "loki.url", val.clone());
                    to(report, "client.url", "loki.url");
                }
                "tenant_id" => {
                    set(&mut v, "loki.tenantId", val.clone());
                    to(report, "client.tenant_id", "loki.tenantId");
                }
                "external_labels" => {
                    set(&mut v, "loki.externalLabels", val.clone());
                    to(report, "client.external_labels", "loki.externalLabels");
                }
                "basic_auth" => {
                    set(&mut v, "loki.basicAuth.username", val["username"].clone());
                    set(&mut v, "loki.basicAuth.secretName", BASIC_AUTH_SECRET.into());
                    report.mapped(
                        None,
                        "shipper config client.basic_auth",
                        format!("chart values loki.basicAuth (create the Secret: kubectl -n monitoring create secret generic {BASIC_AUTH_SECRET} --from-file=password=PASSWORD_FILE)"),
                    );
                }
                "bearer_token_file" => {
                    set(&mut v, "loki.bearerToken.secretName", BEARER_SECRET.into());
                    report.mapped(
                        None,
                        "shipper config client.bearer_token_file",
                        format!("chart value loki.bearerToken.secretName (create the Secret: kubectl -n monitoring create secret generic {BEARER_SECRET} --from-file=token=TOKEN_FILE)"),
                    );
                }
                "tls" => {
                    for (tk, tv) in val.as_object().into_iter().flatten() {
                        match tk.as_str() {
                            "ca_file" => {
                                set(&mut v, "loki.tls.secretName", TLS_SECRET.into());
                                report.mapped(
                                    None,
                                    "shipper config client.tls.ca_file",
                                    format!("chart value loki.tls.secretName (create the Secret: kubectl -n monitoring create secret generic {TLS_SECRET} --from-file=ca.crt=CA_FILE)"),
                                );
                            }
                            "server_name" => {
                                set(&mut v, "loki.tls.serverName", tv.clone());
                                to(report, "client.tls.server_name", "loki.tls.serverName");
                            }
                            other => report.unsupported(
                                None,
                                format!("shipper config client.tls.{other}"),
                                "the chart mounts no client certificate: add the Secret's volume and tls.cert_file/key_file through extraConfig yourself",
                            ),
                        }
                    }
                }
                _ => {
                    rest.insert(k.clone(), val.clone());
                    to(report, &format!("client.{k}"), &format!("extraConfig.client.{k}"));
                }
            }
        }
        if !rest.is_empty() {
            extra.insert("client".into(), Value::Object(rest));
        }
    }
    if out.clients.len() > 1 {
        let more: Vec<Value> = out.clients[1..].iter().cloned().map(Value::Object).collect();
        let secret = more
            .iter()
            .any(|c| c.get("basic_auth").is_some() || c.get("bearer_token_file").is_some());
        extra.insert("clients".into(), more.into());
        if secret {
            report.unsupported(
                None,
                "shipper config clients[]",
                "more endpoints with secrets: the chart mounts only loki.*'s; add their Secrets' volumes yourself",
            );
        } else {
            to(report, "clients", "extraConfig.clients");
        }
    }
    for (k, val) in &out.server {
        match k.as_str() {
            "log_level" => {
                v.insert("logLevel".into(), val.clone());
                to(report, "server.log_level", "logLevel");
            }
            "log_format" => {
                v.insert("logFormat".into(), val.clone());
                to(report, "server.log_format", "logFormat");
            }
            "http_listen" => {
                if let Some(port) = val
                    .as_str()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u64>().ok())
                {
                    set(&mut v, "http.port", port.into());
                    to(report, "server.http_listen", "http.port");
                }
            }
            _ => {}
        }
    }
    if !out.positions.is_empty() {
        report.built_in(
            None,
            "shipper config positions",
            "the chart keeps positions in hostPaths.positions (/var/lib/shipper on the node)",
        );
    }
    if let Some(from) = out.positions.get("import_from") {
        set(&mut v, "migration.importPositionsFrom", from.clone());
        to(report, "positions.import_from", "migration.importPositionsFrom");
    }
    if !out.kubernetes_discovery {
        report.unsupported(None, "shipper config discovery: static", "the chart also tails every pod's log (discovery: kubernetes); set extraConfig.discovery: static to tail only the targets");
    }
    for (k, val) in &out.kubernetes {
        match k.as_str() {
            "include_namespaces" => {
                set(&mut v, "kubernetes.includeNamespaces", val.clone());
                to(report, "kubernetes.include_namespaces", "kubernetes.includeNamespaces");
            }
            "kubeconfig" | "node_name" => report.built_in(
                None,
                format!("shipper config kubernetes.{k}"),
                "the pod uses its ServiceAccount and NODE_NAME",
            ),
            _ => {
                set(&mut extra, &format!("kubernetes.{k}"), val.clone());
                to(
                    report,
                    &format!("kubernetes.{k}"),
                    &format!("extraConfig.kubernetes.{k}"),
                );
            }
        }
    }
    for t in &out.targets {
        let mounted = t["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .all(|p| p.starts_with("/var/log/") || p.starts_with("/var/lib/docker/containers/"));
        if !mounted {
            report.unsupported(
                None,
                format!("shipper config target {}", t["paths"]),
                "outside /var/log and /var/lib/docker/containers, which the chart mounts: add a hostPath volume for it",
            );
        }
    }
    for (key, list) in [
        ("targets", &out.targets),
        ("relabel_configs", &out.relabel_configs),
        ("pipeline_stages", &out.pipeline_stages),
    ] {
        if !list.is_empty() {
            extra.insert(key.into(), list.clone().into());
            to(report, key, &format!("extraConfig.{key}"));
        }
    }
    if !out.tail.is_empty() {
        extra.insert("tail".into(), Value::Object(out.tail.clone()));
        to(report, "tail", "extraConfig.tail");
    }
    if let Some(j) = &out.journal {
        let mut j = j.clone();
        j.entry("path").or_insert_with(|| "/var/log/journal".into());
        extra.insert("journal".into(), json!(j));
        report.mapped(
            None,
            "shipper config journal",
            "extraConfig.journal (use the image built with `docker build --target journal`: it carries journalctl)",
        );
    }
    if !extra.is_empty() {
        v.insert("extraConfig".into(), Value::Object(extra));
    }
    v
}
