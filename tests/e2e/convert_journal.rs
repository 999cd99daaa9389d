//! `shipper convert` of journal sources end to end: the journal configs of the corpus (Grafana
//! k8s-monitoring's node logs, a Promtail journal job with stages) are converted by the binary,
//! pass `shipper check`, and run on journal files written by systemd-journal-remote: only the units
//! their matches select arrive, with the lines and labels their stages give.

use crate::convert::{convert_with, Overlay};
use crate::support::{wait_entries, Agent, Env, BIN};
use shipper_testkit::journal::{now_us, tools, write_journal, JournalEntry};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Converts corpus `file` to `<env>/shipper.yaml` (everything must map) and checks it.
fn convert_and_check(env: &Env, from: &str, file: &str) -> std::path::PathBuf {
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert_with(from, "config", file, &cfg, &[]);
    assert_eq!(code, 0, "everything maps: {report}");
    let o = Command::new(BIN).args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cfg
}

/// Runs the converted config on `entries` (in a journal under the scratch dir) until `n` entries
/// arrived; returns (labels, line) of each, sorted.
fn ship(env: &Env, cfg: &Path, entries: &[JournalEntry], n: usize) -> Vec<(String, String)> {
    write_journal(&env.path("journal/remote.journal"), entries);
    let mut overlay = Overlay::new(env);
    overlay.set("journal.path", env.path("journal").display().to_string().into());
    overlay.apply(cfg);
    let agent = Agent::start(cfg);
    wait_entries(env, &agent, n, 30);
    std::thread::sleep(Duration::from_millis(1000));
    let mut got: Vec<(String, String)> = env
        .loki
        .streams()
        .into_iter()
        .flat_map(|(labels, es)| es.into_iter().map(move |e| (labels.clone(), e.line)))
        .collect();
    got.sort();
    agent.stop();
    got
}

fn entry(ts_us: u64, unit: &str, message: &str) -> JournalEntry {
    JournalEntry::new(ts_us, unit, message.as_bytes())
}

#[test]
fn k8s_monitorings_node_logs_convert_with_matches_and_level_stages() {
    let env = Env::new();
    let cfg = convert_and_check(&env, "alloy", "k8s-monitoring-node-logs.alloy");
    if !tools("k8s_monitorings_node_logs_convert_with_matches_and_level_stages") {
        return;
    }
    let t0 = now_us() - 5_000_000;
    let kubelet = "I0119 12:00:00.000000    1 kubelet.go:2345] SyncLoop ADD";
    let kubelet_err = "E0119 12:00:01.000000    1 pod_workers.go:1300] Error syncing pod";
    let containerd = "time=\"2024-01-19T12:00:02Z\" level=warning msg=\"cleanup warnings\"";
    let plain = "containerd started";
    let entries = [
        entry(t0, "kubelet.service", kubelet),
        entry(t0 + 1, "sshd.service", "Accepted publickey for root"),
        entry(t0 + 2, "kubelet.service", kubelet_err),
        entry(t0 + 3, "containerd.service", containerd),
        entry(t0 + 4, "containerd.service", plain),
    ];
    let got = ship(&env, &cfg, &entries, 4);
    let labels = |unit: &str, level: &str| {
        format!("{{job=\"integrations/kubernetes/journal\", level=\"{level}\", service_name=\"{unit}\", source=\"journal\", unit=\"{unit}\"}}")
    };
    let mut want = vec![
        (labels("kubelet.service", "INFO"), kubelet.to_string()),
        (labels("kubelet.service", "ERROR"), kubelet_err.to_string()),
        (labels("containerd.service", "warning"), containerd.to_string()),
        (labels("containerd.service", "unknown"), plain.to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "sshd.service is not among the matches");
}

#[test]
fn a_promtail_journal_job_converts_with_matches_and_stages() {
    let env = Env::new();
    let cfg = convert_and_check(&env, "promtail", "promtail-journal-stages.yaml");
    if !tools("a_promtail_journal_job_converts_with_matches_and_stages") {
        return;
    }
    let t0 = now_us() - 5_000_000;
    let get = "10.0.0.7 - - [19/Jan/2024:12:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"";
    let health = "10.0.0.8 - - [19/Jan/2024:12:00:01 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.30\"";
    let post = "10.0.0.9 - - [19/Jan/2024:12:00:02 +0000] \"POST /api HTTP/1.1\" 201 10 \"-\" \"curl/8.0\"";
    let other = "nginx: the configuration file syntax is ok";
    let entries = [
        entry(t0, "nginx.service", get),
        entry(t0 + 1, "nginx.service", health),
        entry(t0 + 2, "sshd.service", "Accepted publickey for root"),
        entry(t0 + 3, "nginx.service", post),
        entry(t0 + 4, "nginx.service", other),
    ];
    let got = ship(&env, &cfg, &entries, 3);
    let base = "host=\"node-a\", job=\"systemd-journal\"";
    let mut want = vec![
        (
            format!("{{{base}, method=\"get\", status=\"200\", unit=\"nginx.service\"}}"),
            get.to_string(),
        ),
        (
            format!("{{{base}, method=\"post\", status=\"201\", unit=\"nginx.service\"}}"),
            post.to_string(),
        ),
        (format!("{{{base}, unit=\"nginx.service\"}}"), other.to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "/healthz dropped, sshd.service not matched");
}

/// A Promtail journal job whose multiline stage joins a service's stack trace (one journal entry
/// per line, another unit's line in between) converts and joins it the same way.
#[test]
fn a_promtail_journal_job_with_multiline_joins_a_trace_per_unit() {
    let env = Env::new();
    let cfg = convert_and_check(&env, "promtail", "promtail-journal-multiline.yaml");
    if !tools("a_promtail_journal_job_with_multiline_joins_a_trace_per_unit") {
        return;
    }
    let t0 = now_us() - 5_000_000;
    let entries = [
        entry(t0, "app.service", "2024-01-19 12:00:00 INFO started"),
        entry(t0 + 1, "app.service", "2024-01-19 12:00:01 ERROR request failed"),
        entry(t0 + 2, "app.service", "java.lang.IllegalStateException: boom"),
        entry(t0 + 3, "other.service", "2024-01-19 12:00:01 other says hi"),
        entry(t0 + 4, "app.service", "\tat x.Handler.run(Handler.java:10)"),
        entry(t0 + 5, "app.service", "2024-01-19 12:00:02 INFO recovered"),
    ];
    let got = ship(&env, &cfg, &entries, 4);
    let labels = |unit: &str| format!("{{job=\"systemd-journal\", unit=\"{unit}\"}}");
    let mut want = vec![
        (labels("app.service"), "2024-01-19 12:00:00 INFO started".to_string()),
        (
            labels("app.service"),
            "2024-01-19 12:00:01 ERROR request failed\njava.lang.IllegalStateException: boom\n\tat x.Handler.run(Handler.java:10)".to_string(),
        ),
        (labels("other.service"), "2024-01-19 12:00:01 other says hi".to_string()),
        (labels("app.service"), "2024-01-19 12:00:02 INFO recovered".to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "the trace is one line; other.service's line is not in it");
}
