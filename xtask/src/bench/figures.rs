//! The checks that keep every benchmark figure in the docs a figure of the committed report: the
//! generated page and README block must be exactly what `docs/bench/report.json` renders to, and the
//! hand-written pages must not carry a benchmark-looking figure (a number followed by MiB/s,
//! CPU-s/GiB, ms, MiB, ×, % of plain, lines/s or cores) outside them; nor may any other page of the
//! book carry a figure in a unit only a benchmark measures (MiB/s, CPU-s per GiB, % of plain, ×
//! the bound).

use super::results::{self, Report};
use std::path::{Path, PathBuf};

/// The units that make a number look like a measurement.
const UNITS: &[&str] = &[
    "MiB/s",
    "CPU-s/GiB",
    "ms",
    "MiB",
    "×",
    "% of plain",
    "lines/s",
    "cores",
    "core",
];

/// The units only a benchmark measures. Every page of the book other than [`PAGES`] and the results
/// page is scanned for these (the others hold end-to-end tests' figures, such as memory, which are
/// not benchmark results).
const BENCH_UNITS: &[&str] = &[
    "MiB/s",
    "CPU-s/GiB",
    "CPU-s per GiB",
    "% of plain",
    "× the bound",
    "× its in-process bound",
];

/// The hand-written pages that must not carry measurements.
pub const PAGES: &[&str] = &[
    "README.md",
    "docs/src/benchmarks.md",
    "docs/src/production.md",
    "docs/src/introduction.md",
];

/// Figures that are not measurements, by page and the phrase that holds them. Beside these, two
/// kinds of number are never measurements and are skipped wherever they are: a threshold (the
/// number follows `≤` or `≥`: a target, not a result) and anything in code (`batch_wait: 100ms`,
/// fenced blocks: config values and commands).
pub const NOT_MEASUREMENTS: &[(&str, &str)] = &[
    // The scenario table: the workloads' sizes and rates.
    ("docs/src/benchmarks.md", "100 files × 10 MiB"),
    ("docs/src/benchmarks.md", "rotation every 10 MiB"),
    ("docs/src/benchmarks.md", "512 MiB in all"),
    ("docs/src/benchmarks.md", "500 pods × 2 containers"),
    ("docs/src/benchmarks.md", "write 2 MiB/s together"),
    ("docs/src/benchmarks.md", "rotation every 1 MiB"),
    ("docs/src/benchmarks.md", "50,000 lines/s across 100 files"),
    // A config default: the memory budget's bytes waiting for Loki.
    ("docs/src/production.md", "(256 MiB of log data"),
];

/// A figure found: the page, its line (from 1) and the figure as written.
#[derive(Debug, PartialEq)]
pub struct Hit {
    pub file: String,
    pub line: usize,
    pub figure: String,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `line` with inline code spans blanked (same length in chars is not needed: hits are reported by
/// their text).
fn without_code(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        out.push_str(if i % 2 == 0 { part } else { " " });
    }
    out
}

/// The benchmark-looking figures of one line, as (byte offset, figure).
fn figures_in(line: &str, units: &[&str]) -> Vec<(usize, String)> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let starts = c.is_ascii_digit() && (i == 0 || !is_word(chars[i - 1].1) && chars[i - 1].1 != '.');
        if !starts {
            i += 1;
            continue;
        }
        // The number: digits, `.` or `,` between digits, and a range (`223–230`).
        let mut j = i;
        while j < chars.len() {
            let c = chars[j].1;
            let between = |k: usize| {
                k > i && k + 1 < chars.len() && chars[k - 1].1.is_ascii_digit() && chars[k + 1].1.is_ascii_digit()
            };
            if c.is_ascii_digit() || (matches!(c, '.' | ',' | '–' | '-') && between(j)) {
                j += 1;
            } else {
                break;
            }
        }
        let end = chars.get(j).map_or(line.len(), |c| c.0);
        let mut rest = &line[end..];
        rest = rest.strip_prefix(' ').unwrap_or(rest);
        let threshold = line[..at].trim_end().ends_with(['≤', '≥']);
        let unit = units.iter().find(|u| {
            rest.starts_with(**u)
                && !rest[u.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| is_word(c) && !u.ends_with('×'))
        });
        if let (Some(unit), false) = (unit, threshold) {
            let figure_end = line.len() - rest.len() + unit.len();
            hits.push((at, line[at..figure_end].to_string()));
        }
        i = j.max(i + 1);
    }
    hits
}

/// The figures of `text` (page `file`) outside code, README's generated block and the listed
/// exceptions.
pub fn scan(file: &str, text: &str) -> Vec<Hit> {
    scan_for(file, text, UNITS)
}

/// The figures in `units` of `text` (page `file`) outside code, README's generated block and the
/// listed exceptions.
fn scan_for(file: &str, text: &str, units: &[&str]) -> Vec<Hit> {
    let skip = if file == "README.md" {
        results::block_span(text).ok()
    } else {
        None
    };
    let mut hits = Vec::new();
    let (mut fenced, mut offset) = (false, 0);
    for (n, line) in text.split('\n').enumerate() {
        let here = offset;
        offset += line.len() + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || skip.is_some_and(|(s, e)| here >= s && here < e) {
            continue;
        }
        let plain = without_code(line);
        let allowed: Vec<(usize, usize)> = NOT_MEASUREMENTS
            .iter()
            .filter(|(f, _)| *f == file)
            .flat_map(|(_, phrase)| plain.match_indices(phrase).map(|(at, p)| (at, at + p.len())))
            .collect();
        for (at, figure) in figures_in(&plain, units) {
            if !allowed.iter().any(|(s, e)| at >= *s && at + figure.len() <= *e) {
                hits.push(Hit {
                    file: file.into(),
                    line: n + 1,
                    figure,
                });
            }
        }
    }
    hits
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed report, or what to do without it.
pub fn committed() -> Result<Report, String> {
    let path = root().join(results::JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}; run `cargo xtask bench` (every scenario, full size) and commit what it writes",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::*;

    /// Fails showing `text` unless it holds `want`.
    fn has(text: &str, want: &str) {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }

    /// A made-up report (round figures, no peers given) in the shape a run writes.
    fn fixture() -> Report {
        serde_json::from_str(include_str!("testdata/report.json")).expect("the fixture parses")
    }

    #[test]
    fn the_page_shows_where_shipper_spent_its_cpu_per_thread() {
        let mut report = fixture();
        assert!(
            !results::page(&report).contains("shipper's threads"),
            "no thread costs, no table"
        );
        let thread = |name: &str, count, cpu, sleeps, preempted| super::super::Thread {
            name: name.into(),
            count,
            cpu_seconds: cpu,
            voluntary_switches: sleeps,
            involuntary_switches: preempted,
        };
        let node = report.outcomes.iter_mut().find(|o| o.scenario == "node").unwrap();
        node.threads = vec![
            thread("shipper-net", 2, 0.15, 3699, 45),
            thread("shipper-reader", 1, 0.64, 1456, 815),
        ];
        let page = results::page(&report);
        has(&page, "| thread | shipper: CPU s | shipper: sleeps / preemptions |");
        has(&page, "| shipper-net ×2 | 0.15 | 3699 / 45 |");
        has(&page, "| shipper-reader | 0.64 | 1456 / 815 |");
        // The table follows the node scenario's, not another's.
        let node_at = page.find("## `node`").unwrap();
        let table_at = page.find("| shipper-reader |").unwrap();
        assert!(
            table_at > node_at && page[node_at..table_at].matches("\n## ").count() == 0,
            "{page}"
        );
    }

    #[test]
    fn the_published_page_and_readme_block_are_the_rendering_of_the_committed_report() {
        let report = committed().unwrap_or_else(|e| panic!("{e}"));
        let page = std::fs::read_to_string(root().join(results::PAGE)).unwrap_or_default();
        assert!(
            page == results::page(&report),
            "{} differs from what {} renders to: a figure was edited by hand, or the report changed \
             without the page; run `cargo xtask bench`",
            results::PAGE,
            results::JSON
        );
        let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
        let (s, e) = results::block_span(&readme).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            readme[s..e] == results::readme_block(&report),
            "README.md's benchmark block differs from what {} renders to; run `cargo xtask bench`",
            results::JSON
        );
    }

    #[test]
    fn no_benchmark_figure_outside_the_generated_blocks() {
        assert_none(
            PAGES,
            UNITS,
            "quote docs/src/results.md or README's block instead, or list a figure that is not a \
             measurement in NOT_MEASUREMENTS",
        );
    }

    /// Fails listing every figure in `units` on `pages`, with `what_to_do`.
    fn assert_none<P: AsRef<str>>(pages: &[P], units: &[&str], what_to_do: &str) {
        let mut list = Vec::new();
        for page in pages.iter().map(AsRef::as_ref) {
            let text = std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
            list.extend(
                scan_for(page, &text, units)
                    .into_iter()
                    .map(|h| format!("{}:{}: {}", h.file, h.line, h.figure)),
            );
        }
        assert!(
            list.is_empty(),
            "benchmark figures outside the generated results ({what_to_do}):\n{}",
            list.join("\n")
        );
    }

    /// Every page of the book but the results page and [`PAGES`], under docs/src.
    fn other_pages() -> Vec<String> {
        let mut pages = Vec::new();
        let mut dirs = vec![root().join("docs/src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    dirs.push(path);
                } else if rel.ends_with(".md") && rel != "docs/src/results.md" && !PAGES.contains(&rel.as_str()) {
                    pages.push(rel);
                }
            }
        }
        pages.sort();
        pages
    }

    #[test]
    fn no_benchmark_figure_on_the_other_pages_of_the_book() {
        let pages = other_pages();
        assert!(pages.iter().any(|p| p == "docs/src/guarantees.md"), "{pages:?}");
        assert_none(&pages, BENCH_UNITS, "link docs/src/results.md instead");
        // The narrower scan still finds such a figure.
        assert_eq!(
            scan_for("x.md", "it reads 250 MiB/s at 3.1 CPU-s per GiB, 40 MiB", BENCH_UNITS).len(),
            2
        );
    }

    #[test]
    fn the_scan_finds_measurements_and_skips_thresholds_code_and_listed_workloads() {
        let text = "shipper: 279 MiB/s at 2.97 CPU-s/GiB, 0.89× the bound, 44 MiB, p50 56 ms\n\
                    target ≤ 64 MiB, ≥ 250 MiB/s, `batch_wait: 100ms`\n\
                    ```\nbatch_wait: 100ms\n```\n\
                    | `throughput-100` | 100 files × 10 MiB |\n\
                    ~0.05 core, 223–230 MiB/s, 82 % of plain, 50,000 lines/s, 5 cores\n";
        let hits: Vec<(usize, String)> = scan("docs/src/benchmarks.md", text)
            .into_iter()
            .map(|h| (h.line, h.figure))
            .collect();
        let want: Vec<(usize, String)> = [
            (1, "279 MiB/s"),
            (1, "2.97 CPU-s/GiB"),
            (1, "0.89×"),
            (1, "44 MiB"),
            (1, "56 ms"),
            (7, "0.05 core"),
            (7, "223–230 MiB/s"),
            (7, "82 % of plain"),
            (7, "50,000 lines/s"),
            (7, "5 cores"),
        ]
        .into_iter()
        .map(|(l, f)| (l, f.to_string()))
        .collect();
        assert_eq!(hits, want);
        // The workload exception holds on its page only.
        assert_eq!(scan("README.md", "100 files × 10 MiB").len(), 1);
    }

    #[test]
    fn readme_figures_inside_the_block_are_not_scanned() {
        let block = results::readme_block(&fixture());
        let readme = format!("# shipper\n\n{block}\n\nCheap: 3.9 CPU-s/GiB.\n");
        let hits = scan("README.md", &readme);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].figure, "3.9 CPU-s/GiB");
    }

    #[test]
    fn absent_peers_are_shown_as_not_measured_never_with_a_figure() {
        let report = fixture();
        let page = results::page(&report);
        let block = results::readme_block(&report);
        for text in [&page, &block] {
            has(text, "not measured (PROMTAIL_BIN not set)");
            has(text, "not measured (FLUENTBIT_BIN not set)");
        }
        // node-glob's table: shipper's row with figures, then one row per peer not run.
        let glob = page.split("## `node-glob`").nth(1).expect("a node-glob table");
        let glob = glob.split("\n## ").next().unwrap_or(glob);
        let rows: Vec<&str> = glob.lines().filter(|l| l.starts_with("| ")).collect();
        assert!(rows[1].starts_with("| shipper | "), "{glob}");
        assert!(
            rows[2].starts_with("| Promtail | not measured (PROMTAIL_BIN not set) |"),
            "{glob}"
        );
        assert!(
            rows[3].starts_with("| Fluent Bit | not measured (FLUENTBIT_BIN not set) |"),
            "{glob}"
        );
        // The targets say so too, rather than met or not met.
        let targets = page.split("## Targets").nth(1).expect("targets");
        has(
            targets,
            "below Promtail's | not measured (PROMTAIL_BIN not set) | not measured |",
        );
    }

    #[test]
    fn a_measured_peer_has_its_row_its_version_and_the_ratio_target() {
        let mut report = fixture();
        let mut promtail = Outcome {
            scenario: "node-glob".into(),
            agent: "promtail".into(),
            cpu_s_per_gib: 150.0,
            peak_rss_mib: 100.0,
            ..Default::default()
        };
        promtail.lost = 7;
        report.outcomes.push(promtail);
        report.run.peers[0].version = Some("promtail, version 2.9.10".into());
        let page = results::page(&report);
        has(&page, "| Promtail | promtail, version 2.9.10 |");
        // 150 / 7.5 = 20× below: under the 25× target.
        has(&page, "below Promtail's | 20.0× below | **not met** |");
        has(
            &page,
            "| Promtail | 150.00 | – | 100.0 | – | 7 / 0 / 0 | 20.0× / 2.5× |",
        );
        assert!(!page.contains("PROMTAIL_BIN not set"), "{page}");
        has(&page, "| Fluent Bit | not measured (FLUENTBIT_BIN not set) |");
        let block = results::readme_block(&report);
        has(&block, "| Promtail | 150.0 CPU-s/GiB, – cores, 100 MiB, 7 lost |");
    }

    #[test]
    fn publishing_writes_the_json_the_page_and_the_block_the_check_reads_back() {
        let root = tempfile::tempdir().expect("a temp dir");
        let readme = format!(
            "# shipper\n\n{}\nhand-written figures\n{}\n\n## Next\n",
            results::README_BEGIN,
            results::README_END
        );
        std::fs::write(root.path().join("README.md"), &readme).expect("README.md");
        let report = fixture();
        let json = serde_json::to_vec_pretty(&report).expect("json");
        results::publish(root.path(), &json, &report).expect("published");
        let read = |rel: &str| std::fs::read_to_string(root.path().join(rel)).expect(rel);
        let back: Report = serde_json::from_str(&read(results::JSON)).expect("the JSON reads back");
        assert_eq!(read(results::PAGE), results::page(&back));
        let text = read("README.md");
        let (s, e) = results::block_span(&text).expect("markers");
        assert_eq!(text[s..e], results::readme_block(&back));
        assert!(!text.contains("hand-written figures"));
        assert!(text.starts_with("# shipper\n\n") && text.ends_with("\n\n## Next\n"));
    }

    #[test]
    fn every_figure_on_the_page_comes_from_the_report() {
        let mut report = fixture();
        let page = results::page(&report);
        let t1 = report
            .outcomes
            .iter_mut()
            .find(|o| o.scenario == "throughput-1" && o.agent == "shipper")
            .expect("throughput-1 in the fixture");
        let before = format!("| shipper | {:.1} |", t1.mib_per_s);
        assert!(page.contains(&before), "{page}");
        t1.mib_per_s += 1.0;
        let after = results::page(&report);
        assert!(!after.contains(&before) && after != page);
    }

    #[test]
    fn the_readme_block_replaces_only_what_lies_between_the_markers() {
        let report = fixture();
        let block = results::readme_block(&report);
        let old = format!(
            "intro\n{}\nold figures\n{}\noutro\n",
            results::README_BEGIN,
            results::README_END
        );
        let new = results::with_block(&old, &block).expect("markers");
        assert_eq!(new, format!("intro\n{block}\noutro\n"));
        assert!(results::with_block("no markers", &block).is_err());
    }
}
