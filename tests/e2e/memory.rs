//! The Helm chart's memory limit holds: with the chart's defaults for everything that decides memory,
//! the agent's peak RSS stays under `resources.limits.memory` of the chart's values.yaml with 25 %
//! headroom (limit ≥ 1.25 × peak). The worst case the defaults allow is tested here: the memory
//! budget (`tail.max_buffered_bytes`) full while as many files are tailed as `tail.max_open_files`
//! lets it. The outage test (`outage.rs`) and the 10,000-files test (`ebpf.rs`) check the limit too,
//! with [`assert_within_chart_limit`].

use crate::support::{wait_metric, write_tagged, Agent, Env};
use shipper::config::TailConfig;
use shipper::units::ByteSize;
use shipper_testkit::{Format, LogWriter};
use std::time::Duration;

const VALUES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/shipper/values.yaml");

/// What the chart sets that decides the agent's memory.
pub struct ChartMemory {
    /// `resources.limits.memory`, in bytes.
    pub limit: u64,
    /// The agent's `tail` section as the chart runs it: its `extraConfig.tail` over the agent's
    /// defaults (the chart's generated config sets no size of its own).
    pub tail: TailConfig,
}

/// Reads the chart's values.yaml: one home for the limit and the budget, nothing copied here.
pub fn chart_memory() -> ChartMemory {
    let text = std::fs::read_to_string(VALUES).expect("the chart's values.yaml");
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("values.yaml is YAML");
    let limit = values["resources"]["limits"]["memory"]
        .as_str()
        .map(|q| {
            q.parse::<ByteSize>()
                .expect("resources.limits.memory is a quantity like 1Gi")
                .0
        })
        .expect("values.yaml sets resources.limits.memory");
    let extra = &values["extraConfig"];
    assert!(
        extra["client"].is_null() && extra["clients"].is_null() && extra["pipeline_stages"].is_null(),
        "values.yaml's extraConfig sets a client or stages: make chart_client() and the tests run them"
    );
    let tail = match &extra["tail"] {
        serde_yaml_ng::Value::Null => TailConfig::default(),
        tail => serde_yaml_ng::from_value(tail.clone()).expect("extraConfig.tail is the agent's tail section"),
    };
    ChartMemory { limit, tail }
}

/// The peak RSS a scenario may reach: the limit leaves a quarter of it to spare (limit ≥ 1.25 × peak).
pub fn allowed_peak(limit: u64) -> u64 {
    limit / 5 * 4
}

/// A client section with the agent's defaults for everything that decides memory (`batch_size`),
/// as the chart runs it; the backoff is shortened (it decides when a batch is retried, not what
/// is held).
pub fn chart_client(env: &Env) -> String {
    format!(
        "client:\n  url: {}\n  backoff:\n    min_period: 100ms\n    max_period: 1s\n",
        env.loki.url()
    )
}

/// Asserts the agent's peak RSS so far stays under the chart's memory limit with 25 % headroom, and
/// reports it; returns it in MiB.
#[track_caller]
pub fn assert_within_chart_limit(agent: &Agent, scenario: &str) -> u64 {
    let limit = chart_memory().limit;
    let peak = agent.peak_rss();
    let allowed = allowed_peak(limit);
    eprintln!(
        "peak RSS ({scenario}): {} MiB; the chart's limit of {} MiB allows {} MiB with 25 % headroom",
        peak >> 20,
        limit >> 20,
        allowed >> 20
    );
    assert!(
        peak <= allowed,
        "{scenario}: peak RSS {} MiB leaves less than 25 % of the chart's memory limit ({} MiB) to spare",
        peak >> 20,
        limit >> 20
    );
    peak >> 20
}

/// Loki down while `tail.max_open_files` files (10,000 by default) hold a backlog of one and a half
/// times the memory budget: the agent reads until the budget is full, pauses, and its peak RSS stays
/// under the chart's limit with 25 % headroom.
///
/// Only many tenants fill the budget: with one tenant and one client, the ring and the client's
/// four batches hold 15-30 MiB whatever Loki does. So each file is its own tenant (a
/// `tenant` stage), and `batch_wait` is long so that the budget, not the wait of a batch, ends the
/// reading (with the default 1 s this debug build fills about half the budget before the first batch
/// is due and the push queue, full while Loki is down, holds the reading up).
#[test]
fn a_full_memory_budget_with_the_most_files_fits_the_charts_limit() {
    let chart = chart_memory();
    let (budget, files) = (chart.tail.max_buffered_bytes.0, chart.tail.max_open_files as u64);
    assert!(budget > 0, "the chart runs without a memory budget: no limit can hold");
    let env = Env::new();
    // About 230 bytes a line in the file (a tag, 50-300 bytes of payload, CRI's framing).
    let lines = (budget * 3 / 2 / files / 230).max(1);
    for f in 0..files as u32 {
        let path = env.path(&format!("pods/ns_p{}_u/c/{f}.log", f / 100));
        write_tagged(&mut LogWriter::create(path, Format::Cri).unwrap(), f, 0..lines);
    }
    let client = chart_client(&env) + "  batch_wait: 10m\n";
    let stages = "pipeline_stages:\n  - regex: {expression: '^f=(?P<tenant>\\d+) '}\n  - tenant: {source: tenant}\n";
    let config = env.config("pods/*/*/*.log", &(client + stages));
    env.loki.set_down(true);
    let agent = Agent::start(&config);
    wait_metric(&agent, "shipper_reading_paused{reason=\"memory_budget\"}", 1.0, 300);
    std::thread::sleep(Duration::from_secs(2));
    let buffered = agent.metric("shipper_buffered_bytes") as u64;
    let open = agent.metric("shipper_open_files") as u64;
    eprintln!(
        "budget {} MiB full ({} MiB buffered) with {open} of {files} files open",
        budget >> 20,
        buffered >> 20
    );
    assert!(
        buffered >= budget,
        "the budget was not reached: {buffered} bytes buffered"
    );
    assert_eq!(open, files, "{}", agent.log_tail());
    assert_within_chart_limit(&agent, &format!("memory budget full, Loki down, {files} files"));
    // Loki stays down: a stop would wait out shutdown_timeout for nothing.
    agent.kill();
}
