//! The agent's own log: `server.log_level` (checked like any setting, and changed by a reload, as
//! Alloy's `logging` block is) and `server.log_format` (text or JSON, fixed at start). `RUST_LOG`,
//! when set, wins over `log_level` and stays in force through reloads.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// How the agent writes its own log (`server.log_format`).
#[derive(Clone, Copy, Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

const LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "warning", "error", "off"];

/// The filter for `log_level`: a level (`info`), or directives that set it per module as `RUST_LOG`
/// does (`info,shipper::tail=debug`). Anything else is an error, not a filter that silently hides
/// every line (`EnvFilter` would read `verbose` as a module name).
pub fn filter(log_level: &str) -> Result<EnvFilter, String> {
    let is_level = |s: &str| LEVELS.contains(&s.trim().to_ascii_lowercase().as_str());
    let is_module = |s: &str| {
        !s.is_empty()
            && s.split("::")
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    };
    for directive in log_level.split(',') {
        let ok = match directive.trim().split_once('=') {
            None => is_level(directive),
            Some((module, level)) => is_module(module.trim()) && is_level(level),
        };
        if !ok {
            return Err(format!(
                "`{log_level}`: `{}` is not a level (trace, debug, info, warn, error, off) nor `module=level`",
                directive.trim()
            ));
        }
    }
    EnvFilter::try_new(log_level).map_err(|e| format!("`{log_level}`: {e}"))
}

/// What a reload needs to change the level of the running log.
pub struct Logging {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    from_env: bool,
}

impl Logging {
    /// Installs the log: `RUST_LOG` if set, else `log_level` (already checked by the config).
    pub fn init(log_level: &str, format: LogFormat) -> Logging {
        // RUST_LOG rules only when it is set and parses; else log_level does, and reloads change it.
        let (start, from_env) = match EnvFilter::try_from_default_env() {
            Ok(f) => (f, true),
            Err(_) => (filter(log_level).unwrap_or_else(|_| EnvFilter::new("info")), false),
        };
        let (level, handle) = reload::Layer::new(start);
        // Colours only on a terminal: `kubectl logs`, journald and log files get plain text.
        let out = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let out = match format {
            LogFormat::Json => out.json().boxed(),
            LogFormat::Text => out.boxed(),
        };
        // A second init (tests running the agent in process) keeps the first log.
        let installed = tracing_subscriber::registry().with(level).with(out).try_init().is_ok();
        Logging {
            handle: installed.then_some(handle),
            from_env,
        }
    }

    /// Applies a reloaded `log_level`; says why not when it cannot.
    pub fn set_level(&self, log_level: &str) -> Result<(), String> {
        if self.from_env {
            return Err("RUST_LOG is set and takes precedence; unset it to use server.log_level".into());
        }
        let Some(handle) = &self.handle else {
            return Err("this process's log was set up elsewhere".into());
        };
        let new = filter(log_level)?;
        handle.reload(new).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn levels_and_module_directives_pass_and_typos_are_errors() {
        for ok in [
            "info",
            "DEBUG",
            "warn",
            "off",
            "info,shipper::tail=debug",
            "shipper=trace",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "", "info,", "shipper::=debug", "=debug", "shipper=loud"] {
            let e = filter(bad).expect_err(bad);
            assert!(e.contains("is not a level"), "{bad}: {e}");
        }
    }
}
