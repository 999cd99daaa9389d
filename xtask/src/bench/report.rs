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
        let ratio = o.bound_cpu_s_per_gib.filter(|b| *b > 0.0).map(|b| o.cpu_s_per_gib / b);
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
            opt(ratio, 2),
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
