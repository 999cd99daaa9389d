//! The agents a bench scenario can run: shipper itself, and the peers users compare it with when
//! their binaries are given (`PROMTAIL_BIN`, `FLUENTBIT_BIN`, `VECTOR_BIN`, `ALLOY_BIN`). Each gets a config written for the
//! same files, the same sink and the same batching, and is measured the same way.

use crate::agent::{self, Agent, Target};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shipper,
    Promtail,
    FluentBit,
    Vector,
    Alloy,
}

#[derive(Clone, Debug)]
pub struct Peer {
    pub kind: Kind,
    pub bin: PathBuf,
}

/// Environment variables that name peer binaries, and the peers they stand for.
pub const PEER_VARS: &[(&str, Kind)] = &[
    ("PROMTAIL_BIN", Kind::Promtail),
    ("FLUENTBIT_BIN", Kind::FluentBit),
    ("VECTOR_BIN", Kind::Vector),
    ("ALLOY_BIN", Kind::Alloy),
];

impl Peer {
    pub fn name(&self) -> &'static str {
        Peer::name_of(self.kind)
    }

    /// How the report names an agent of `kind`.
    pub fn name_of(kind: Kind) -> &'static str {
        match kind {
            Kind::Shipper => "shipper",
            Kind::Promtail => "promtail",
            Kind::FluentBit => "fluent-bit",
            Kind::Vector => "vector",
            Kind::Alloy => "alloy",
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
                let mut agent = Agent::spawn(cmd, &log, &format!("http://127.0.0.1:{port}/ready"), true)?;
                agent.metrics_url = Some(format!("http://127.0.0.1:{port}/metrics"));
                Ok(agent)
            }
            Kind::Promtail => start_promtail(&self.bin, dir, glob, url, batch_wait, ""),
            Kind::FluentBit => {
                let config = dir.join("fluent-bit.conf");
                let conf = fluentbit_config(dir, glob, url, port, batch_wait)?;
                std::fs::write(&config, conf).map_err(|e| format!("{}: {e}", config.display()))?;
                let mut cmd = Command::new(&self.bin);
                cmd.arg("-c").arg(config);
                // Fluent Bit's HTTP server answers `Connection: close` but keeps the connection
                // open, which the harness's client waits out until its timeout. So the spawn only
                // waits for the sink (always up), and Fluent Bit's health is read here instead.
                let (host, sink_port, _) = split_url(url)?;
                let agent = Agent::spawn(cmd, &log, &format!("http://{host}:{sink_port}/ready"), true)?;
                fluentbit_ready(port, &log)?;
                Ok(agent)
            }
            Kind::Vector => {
                let config = dir.join("vector.yaml");
                let data = dir.join("vector-data");
                std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
                let yaml = vector_config(&data, glob, url, batch_wait, confines_templates(&self.bin))?;
                std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
                let mut cmd = Command::new(&self.bin);
                cmd.arg("--config").arg(config).env("VECTOR_LOG", "info");
                // A minimal Vector build has no API server: it is up once it says so in its log.
                let (host, sink_port, _) = split_url(url)?;
                let agent = Agent::spawn(cmd, &log, &format!("http://{host}:{sink_port}/ready"), true)?;
                wait_for_log(&log, "Vector has started")?;
                Ok(agent)
            }
            Kind::Alloy => {
                let config = dir.join("bench.alloy");
                std::fs::write(&config, alloy_config(glob, url, batch_wait))
                    .map_err(|e| format!("{}: {e}", config.display()))?;
                let mut cmd = Command::new(&self.bin);
                cmd.arg("run")
                    .arg(format!("--server.http.listen-addr=127.0.0.1:{port}"))
                    .arg(format!("--storage.path={}", dir.join("alloy-data").display()))
                    .arg(config);
                Agent::spawn(cmd, &log, &format!("http://127.0.0.1:{port}/-/ready"), true)
            }
        }
    }
}

/// Writes Promtail's config in `dir` (see [`promtail_config`]), starts it and waits until it is up.
/// `stages`: pipeline stages after `cri`, as YAML list items indented by six spaces.
pub fn start_promtail(
    bin: &Path,
    dir: &Path,
    glob: &Path,
    url: &str,
    batch_wait: &str,
    stages: &str,
) -> Result<Agent, String> {
    let port = agent::free_port()?;
    let log = dir.join("promtail.log");
    let config = dir.join("promtail.yaml");
    let yaml = promtail_config(dir, glob, url, port, batch_wait, stages);
    std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-config.file={}", config.display()));
    // Promtail's /ready answers 500 until its targets are read; being up is enough here.
    Agent::spawn(cmd, &log, &format!("http://127.0.0.1:{port}/ready"), false)
}

/// Promtail as its users run it on a node: one scrape config over the CRI files with the `cri`
/// stage (then `stages`), a static `job` label, positions in `dir`, one client with the same
/// batching as shipper.
pub(super) fn promtail_config(dir: &Path, glob: &Path, url: &str, port: u16, batch_wait: &str, stages: &str) -> String {
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  grpc_listen_port: 0\n  log_level: warn\n\
         positions:\n  filename: {positions}\n\
         clients:\n  - url: {url}\n    batchwait: {batch_wait}\n    batchsize: 1048576\n\
         scrape_configs:\n  - job_name: bench\n    pipeline_stages:\n      - cri: {{}}\n{stages}    static_configs:\n      \
         - targets: [localhost]\n        labels:\n          job: bench\n          __path__: {glob}\n",
        positions = dir.join("promtail-positions.yaml").display(),
        glob = glob.display(),
    )
}

/// Fluent Bit as its users run it on a node (the classic-mode config of its Kubernetes docs): one
/// `tail` input over the CRI files with the built-in `cri` multiline parser and its offsets DB in
/// `dir`, one `loki` output with a static `job` label. The CRI parser leaves `time`, `stream` and
/// `_p` beside `log`; they are removed and the lone `log` is sent as the bare line (`raw`), which
/// is what Promtail's `cri` stage and shipper send. Fluent Bit has no batch wait of its own: its
/// engine hands buffered chunks to the output every `Flush` seconds (fractions allowed), so that is
/// set to `batch_wait`.
fn fluentbit_config(dir: &Path, glob: &Path, url: &str, port: u16, batch_wait: &str) -> Result<String, String> {
    let (host, sink_port, uri) = split_url(url)?;
    let flush = seconds(batch_wait)?;
    Ok(format!(
        "\
[SERVICE]
    Flush            {flush}
    Log_Level        warn
    HTTP_Server      On
    HTTP_Listen      127.0.0.1
    HTTP_Port        {port}
    Health_Check     On

[INPUT]
    Name             tail
    Tag              bench
    Path             {glob}
    Read_from_Head   true
    DB               {db}
    multiline.parser cri
    Refresh_Interval 1

[OUTPUT]
    Name             loki
    Match            *
    Host             {host}
    Port             {sink_port}
    Uri              {uri}
    Labels           job=bench
    Remove_Keys      time,stream,_p
    Line_Format      json
    Drop_Single_Key  raw
",
        glob = glob.display(),
        db = dir.join("fluent-bit.db").display(),
    ))
}

/// Vector as its users run it on files: a `file` source over the CRI files (read from the start,
/// files told apart by device and inode, its checkpoints in `data`), a `remap` transform that does
/// what Promtail's `cri` stage does — split the CRI prefix, keep the line, its stream and its
/// timestamp — and a `loki` sink (protobuf + snappy) with a static `job` and the `stream` label,
/// batching up to `batch_wait` or 1 MiB like the others.
fn vector_config(data: &Path, glob: &Path, url: &str, batch_wait: &str, confined: bool) -> Result<String, String> {
    let (host, sink_port, uri) = split_url(url)?;
    let timeout = seconds(batch_wait)?;
    // Since 0.57 a label template without a literal prefix must be allowed explicitly; older
    // versions refuse the setting.
    let unconfined = if confined {
        "    dangerously_allow_unconfined_template_resolution: true\n"
    } else {
        ""
    };
    Ok(format!(
        r#"data_dir: {data}
sources:
  files:
    type: file
    include: ["{glob}"]
    read_from: beginning
    fingerprint:
      strategy: device_and_inode
transforms:
  cri:
    type: remap
    inputs: [files]
    source: |
      parts, err = parse_regex(.message, r'^(?P<time>\S+) (?P<stream>stdout|stderr) (?P<tag>[FP]) (?P<log>.*)$')
      if err == null {{
        .message = parts.log
        .stream = parts.stream
        ts, err = parse_timestamp(parts.time, format: "%+")
        if err == null {{ .timestamp = ts }}
      }}
sinks:
  loki:
    type: loki
    inputs: [cri]
    endpoint: http://{host}:{sink_port}
    path: {uri}
    encoding:
      codec: text
    compression: snappy
    labels:
      job: bench
      stream: "{{{{ stream }}}}"
    remove_label_fields: true
{unconfined}    out_of_order_action: accept
    healthcheck:
      enabled: false
    batch:
      timeout_secs: {timeout}
      max_bytes: 1048576
"#,
        data = data.display(),
        glob = glob.display(),
    ))
}

/// Alloy as its users run it on files (its migration guide's translation of the Promtail config
/// above): `local.file_match` over the CRI files, `loki.source.file`, `loki.process` with
/// `stage.cri`, and `loki.write` with the same batching; positions under `--storage.path`.
fn alloy_config(glob: &Path, url: &str, batch_wait: &str) -> String {
    format!(
        r#"local.file_match "bench" {{
  path_targets = [{{"__path__" = "{glob}", "job" = "bench"}}]
  sync_period  = "1s"
}}

loki.source.file "bench" {{
  targets    = local.file_match.bench.targets
  forward_to = [loki.process.cri.receiver]
}}

loki.process "cri" {{
  stage.cri {{}}
  forward_to = [loki.write.sink.receiver]
}}

loki.write "sink" {{
  endpoint {{
    url        = "{url}"
    batch_wait = "{batch_wait}"
    batch_size = "1MiB"
  }}
}}
"#,
        glob = glob.display(),
    )
}

/// Whether this Vector (0.57 or later, by `vector --version`) confines templates.
fn confines_templates(bin: &Path) -> bool {
    let out = Command::new(bin).arg("--version").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "vector 0.58.0 (x86_64-unknown-linux-gnu …)"
    let version = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (0, 57)
}

/// Waits up to 20 s until `log` holds `needle`.
fn wait_for_log(log: &Path, needle: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no \"{needle}\" in {} after 20 s", log.display()))
}

/// Waits up to 20 s until Fluent Bit's `/api/v1/health` (on with `Health_Check`) answers 200;
/// only the status line is read, as the server does not close the connection.
fn fluentbit_ready(port: u16, log: &Path) -> Result<(), String> {
    let request = format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            if conn.write_all(request.as_bytes()).is_ok() {
                while head.len() < 12 {
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
            }
            if head.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("fluent-bit not healthy after 20 s; see {}", log.display()))
}

/// `http://host:port/path` → (host, port, /path).
fn split_url(url: &str) -> Result<(&str, u16, &str), String> {
    let bad = || format!("{url}: expected http://host:port/path");
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = rest.split_at(rest.find('/').ok_or_else(bad)?);
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    Ok((host, port.parse().map_err(|_| bad())?, path))
}

/// `100ms` or `1s` → seconds, as Fluent Bit writes them (`0.1`, `1`).
fn seconds(duration: &str) -> Result<f64, String> {
    let bad = || format!("{duration}: expected a duration in ms or s");
    let (n, per_second) = match duration.strip_suffix("ms") {
        Some(ms) => (ms, 1000.0),
        None => (duration.strip_suffix('s').ok_or_else(bad)?, 1.0),
    };
    Ok(n.parse::<f64>().map_err(|_| bad())? / per_second)
}
