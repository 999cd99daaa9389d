//! A Promtail `clients[i]` entry (also what Alloy's `loki.write` endpoints are lowered to) into
//! one of our Loki endpoints.

use super::out::{s, secret_file, Out};
use super::report::Report;
use serde_json::{Map, Value};

/// One Loki endpoint (`clients[i]`): ours keeps every setting that has a meaning here.
pub fn client(v: &Value, i: usize, line: Option<u32>, out: &mut Out, report: &mut Report) {
    let mut c = Map::new();
    let what = |k: &str| format!("clients[{i}].{k}");
    let key = if i == 0 {
        "client".to_string()
    } else {
        format!("clients[{}]", i - 1)
    };
    for (k, val) in v.as_object().into_iter().flatten() {
        match k.as_str() {
            "url" | "tenant_id" | "bearer_token_file" | "timeout" => {
                c.insert(k.clone(), val.clone());
                report.mapped(line, what(k), format!("{key}.{k}"));
            }
            "batchwait" | "batchsize" => {
                let ours = if k == "batchwait" { "batch_wait" } else { "batch_size" };
                c.insert(ours.into(), val.clone());
                report.mapped(line, what(k), format!("{key}.{ours}"));
            }
            "external_labels" => {
                c.insert(k.clone(), val.clone());
                report.mapped(line, what(k), format!("{key}.external_labels"));
            }
            "bearer_token" => {
                let file = secret_file(&format!("client{i}-bearer-token"));
                c.insert("bearer_token_file".into(), file.clone().into());
                report.mapped(
                    line,
                    what(k),
                    format!("{key}.bearer_token_file: {file} — create it with the token; the token is not written out"),
                );
            }
            "basic_auth" => {
                let mut auth = Map::new();
                auth.insert("username".into(), val.get("username").cloned().unwrap_or_default());
                let file = match val.get("password_file").and_then(s) {
                    Some(f) => f,
                    None => secret_file(&format!("client{i}-password")),
                };
                if val.get("password").is_some() {
                    report.mapped(
                        line,
                        what("basic_auth.password"),
                        format!("{key}.basic_auth.password_file: {file} — create it with the password; the password is not written out"),
                    );
                } else {
                    report.mapped(line, what("basic_auth"), format!("{key}.basic_auth"));
                }
                auth.insert("password_file".into(), file.into());
                c.insert("basic_auth".into(), Value::Object(auth));
            }
            "tls_config" => {
                let mut tls = Map::new();
                for (tk, tv) in val.as_object().into_iter().flatten() {
                    match tk.as_str() {
                        "ca_file" | "cert_file" | "key_file" | "server_name" => {
                            tls.insert(tk.clone(), tv.clone());
                            report.mapped(line, what(&format!("tls_config.{tk}")), format!("{key}.tls.{tk}"));
                        }
                        other => report.unsupported(
                            line,
                            what(&format!("tls_config.{other}")),
                            "shipper always verifies Loki's certificate; give its CA with tls.ca_file",
                        ),
                    }
                }
                c.insert("tls".into(), Value::Object(tls));
            }
            "backoff_config" => {
                let mut b = Map::new();
                for (bk, bv) in val.as_object().into_iter().flatten() {
                    match bk.as_str() {
                        "min_period" | "max_period" => {
                            b.insert(bk.clone(), bv.clone());
                            report.mapped(line, what(&format!("backoff_config.{bk}")), format!("{key}.backoff.{bk}"));
                        }
                        "max_retries" => report.not_needed(
                            line,
                            what("backoff_config.max_retries"),
                            "shipper retries a batch until Loki takes it, reading paused meanwhile (the files are the buffer); set backoff.max_retries to drop after N",
                        ),
                        other => report.unsupported(line, what(&format!("backoff_config.{other}")), "no such backoff setting"),
                    }
                }
                if !b.is_empty() {
                    c.insert("backoff".into(), Value::Object(b));
                }
            }
            "headers" => {
                for (hk, hv) in val.as_object().into_iter().flatten() {
                    if hk.eq_ignore_ascii_case("X-Scope-OrgID") {
                        c.entry("tenant_id").or_insert_with(|| hv.clone());
                        report.mapped(line, what(&format!("headers.{hk}")), format!("{key}.tenant_id"));
                    } else {
                        report.unsupported(line, what(&format!("headers.{hk}")), "shipper sends no other headers");
                    }
                }
            }
            other => report.unsupported(line, what(other), "no such client setting in shipper"),
        }
    }
    out.clients.push(c);
}
