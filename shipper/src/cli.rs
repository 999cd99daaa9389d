//! The command line: `shipper run`, `shipper check`, `shipper convert`, `shipper reference`,
//! `shipper positions`. Flags cover the essentials for a quick start
//! without a config file and override the file where both are given.

use crate::config::{self, Config, StartAt, TargetConfig};
use crate::parse::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shipper",
    version,
    about = "Ships container log files to Grafana Loki, losing nothing"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Tail the configured files and push them to Loki until SIGTERM/SIGINT.
    Run(Opts),
    /// Validate the configuration and print it with every default filled in.
    Check(Opts),
    /// Convert an Alloy or Promtail configuration into shipper's. A report on stderr says, line by
    /// line, what was mapped, what is built in, what you must give and what was left out. Exit 0:
    /// all carried over; 3: something left out or to give (written anyway unless --strict); 2:
    /// the source does not parse.
    Convert(ConvertOpts),
    /// Print the configuration reference (every key, its type, default and meaning) in Markdown.
    Reference,
    /// Print a positions file (`positions.filename`) as JSON: each file's path, identity and
    /// acknowledged offset, the time the state stands for and the journal's cursor. Exit 2 when it
    /// cannot be read or is not a positions file.
    Positions {
        /// The positions file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct ConvertOpts {
    /// What FILE is.
    #[arg(long, value_name = "KIND")]
    from: crate::convert::Source,
    /// What to write.
    #[arg(long, value_name = "KIND", default_value = "config")]
    to: crate::convert::Target,
    /// The configuration to convert.
    file: PathBuf,
    /// Where to write shipper's config (default: stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write nothing (exit 3) when anything is left out or needs input.
    #[arg(long)]
    strict: bool,
    /// A checkout of the `ref: values` source of a multi-source ArgoCD Application: its
    /// `$values/PATH` values files are read from DIR/PATH.
    #[arg(long, value_name = "DIR")]
    values_dir: Option<PathBuf>,
    /// The Helm release name the peer's chart was installed with (`helm install NAME`), for
    /// `{{ .Release.Name }}` in its values; default: the Application's release name, else a
    /// `${RELEASE_NAME}` placeholder.
    #[arg(long, value_name = "NAME")]
    release_name: Option<String>,
}

fn convert(o: &ConvertOpts) -> ExitCode {
    let name = o.file.display().to_string();
    let text = match std::fs::read_to_string(&o.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = crate::convert::Options {
        values_dir: o.values_dir.clone(),
        release_name: o.release_name.clone(),
    };
    let done = match crate::convert::convert_with(o.from, o.to, &text, &name, &opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    eprint!("{}", done.report.render());
    let complete = done.report.complete();
    if !complete && o.strict {
        eprintln!("--strict: nothing written, as something above is not supported or needs input");
        return ExitCode::from(3);
    }
    if done.yaml.is_empty() {
        return ExitCode::from(3);
    }
    match &o.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &done.yaml) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "wrote {}; check it with `shipper check -c {}`",
                path.display(),
                path.display()
            );
        }
        None => print!("{}", done.yaml),
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

#[derive(Args, Clone, Default)]
struct Opts {
    /// YAML config file (`${VAR}` and `${VAR:-default}` are expanded).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Glob of files to tail (repeatable); forms one target with --exclude, --label and --format.
    #[arg(long = "path", value_name = "GLOB")]
    paths: Vec<String>,
    /// Glob of files not to tail (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Loki push URL, e.g. http://loki:3100/loki/api/v1/push.
    #[arg(long, value_name = "URL")]
    loki: Option<String>,
    /// Positions file.
    #[arg(long, value_name = "FILE")]
    positions: Option<PathBuf>,
    /// Static label k=v (repeatable); with --path for that target, else for every target.
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Where to start in files that exist at the first start: beginning or end.
    #[arg(long, value_name = "WHERE")]
    start_at: Option<StartAt>,
    /// Log format of the files: auto, cri, docker or raw.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    /// Address of the /metrics, /ready, /healthz server ("" disables it).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<String>,
    /// Log level or tracing filter, e.g. info, debug, shipper=debug.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not a label; write it as name=value")),
    }
}

impl Opts {
    /// The config file (if any) with the flags applied on top, validated, with the targets discovery adds.
    fn effective(&self) -> Result<Config, config::ConfigError> {
        let (cfg, source) = self.given()?;
        complete(cfg, &source)
    }

    /// The config file (if any) with the flags applied on top, and where it came from: what `check`
    /// prints (without the discovered targets, so that its output can be used as a config file).
    fn given(&self) -> Result<(Config, String), config::ConfigError> {
        let (mut cfg, source) = match &self.config {
            Some(p) => (config::load_file(p)?, p.display().to_string()),
            None => (Config::default(), "command line".to_string()),
        };
        if !self.paths.is_empty() {
            cfg.targets.push(TargetConfig {
                paths: self.paths.clone(),
                exclude: self.excludes.clone(),
                labels: self.labels.iter().cloned().collect(),
                format: self.format.unwrap_or_default(),
                ..Default::default()
            });
        } else {
            for t in &mut cfg.targets {
                t.labels.extend(self.labels.iter().cloned());
                if let Some(f) = self.format {
                    t.format = f;
                }
            }
        }
        if let Some(u) = &self.loki {
            cfg.client.url = u.clone();
        }
        if let Some(p) = &self.positions {
            cfg.positions.filename = p.clone();
        }
        if let Some(s) = self.start_at {
            cfg.tail.start_at = s;
        }
        if let Some(a) = &self.http_listen {
            cfg.server.http_listen = a.clone();
        }
        if let Some(l) = &self.log_level {
            cfg.server.log_level = l.clone();
        }
        Ok((cfg, source))
    }

    /// [`Opts::effective`], then [`preflight`]: what `run`, a reload and `check` accept.
    fn accepted(&self) -> Result<Config, String> {
        self.effective().map_err(|e| e.to_string()).and_then(preflight)
    }
}

/// `cfg` with the targets discovery adds, validated.
fn complete(mut cfg: Config, source: &str) -> Result<Config, config::ConfigError> {
    cfg.add_discovered_targets();
    cfg.validate(source)?;
    Ok(cfg)
}

/// What `check` prints: the given config (without the discovered targets), once the complete one
/// passed everything `run` checks. The config file is read once.
fn checked(opts: &Opts) -> Result<Config, String> {
    let (given, source) = opts.given().map_err(|e| e.to_string())?;
    complete(given.clone(), &source)
        .map_err(|e| e.to_string())
        .and_then(preflight)?;
    Ok(given)
}

/// What `run` would find wrong at start besides the config's own rules, so that `check` catches it
/// too (install.sh and a reload rely on `check`): the HTTP address, each Loki client as it is built
/// (URL, secret files, TLS certificates and keys), and the `journalctl` program.
fn preflight(cfg: Config) -> Result<Config, String> {
    use std::net::ToSocketAddrs;
    let listen = &cfg.server.http_listen;
    if !listen.is_empty() {
        listen.to_socket_addrs().map_err(|e| {
            format!("`server.http_listen`: `{listen}` is not an address to listen on ({e}); write it like 0.0.0.0:9080")
        })?;
    }
    for (i, client) in std::iter::once(&cfg.client).chain(&cfg.clients).enumerate() {
        let which = if i == 0 {
            String::new()
        } else {
            format!("clients[{}]: ", i - 1)
        };
        crate::push::HttpClient::new(client).map_err(|e| format!("{which}{e}"))?;
    }
    if let Some(j) = &cfg.journal {
        let program = &j.journalctl_path;
        let found = if program.components().count() > 1 {
            program.is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        };
        if !found {
            return Err(format!(
                "`journal.journalctl_path`: `{}` is not found; install systemd's journalctl or set journal.journalctl_path",
                program.display()
            ));
        }
    }
    Ok(cfg)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Convert(o) => convert(&o),
        Cmd::Reference => {
            print!("{}", config::reference::generate().0);
            ExitCode::SUCCESS
        }
        Cmd::Positions { file } => match crate::checkpoint::Positions::show(&file) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                ExitCode::from(2)
            }
        },
        Cmd::Check(opts) => match checked(&opts) {
            Ok(cfg) => {
                match serde_yaml_ng::to_string(&cfg) {
                    Ok(y) => print!("{y}"),
                    Err(e) => eprintln!("cannot print the config: {e}"),
                }
                eprintln!("config is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run(opts) => {
            // Whatever `check` refuses, `run` refuses the same way (exit 2: systemd's unit does not
            // restart a config that can never start).
            let cfg = match opts.accepted() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let logging = crate::logging::Logging::init(&cfg.server.log_level, cfg.server.log_format);
            let load: crate::reload::Loader = Box::new(move || opts.accepted());
            match crate::agent::run(cfg, load, Some(logging)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
