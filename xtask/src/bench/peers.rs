//! The agents a bench scenario can run: shipper itself, and the peers users compare it with when
//! their binaries are given (`PROMTAIL_BIN`, …). Each gets a config written for the same files,
//! the same sink and the same batching, and is measured the same way.

use crate::agent::{self, Agent, Target};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shipper,
    Promtail,
}

#[derive(Clone, Debug)]
pub struct Peer {
    pub kind: Kind,
    pub bin: PathBuf,
}

/// Environment variables that name peer binaries, and the peers they stand for.
const PEER_VARS: &[(&str, Kind)] = &[("PROMTAIL_BIN", Kind::Promtail)];

/// Peers users ask about that the harness cannot run yet, with the variable they would set.
const NOT_YET: &[&str] = &["FLUENTBIT_BIN", "VECTOR_BIN", "ALLOY_BIN"];

impl Peer {
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Shipper => "shipper",
            Kind::Promtail => "promtail",
        }
    }

    /// shipper, then every peer whose binary an environment variable names.
    pub fn all(shipper: PathBuf) -> Result<Vec<Peer>, String> {
        let mut peers = vec![Peer {
            kind: Kind::Shipper,
            bin: shipper,
        }];
        for (var, kind) in PEER_VARS {
            let Some(bin) = std::env::var_os(var).map(PathBuf::from) else {
                continue;
            };
            if !bin.is_file() {
                return Err(format!(
                    "{var}={}: no such file; unset it or point it at the binary",
                    bin.display()
                ));
            }
            peers.push(Peer { kind: *kind, bin });
        }
        for var in NOT_YET {
            if std::env::var_os(var).is_some() {
                return Err(format!(
                    "{var} is set, but the bench cannot run that agent yet (only PROMTAIL_BIN); unset it"
                ));
            }
        }
        Ok(peers)
    }

    /// Writes this agent's config in `dir` for CRI files matching `glob`, pushing to the sink at
    /// `url` with `batch_wait`, starts it and waits until it is up.
    pub fn start(&self, dir: &Path, glob: &Path, url: &str, batch_wait: &str) -> Result<Agent, String> {
        let port = agent::free_port()?;
        let log = dir.join(format!("{}.log", self.name()));
        match self.kind {
            Kind::Shipper => {
                let targets = [Target {
                    glob,
                    format: "cri",
                    job: "bench",
                }];
                let config = agent::write_config(dir, url, port, &targets, batch_wait)?;
                let mut cmd = Command::new(&self.bin);
                cmd.args(["run", "--config"]).arg(config);
                Agent::spawn(cmd, &log, &format!("http://127.0.0.1:{port}/ready"), true)
            }
            Kind::Promtail => {
                let config = dir.join("promtail.yaml");
                let yaml = promtail_config(dir, glob, url, port, batch_wait);
                std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
                let mut cmd = Command::new(&self.bin);
                cmd.arg(format!("-config.file={}", config.display()));
                // Promtail's /ready answers 500 until its targets are read; being up is enough here.
                Agent::spawn(cmd, &log, &format!("http://127.0.0.1:{port}/ready"), false)
            }
        }
    }
}

/// Promtail as its users run it on a node: one scrape config over the CRI files with the `cri`
/// stage, a static `job` label, positions in `dir`, one client with the same batching as shipper.
fn promtail_config(dir: &Path, glob: &Path, url: &str, port: u16, batch_wait: &str) -> String {
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  grpc_listen_port: 0\n  log_level: warn\n\
         positions:\n  filename: {positions}\n\
         clients:\n  - url: {url}\n    batchwait: {batch_wait}\n    batchsize: 1048576\n\
         scrape_configs:\n  - job_name: bench\n    pipeline_stages:\n      - cri: {{}}\n    static_configs:\n      \
         - targets: [localhost]\n        labels:\n          job: bench\n          __path__: {glob}\n",
        positions = dir.join("promtail-positions.yaml").display(),
        glob = glob.display(),
    )
}
