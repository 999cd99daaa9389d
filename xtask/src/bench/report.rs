//! The bench report: a Markdown table and a one-line summary per scenario.

use super::Outcome;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

pub fn line(o: &Outcome) -> String {
    format!(
        "{} ({}): {} lines, {:.1} MiB/s, {:.2} CPU-s/GiB (bound {}), RSS {:.0} MiB, lost {}, duplicated {}, reordered {}",
        o.scenario,
        o.agent,
        o.lines,
        o.mib_per_s,
        o.cpu_s_per_gib,
        opt(o.bound_cpu_s_per_gib, 2),
        o.peak_rss_mib,
        o.lost,
        o.duplicated,
        o.reordered
    )
}

pub fn markdown(outcomes: &[Outcome], quick: bool) -> String {
    let mut s = String::new();
    if quick {
        s.push_str("(--quick: reduced sizes; numbers are a smoke test, not a measurement)\n\n");
    }
    let peers = outcomes.iter().any(|o| !o.agent.starts_with("shipper"));
    s.push_str("| scenario | agent | files | lines | MiB | MiB/s | lines/s | CPU-s/GiB | bound CPU-s/GiB | × bound | peak RSS MiB | latency p50/p99/max ms | write→read p50/p99 ms | idle CPU ms | agent cores | lost | dup | reordered |");
    s.push_str(if peers {
        " shipper's speed / CPU per GiB / RSS vs this agent |\n"
    } else {
        "\n"
    });
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|");
    s.push_str(if peers { "---|\n" } else { "\n" });
    for o in outcomes {
        let ratio = match (o.bound_cpu_s_per_gib, o.plain_cpu_s_per_gib) {
            (Some(b), _) if b > 0.0 => format!("{:.2}", o.cpu_s_per_gib / b),
            (_, Some(p)) if p > 0.0 => format!("{:.2} (plain)", o.cpu_s_per_gib / p),
            _ => "–".into(),
        };
        let latency = o
            .latency_ms
            .map_or("–".into(), |l| format!("{:.0} / {:.0} / {:.0}", l.p50, l.p99, l.max));
        let wake = o.wake_ms.map_or("–".into(), |l| format!("{:.1} / {:.1}", l.p50, l.p99));
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.2} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            o.scenario,
            o.agent,
            o.files,
            o.lines,
            o.bytes as f64 / (1 << 20) as f64,
            o.mib_per_s,
            o.lines_per_s,
            o.cpu_s_per_gib,
            opt(o.bound_cpu_s_per_gib, 2),
            ratio,
            o.peak_rss_mib,
            latency,
            wake,
            opt(o.idle_cpu_ms, 0),
            opt(o.cores, 2),
            o.lost,
            o.duplicated,
            o.reordered
        ));
        if peers {
            s.push_str(&format!(" {} |", versus(outcomes, o)));
        }
        s.push('\n');
    }
    s
}

/// How the report's pages name an agent (`fluent-bit` → Fluent Bit).
pub fn display(agent: &str) -> String {
    match agent {
        "promtail" => "Promtail".into(),
        "fluent-bit" => "Fluent Bit".into(),
        "vector" => "Vector".into(),
        "alloy" => "Alloy".into(),
        other => other.into(),
    }
}

/// How shipper compares with the agent of `o` in the same scenario: speed, CPU per GiB and peak RSS
/// as multiples ("3.2× faster, 25× less CPU, 2.1× less memory" reads as `3.2× / 25× / 2.1×`).
fn versus(outcomes: &[Outcome], o: &Outcome) -> String {
    let Some(ours) = outcomes
        .iter()
        .find(|s| s.agent == "shipper" && s.scenario == o.scenario)
        .filter(|_| !o.agent.starts_with("shipper"))
    else {
        return "–".into();
    };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.1}×", a / b)
        } else {
            "–".into()
        }
    };
    format!(
        "{} / {} / {}",
        ratio(ours.mib_per_s, o.mib_per_s),
        ratio(o.cpu_s_per_gib, ours.cpu_s_per_gib),
        ratio(o.peak_rss_mib, ours.peak_rss_mib)
    )
}

/// A target's verdict (met, not met, or `None`: not measured) and the figure measured.
type Verdict = (Option<bool>, String);

/// The node-scale targets, each marked met, not met, or not run (this is a benchmark, not a test: only
/// lost lines fail the run).
pub fn targets(outcomes: &[Outcome], quick: bool) -> String {
    let find = |scenario: &str, agent: &str| outcomes.iter().find(|o| o.scenario == scenario && o.agent == agent);
    let mut rows: Vec<(String, Option<Verdict>)> = Vec::new();
    let t1 = find("throughput-1", "shipper");
    rows.push((
        "throughput-1: ≤ 1.05× the in-process bound, ≥ 250 MiB/s, peak RSS ≤ 64 MiB".into(),
        t1.map(|o| {
            let ratio = o
                .bound_cpu_s_per_gib
                .filter(|b| *b > 0.0)
                .map_or(f64::INFINITY, |b| o.cpu_s_per_gib / b);
            (
                Some(ratio <= 1.05 && o.mib_per_s >= 250.0 && o.peak_rss_mib <= 64.0),
                format!("{ratio:.2}×, {:.0} MiB/s, {:.1} MiB", o.mib_per_s, o.peak_rss_mib),
            )
        }),
    ));
    rows.push((
        "stages: ≥ 90 % of the plain path's MiB/s".into(),
        find("stages", "shipper (stages)")
            .zip(find("stages", "shipper (plain)"))
            .map(|(s, p)| {
                let share = s.mib_per_s / p.mib_per_s.max(f64::MIN_POSITIVE);
                (Some(share >= 0.9), format!("{:.0} %", 100.0 * share))
            }),
    ));
    rows.push((
        "idle-10000: ≤ 20 ms CPU per 10 idle seconds".into(),
        find("idle-10000", "shipper")
            .and_then(|o| o.idle_cpu_ms)
            .map(|ms| (Some(ms <= 20.0), format!("{ms:.0} ms"))),
    ));
    rows.push((
        "node: ≤ 2× the CPU per GiB of throughput-1, peak RSS ≤ 64 MiB, 0 lost".into(),
        find("node", "shipper").zip(t1).map(|(n, t)| {
            let ratio = n.cpu_s_per_gib / t.cpu_s_per_gib.max(f64::MIN_POSITIVE);
            (
                Some(ratio <= 2.0 && n.peak_rss_mib <= 64.0 && n.lost == 0),
                format!(
                    "{ratio:.2}× ({:.2} CPU-s/GiB), {:.1} MiB, {} lost",
                    n.cpu_s_per_gib, n.peak_rss_mib, n.lost
                ),
            )
        }),
    ));
    let glob = find("node-glob", "shipper");
    for (peer, var, times) in [("promtail", "PROMTAIL_BIN", 25.0), ("fluent-bit", "FLUENTBIT_BIN", 6.0)] {
        let what = format!("node-glob: shipper's CPU per GiB ≥ {times}× below {}'s", display(peer));
        rows.push(match (glob, find("node-glob", peer)) {
            (Some(ours), Some(theirs)) => {
                let ratio = theirs.cpu_s_per_gib / ours.cpu_s_per_gib.max(f64::MIN_POSITIVE);
                (what, Some((Some(ratio >= times), format!("{ratio:.1}× below"))))
            }
            (Some(_), None) => (what, Some((None, format!("not measured ({var} not set)")))),
            (None, _) => (what, None),
        });
    }
    let wake = find("wake-10k-1000f-ebpf", "shipper (ebpf)").and_then(|o| o.wake_ms);
    rows.push((
        "wake (10k writes/s, eBPF): write → read p50 / p99 reported".into(),
        wake.map(|l| (Some(true), format!("{:.1} / {:.1} ms", l.p50, l.p99))),
    ));
    let live = find("live", "shipper").and_then(|o| o.latency_ms);
    rows.push((
        "live: write → stored p50 / p99 reported".into(),
        live.map(|l| (Some(true), format!("{:.0} / {:.0} ms", l.p50, l.p99))),
    ));
    let mut s = String::from("Targets");
    if quick {
        s.push_str(" — --quick sizes: indicative only");
    }
    s.push_str(":\n\n| target | measured | |\n|---|---|---|\n");
    for (what, got) in rows {
        let (mark, measured) = match got {
            Some((Some(true), m)) => ("met", m),
            Some((Some(false), m)) => ("**not met**", m),
            Some((None, m)) => ("not measured", m),
            None => ("not run", "–".to_string()),
        };
        s.push_str(&format!("| {what} | {measured} | {mark} |\n"));
    }
    s
}
