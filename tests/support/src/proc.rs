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

/// What the threads of one name (tokio's workers share theirs) cost so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadCost {
    pub name: String,
    /// Threads of that name.
    pub threads: usize,
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Times they gave up the CPU to wait (each one a sleep and a wake-up).
    pub voluntary_switches: u64,
    /// Times the scheduler took the CPU from them.
    pub involuntary_switches: u64,
}

/// Per thread name of process `pid`, from `/proc/<pid>/task/*/{stat,status}`, sorted by name;
/// empty when the process is gone.
pub fn thread_costs(pid: u32) -> Vec<ThreadCost> {
    let mut by_name: std::collections::BTreeMap<String, ThreadCost> = Default::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let name = field("Name:");
        let cost = by_name.entry(name.clone()).or_insert_with(|| ThreadCost {
            name,
            ..ThreadCost::default()
        });
        cost.threads += 1;
        cost.cpu_seconds += cpu_seconds(&dir.join("stat").to_string_lossy());
        cost.voluntary_switches += field("voluntary_ctxt_switches:").parse::<u64>().unwrap_or(0);
        cost.involuntary_switches += field("nonvoluntary_ctxt_switches:").parse::<u64>().unwrap_or(0);
    }
    by_name.into_values().collect()
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

    #[test]
    fn reads_the_threads_of_this_process() {
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        // The new thread names itself once it runs: look after it said so.
        let t = std::thread::Builder::new()
            .name("proc-probe".into())
            .spawn(move || {
                let _ = started_tx.send(());
                rx.recv()
            })
            .unwrap();
        started.recv().unwrap();
        let costs = super::thread_costs(me);
        let probe = costs.iter().find(|c| c.name == "proc-probe");
        assert_eq!(probe.map(|c| c.threads), Some(1), "{costs:?}");
        assert!(costs.iter().map(|c| c.threads).sum::<usize>() >= 2);
        drop(tx);
        let _ = t.join();
        assert!(super::thread_costs(u32::MAX).is_empty());
    }
}
