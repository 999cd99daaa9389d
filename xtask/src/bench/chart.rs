//! `target/bench/report.svg`: throughput, CPU per GiB (against the in-process bound where there is
//! one), idle CPU, peak RSS and write → stored latency per scenario, as plain SVG (no plotting
//! dependency; any browser shows it).

use super::Outcome;
use std::fmt::Write;

const W: f64 = 860.0;
const ROW: f64 = 26.0;
const LEFT: f64 = 270.0;
const BAR_W: f64 = W - LEFT - 90.0;

fn panel(svg: &mut String, top: f64, title: &str, rows: &[(String, f64)], unit: &str) -> f64 {
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" font-weight="bold">{title}</text>"#,
        top + 16.0
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = top + 28.0 + i as f64 * ROW;
        let w = BAR_W * v / max;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{label}</text><rect x="{LEFT}" y="{}" width="{w:.1}" height="18" fill="#4e79a7"/><text x="{}" y="{}">{v:.1} {unit}</text>"##,
            LEFT - 8.0,
            y + 14.0,
            y,
            LEFT + w + 6.0,
            y + 14.0
        );
    }
    top + 36.0 + rows.len() as f64 * ROW
}

pub fn svg(outcomes: &[Outcome]) -> String {
    let mut body = String::new();
    let name = |o: &Outcome| format!("{} ({})", o.scenario, o.agent);
    // Idle and latency runs move too little data for a speed to mean anything.
    let throughput: Vec<(String, f64)> = outcomes
        .iter()
        .filter(|o| o.idle_cpu_ms.is_none() && o.latency_ms.is_none())
        .map(|o| (name(o), o.mib_per_s))
        .collect();
    let mut y = panel(
        &mut body,
        0.0,
        "Throughput until the sink holds every line",
        &throughput,
        "MiB/s",
    );
    let cpu: Vec<(String, f64)> = outcomes
        .iter()
        .filter(|o| o.idle_cpu_ms.is_none() && o.cpu_s_per_gib > 0.0)
        .flat_map(|o| {
            let bound = o.bound_cpu_s_per_gib.map(|b| (format!("{} bound", o.scenario), b));
            std::iter::once((name(o), o.cpu_s_per_gib)).chain(bound)
        })
        .collect();
    if !cpu.is_empty() {
        y = panel(
            &mut body,
            y,
            "CPU seconds per GiB (agent, and the in-process bound where there is one)",
            &cpu,
            "s",
        );
    }
    let idle: Vec<(String, f64)> = outcomes
        .iter()
        .filter_map(|o| o.idle_cpu_ms.map(|ms| (name(o), ms)))
        .collect();
    if !idle.is_empty() {
        y = panel(&mut body, y, "CPU per 10 idle seconds", &idle, "ms");
    }
    let rss: Vec<(String, f64)> = outcomes
        .iter()
        .filter(|o| o.peak_rss_mib > 0.0)
        .map(|o| (name(o), o.peak_rss_mib))
        .collect();
    if !rss.is_empty() {
        y = panel(&mut body, y, "Peak RSS", &rss, "MiB");
    }
    for o in outcomes {
        if let Some(l) = o.latency_ms {
            let rows = [
                ("p50".to_string(), l.p50),
                ("p99".to_string(), l.p99),
                ("max".to_string(), l.max),
            ];
            y = panel(
                &mut body,
                y,
                &format!("{} ({}): write → stored latency", o.scenario, o.agent),
                &rows,
                "ms",
            );
        }
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}
