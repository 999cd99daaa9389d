//! `shipper convert`: an Alloy or Promtail configuration (or the Helm values and ArgoCD
//! Application that install it) read and written as ours, with a report that says, construct by
//! construct, what was mapped, what is built in, and what was left out.
//!
//! Every source is lowered into [`out::Out`] (our config as YAML values), which is rendered and
//! checked by the loader `shipper check` uses, so what is written always loads; chart values and
//! Applications are made from it.

pub mod alloy;
#[cfg(test)]
pub(crate) mod alloy_fixture;
mod app;
mod chart;
pub(crate) mod client;
mod docker;
mod env;
mod journal;
mod k8s;
mod out;
mod peers;
mod promtail;
mod report;
mod scope;
#[cfg(test)]
mod scope_tests;
mod stages;
#[cfg(test)]
pub(crate) mod tests;
mod tpl;
mod tpl_syntax;

pub use report::{Note, Outcome, Report};

/// What `--from` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// An Alloy configuration file (`config.alloy`).
    Alloy,
    /// A Promtail `config.yaml`.
    Promtail,
    /// Values of Alloy's Helm chart (its config in `alloy.configMap.content`), or an ArgoCD
    /// Application installing that chart with them.
    AlloyHelmValues,
    /// Values of Promtail's Helm chart (`config.*`), or an ArgoCD Application installing it.
    PromtailHelmValues,
}

/// What `--to` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// shipper's config file.
    #[default]
    Config,
    /// Values for shipper's Helm chart (deploy/helm/shipper).
    HelmValues,
    /// The ArgoCD Application (given with --from *-helm-values) rewritten to install shipper's chart.
    Argocd,
}

/// What was written and its report.
#[derive(Debug)]
pub struct Converted {
    /// Our config, chart values or Application, as YAML.
    pub yaml: String,
    pub report: Report,
}

/// What else a conversion reads.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Where the `$values/...` files of a multi-source ArgoCD Application are: a checkout of its
    /// `ref: values` source.
    pub values_dir: Option<std::path::PathBuf>,
    /// The release name the peer's chart was installed with (before the Application's own).
    pub release_name: Option<String>,
}

/// Converts `text` (read from `file`, named in the report and errors) into `to`. Err: the source
/// does not parse, is not of that kind, or cannot give `to` (file:line:column where known).
pub fn convert(from: Source, to: Target, text: &str, file: &str) -> Result<Converted, String> {
    convert_with(from, to, text, file, &Options::default())
}

/// [`convert`] with [`Options`].
pub fn convert_with(from: Source, to: Target, text: &str, file: &str, opts: &Options) -> Result<Converted, String> {
    let mut report = Report::new(file);
    // The variables of placeholders left for Helm templates: reported where they were made.
    let mut holes = Vec::new();
    let (out, input) = match from {
        Source::Alloy => {
            let body = alloy::parse(text).map_err(|e| format!("{file}:{e}"))?;
            (
                alloy::lower_in(&body, std::path::Path::new(file).parent(), &mut report)
                    .map_err(|e| format!("{file}:{e}"))?,
                None,
            )
        }
        Source::Promtail => (
            promtail::lower(text, &mut report).map_err(|e| format!("{file}: {e}"))?,
            None,
        ),
        Source::AlloyHelmValues | Source::PromtailHelmValues => {
            let chart = if from == Source::AlloyHelmValues {
                peers::Chart::Alloy
            } else {
                peers::Chart::Promtail
            };
            let mut input =
                app::read(chart, text, opts.values_dir.as_deref(), &mut report).map_err(|e| format!("{file}: {e}"))?;
            if opts.release_name.is_some() {
                input.release.clone_from(&opts.release_name);
            }
            let out = app::lower(chart, &input, file, &mut holes, &mut report)?;
            (out, Some((chart, input)))
        }
    };
    if out.targets.is_empty() && !out.kubernetes_discovery && out.journal.is_none() {
        // Receivers only (syslog, Kafka, the push API...): nothing here is a node agent's.
        report.unsupported(
            None,
            "the whole config",
            "outside a node log agent's job (nothing left to tail: shipper reads the node's log files and journal); nothing written",
        );
        return Ok(Converted {
            yaml: String::new(),
            report,
        });
    }
    let mut out = out;
    let resolved = match &input {
        Some((chart, input)) => {
            let env = env::read(*chart, &input.values);
            env::resolve(&mut out, &env, to, &holes, &mut report)
        }
        None => env::Resolved::default(),
    };
    let explained: Vec<String> = resolved.explained.iter().chain(&holes).cloned().collect();
    let config = out.render();
    out::check(&config, &explained, &mut report)?;
    let name = |s: Source| {
        use clap::ValueEnum;
        s.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    let yaml = match to {
        Target::Config => format!(
            "# Converted from {file} by `shipper convert --from {}`.\n{config}",
            name(from)
        ),
        Target::HelmValues => {
            let values = match &input {
                Some((chart, input)) => app::values(*chart, input, &out, &resolved.implicit, &mut report),
                None => chart::values(&out, &mut report),
            };
            format!(
                "# Values for shipper's chart ({}), converted from {file} by `shipper convert`.\n{}",
                app::CHART_PATH,
                serde_yaml_ng::to_string(&values).unwrap_or_default()
            )
        }
        Target::Argocd => {
            let Some((chart, input)) = &input else {
                return Err("--to argocd rewrites an ArgoCD Application: give one with --from alloy-helm-values or promtail-helm-values".into());
            };
            let Some(application) = &input.app else {
                return Err(format!(
                    "{file} is chart values, not an ArgoCD Application: use --to helm-values"
                ));
            };
            let values = app::values(*chart, input, &out, &resolved.implicit, &mut report);
            let written = app::application(application, input, values, &mut report);
            format!(
                "# shipper's chart installed by ArgoCD, converted from {file} by `shipper convert`.\n{}",
                serde_yaml_ng::to_string(&written).unwrap_or_default()
            )
        }
    };
    Ok(Converted { yaml, report })
}
