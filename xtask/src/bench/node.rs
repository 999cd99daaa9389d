//! The `node` scenario: a busy Kubernetes node as the agent meets it. 500 pods × 2 containers in a
//! kubelet tree, `discovery: kubernetes` with the pods served by the API stand-in, 5 % of the
//! containers writing 2 MiB/s together with kubelet rotation, the others one line a minute.
//! CPU per GiB (from the agent's start being over to the last line stored), peak RSS and write →
//! stored latency, every line accounted for.

use super::scenarios::{finish, line, percentiles, wait_all};
use super::{Ctx, Outcome};
use crate::agent::{self, Agent};
use shipper_testkit::{Format, KubeApi, LogWriter, Pod, Receiver};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PODS: u32 = 500;
const CONTAINERS: [&str; 2] = ["app", "sidecar"];
/// One container in this many writes fast.
const BUSY_EVERY: u32 = 20;
/// What the busy containers write together, in lines per second (~256 bytes each with the CRI
/// header: 2 MiB/s).
const BUSY_LINES_PER_S: u64 = 8_200;
const NODE: &str = "bench-node";

/// Pod `p`'s namespace, name and uid.
fn pod(p: u32) -> (String, String, String) {
    (format!("team-{}", p % 20), format!("app-{p}"), format!("uid-{p}"))
}

/// File `f` (pod f / 2, container f % 2): its kubelet path.
fn log_path(dir: &Path, f: u32) -> PathBuf {
    let (ns, name, uid) = pod(f / 2);
    let container = CONTAINERS[(f % 2) as usize];
    dir.join(format!("pods/{ns}_{name}_{uid}/{container}/0.log"))
}

fn config(dir: &Path, url: &str, port: u16) -> Result<PathBuf, String> {
    let yaml = format!(
        "server:\n  http_listen: 127.0.0.1:{port}\n  log_level: warn\npositions:\n  filename: {pos}\nclient:\n  url: {url}\n  batch_wait: 1s\ndiscovery: kubernetes\nkubernetes:\n  pods_root: {pods}\n  kubeconfig: {kc}\n  node_name: {NODE}\n",
        pos = dir.join("positions.json").display(),
        pods = dir.join("pods").display(),
        kc = dir.join("kubeconfig").display(),
    );
    let path = dir.join("shipper.yaml");
    std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

pub fn node(ctx: &Ctx, bin: &Path) -> Result<Outcome, String> {
    let dir = ctx.dir("node")?;
    let secs: u64 = if ctx.quick { 5 } else { 30 };
    let rotate_at: u64 = if ctx.quick { 128 << 10 } else { 1 << 20 };
    let files = PODS * CONTAINERS.len() as u32;
    let api = KubeApi::start();
    api.write_kubeconfig(&dir.join("kubeconfig"));
    for p in 0..PODS {
        let (ns, name, uid) = pod(p);
        let mut pod = Pod::new(&ns, &name, &uid, NODE).label("app", &name);
        for c in CONTAINERS {
            pod = pod.container(c, None);
        }
        api.apply_pod(&pod);
    }
    let busy: Vec<u32> = (0..files).filter(|f| f % BUSY_EVERY == 0).collect();
    let quiet: Vec<u32> = (0..files).filter(|f| f % BUSY_EVERY != 0).collect();
    let ticks = secs * 100;
    // Quiet container q writes its one line a minute at tick q × 6000 / quiet.len(): those due within
    // the run write once.
    let quiet_tick = |q: usize| q as u64 * 6_000 / quiet.len() as u64;
    let per_tick = BUSY_LINES_PER_S / 100;
    let per_busy = ticks * per_tick / busy.len() as u64;
    let mut expected: Vec<(u32, u64)> = busy.iter().map(|&f| (f, per_busy)).collect();
    expected.extend(
        quiet
            .iter()
            .enumerate()
            .map(|(q, &f)| (f, u64::from(quiet_tick(q) < ticks))),
    );
    expected.sort();
    let loki = Receiver::start_tally(expected.iter().copied(), true);
    // kubelet creates each container's log when the container starts: all exist before the agent.
    let mut writers = Vec::with_capacity(files as usize);
    for f in 0..files {
        writers.push(LogWriter::create(log_path(&dir, f), Format::Cri).map_err(|e| e.to_string())?);
    }
    let port = agent::free_port()?;
    let agent = Agent::start(bin, &config(&dir, &loki.url(), port)?, port)?;
    // CPU from here on: the node at work, without the start (first scan, pod list, 1,000 opens).
    let cpu0 = agent.cpu_seconds();
    let t0 = Instant::now();
    let (mut seqs, mut since) = (vec![0u64; files as usize], vec![0u64; files as usize]);
    let (mut next_busy, mut next_quiet) = (0usize, 0usize);
    let target = busy.len() as u64 * per_busy;
    for k in 0..ticks {
        let mut touched = Vec::new();
        for _ in 0..per_tick {
            if next_busy as u64 >= target {
                break;
            }
            let f = busy[next_busy % busy.len()] as usize;
            next_busy += 1;
            let l = line(f as u32, seqs[f]);
            since[f] += l.len() as u64 + 36;
            writers[f].write_line("stdout", &l).map_err(|e| e.to_string())?;
            seqs[f] += 1;
            touched.push(f);
        }
        while next_quiet < quiet.len() && quiet_tick(next_quiet) <= k {
            let f = quiet[next_quiet] as usize;
            next_quiet += 1;
            writers[f]
                .write_line("stdout", &line(f as u32, 0))
                .map_err(|e| e.to_string())?;
            seqs[f] += 1;
            touched.push(f);
        }
        touched.sort_unstable();
        touched.dedup();
        for f in touched {
            writers[f].flush().map_err(|e| e.to_string())?;
            if since[f] >= rotate_at {
                writers[f].rotate_kubelet().map_err(|e| e.to_string())?;
                since[f] = 0;
            }
        }
        let due = t0 + Duration::from_millis(10 * (k + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let written: Vec<(u32, u64)> = (0..files).map(|f| (f, seqs[f as usize])).collect();
    if written != expected {
        return Err("node: the lines written differ from the lines expected".into());
    }
    let account = wait_all(&loki, &expected, Duration::from_secs(120))?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = agent.cpu_seconds() - cpu0;
    let mut o = finish(agent, "shipper", "node", &dir, files, &account, secs)?;
    o.cpu_seconds = cpu;
    o.cpu_s_per_gib = cpu / (o.bytes as f64 / (1u64 << 30) as f64);
    o.latency_ms = Some(percentiles(loki.latencies_ns()));
    Ok(o)
}
