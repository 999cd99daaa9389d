//! What is outside a node log agent's job: shipper tails the node's log files and its journal,
//! and ships them to Loki. Components and jobs of these kinds are reported as such (they stay
//! with the agent that does them), one list for every source.

/// The kind of work a component (Alloy) or a scrape job's input (Promtail) does, when it is not
/// shipper's: `metrics`, `traces and OTLP`, `profiling`, `Kubernetes events`, or `network
/// receivers` (logs sent to the agent rather than written on the node).
pub fn alloy(component: &str) -> Option<&'static str> {
    let kinds: [(&[&str], &str); 5] = [
        (&["prometheus.", "mimir.", "otelcol.receiver.prometheus"], METRICS),
        (&["otelcol.", "faro.", "beyla.", "tracing"], TRACES),
        (&["pyroscope."], PROFILING),
        (&["loki.source.kubernetes_events"], EVENTS),
        (
            &[
                "loki.source.syslog",
                "loki.source.api",
                "loki.source.kafka",
                "loki.source.gelf",
                "loki.source.heroku",
                "loki.source.gcplog",
                "loki.source.cloudflare",
                "loki.source.azure_event_hubs",
                "loki.source.awsfirehose",
                "loki.source.windowsevent",
                "loki.source.podlogs",
                "loki.source.file_sd",
            ],
            RECEIVERS,
        ),
    ];
    kinds
        .iter()
        .find(|(prefixes, _)| prefixes.iter().any(|p| component.starts_with(p)))
        .map(|(_, kind)| *kind)
}

/// A Promtail scrape job's input (`syslog`, `kafka`, ...), when it is not shipper's.
pub fn promtail(input: &str) -> Option<&'static str> {
    match input {
        "syslog" | "loki_push_api" | "kafka" | "gelf" | "gcplog" | "cloudflare" | "heroku_drain"
        | "azure_event_hubs" | "windows_events" => Some(RECEIVERS),
        _ => None,
    }
}

pub const METRICS: &str = "metrics";
pub const TRACES: &str = "traces and OTLP";
pub const PROFILING: &str = "profiling";
pub const EVENTS: &str = "Kubernetes events";
pub const RECEIVERS: &str = "network receivers";

/// The report's words for it.
pub fn why(kind: &str, peer: &str) -> String {
    format!("outside a node log agent's job ({kind}): keep {peer} for it")
}
