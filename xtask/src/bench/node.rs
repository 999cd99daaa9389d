//! The `node` scenario: a busy Kubernetes node as the agent meets it. 500 pods × 2 containers in a
//! kubelet tree, `discovery: kubernetes` with the pods served by the API stand-in, 5 % of the
//! containers writing 2 MiB/s together with kubelet rotation, the others one line a minute.
//! CPU per GiB (from the agent's start being over to the last line stored), peak RSS and write →
//! stored latency, every line accounted for.
//!
//! `node-glob` is the same node for every agent, shipper and each peer whose binary is given: the
//! same tree, writers and rotation, read through the path glob `pods/*/*/*.log` (CRI, from the
//! beginning, the files present before the agent starts) instead of Kubernetes discovery.

use super::peers::Peer;
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

/// The node's workload: which files write, how much, and what the sink must end up holding.
struct Plan {
    files: u32,
    busy: Vec<u32>,
    quiet: Vec<u32>,
    ticks: u64,
    per_tick: u64,
    per_busy: u64,
    rotate_at: u64,
    expected: Vec<(u32, u64)>,
}

impl Plan {
    fn new(ctx: &Ctx) -> Plan {
        let secs: u64 = if ctx.quick { 5 } else { 30 };
        let files = PODS * CONTAINERS.len() as u32;
        let busy: Vec<u32> = (0..files).filter(|f| f % BUSY_EVERY == 0).collect();
        let quiet: Vec<u32> = (0..files).filter(|f| f % BUSY_EVERY != 0).collect();
        let ticks = secs * 100;
        let per_tick = BUSY_LINES_PER_S / 100;
        let per_busy = ticks * per_tick / busy.len() as u64;
        let mut plan = Plan {
            files,
            busy,
            quiet,
            ticks,
            per_tick,
            per_busy,
            rotate_at: if ctx.quick { 128 << 10 } else { 1 << 20 },
            expected: Vec::new(),
        };
        let mut expected: Vec<(u32, u64)> = plan.busy.iter().map(|&f| (f, per_busy)).collect();
        expected.extend(
            plan.quiet
                .iter()
                .enumerate()
                .map(|(q, &f)| (f, u64::from(plan.quiet_tick(q) < ticks))),
        );
        expected.sort();
        plan.expected = expected;
        plan
    }

    /// Quiet container q writes its one line a minute at tick q × 6000 / quiet.len(): those due
    /// within the run write once.
    fn quiet_tick(&self, q: usize) -> u64 {
        q as u64 * 6_000 / self.quiet.len() as u64
    }

    /// kubelet creates each container's log when the container starts: all exist before the agent.
    fn writers(&self, dir: &Path) -> Result<Vec<LogWriter>, String> {
        (0..self.files)
            .map(|f| LogWriter::create(log_path(dir, f), Format::Cri).map_err(|e| e.to_string()))
            .collect()
    }

    /// Writes the node's lines from `t0` on, every 10 ms, with kubelet rotation.
    fn drive(&self, writers: &mut [LogWriter], t0: Instant) -> Result<(), String> {
        let files = self.files as usize;
        let (mut seqs, mut since) = (vec![0u64; files], vec![0u64; files]);
        let (mut next_busy, mut next_quiet) = (0usize, 0usize);
        let target = self.busy.len() as u64 * self.per_busy;
        for k in 0..self.ticks {
            let mut touched = Vec::new();
            for _ in 0..self.per_tick {
                if next_busy as u64 >= target {
                    break;
                }
                let f = self.busy[next_busy % self.busy.len()] as usize;
                next_busy += 1;
                let l = line(f as u32, seqs[f]);
                since[f] += l.len() as u64 + 36;
                writers[f].write_line("stdout", &l).map_err(|e| e.to_string())?;
                seqs[f] += 1;
                touched.push(f);
            }
            while next_quiet < self.quiet.len() && self.quiet_tick(next_quiet) <= k {
                let f = self.quiet[next_quiet] as usize;
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
                if since[f] >= self.rotate_at {
                    writers[f].rotate_kubelet().map_err(|e| e.to_string())?;
                    since[f] = 0;
                }
            }
            let due = t0 + Duration::from_millis(10 * (k + 1));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let written: Vec<(u32, u64)> = (0..self.files).map(|f| (f, seqs[f as usize])).collect();
        if written != self.expected {
            return Err("node: the lines written differ from the lines expected".into());
        }
        Ok(())
    }
}

/// Drives the plan against a started agent, waits for every line and fills the outcome: CPU from
/// `cpu0` (the agent's start being over), cores over the run, write → stored latency.
fn measure(
    plan: &Plan,
    agent: Agent,
    agent_name: &str,
    scenario: &str,
    dir: &Path,
    loki: &Receiver,
    mut writers: Vec<LogWriter>,
) -> Result<Outcome, String> {
    let cpu0 = agent.cpu_seconds();
    let t0 = Instant::now();
    plan.drive(&mut writers, t0)?;
    let account = wait_all(loki, &plan.expected, Duration::from_secs(120))?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = agent.cpu_seconds() - cpu0;
    let mut o = finish(agent, agent_name, scenario, dir, plan.files, &account, secs)?;
    o.cpu_seconds = cpu;
    o.cpu_s_per_gib = cpu / (o.bytes as f64 / (1u64 << 30) as f64);
    o.cores = Some(cpu / secs);
    o.latency_ms = Some(percentiles(loki.latencies_ns()));
    Ok(o)
}

/// shipper with `discovery: kubernetes`, the pods served by the API stand-in.
pub fn node(ctx: &Ctx, bin: &Path) -> Result<Outcome, String> {
    let dir = ctx.dir("node")?;
    let plan = Plan::new(ctx);
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
    let loki = Receiver::start_tally(plan.expected.iter().copied(), true);
    let writers = plan.writers(&dir)?;
    let port = agent::free_port()?;
    let agent = Agent::start(bin, &config(&dir, &loki.url(), port)?, port)?;
    measure(&plan, agent, "shipper", "node", &dir, &loki, writers)
}

/// `peer` (shipper or another agent) on the same node through the path glob `pods/*/*/*.log`.
pub fn node_glob(ctx: &Ctx, peer: &Peer) -> Result<Outcome, String> {
    let dir = ctx.dir("node-glob")?;
    let plan = Plan::new(ctx);
    let loki = Receiver::start_tally(plan.expected.iter().copied(), true);
    let writers = plan.writers(&dir)?;
    let agent = peer.start(&dir, &dir.join("pods/*/*/*.log"), &loki.url(), "1s")?;
    measure(&plan, agent, peer.name(), "node-glob", &dir, &loki, writers)
}
