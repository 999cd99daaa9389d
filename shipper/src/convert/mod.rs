//! `shipper convert`: an Alloy or Promtail configuration read and written as ours, with a report
//! that says, construct by construct, what was mapped, what is built in, and what was left out.
//!
//! Both sources are lowered into [`out::Out`] (our config as YAML values), then rendered and checked
//! by the same loader `shipper check` uses, so what is written always loads.

pub mod alloy;
mod k8s;
mod out;
mod promtail;
mod report;
mod stages;
#[cfg(test)]
mod tests;

pub use report::{Note, Outcome, Report};

/// What `--from` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// An Alloy configuration file (`config.alloy`).
    Alloy,
    /// A Promtail `config.yaml`.
    Promtail,
}

/// The converted configuration and its report.
#[derive(Debug)]
pub struct Converted {
    /// Our config as YAML, which `shipper check` accepts.
    pub yaml: String,
    pub report: Report,
}

/// Converts `text` (read from `file`, named in the report and errors). Err: the source does not
/// parse, or is not a configuration of that kind (with file:line:column where known).
pub fn convert(from: Source, text: &str, file: &str) -> Result<Converted, String> {
    let mut report = Report::new(file);
    let out = match from {
        Source::Alloy => {
            let body = alloy::parse(text).map_err(|e| format!("{file}:{e}"))?;
            alloy::lower(&body, &mut report).map_err(|e| format!("{file}:{e}"))?
        }
        Source::Promtail => promtail::lower(text, &mut report).map_err(|e| format!("{file}: {e}"))?,
    };
    let header = format!(
        "# Converted from {file} by `shipper convert --from {}`.\n",
        match from {
            Source::Alloy => "alloy",
            Source::Promtail => "promtail",
        }
    );
    let yaml = header + &out.render();
    out::check(&yaml, &mut report)?;
    Ok(Converted { yaml, report })
}
