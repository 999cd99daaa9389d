//! What a process costs, read from `/proc`: CPU seconds and peak resident memory. Used by the
//! end-to-end tests (memory bounds) and the benchmarks.

/// User + system CPU seconds from a `/proc/<pid>/stat` (or `/proc/thread-self/stat`) file, in clock
/// ticks of 1/100 s; 0 when it cannot be read.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'; utime and stime
    // are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of process `pid` so far.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// Peak resident memory of process `pid` so far (`VmHWM`), in bytes; 0 when it cannot be read.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(super::peak_rss(me) > 0);
        // Burn CPU until the kernel's tick-based accounting shows it (a few ticks at most).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while super::process_cpu_seconds(me) == 0.0 && start.elapsed().as_secs() < 5 {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i * i));
            }
        }
        assert!(super::process_cpu_seconds(me) > 0.0);
        assert_eq!(super::peak_rss(u32::MAX), 0);
    }
}
