//! Test fixture: Alloy configs of one file source whose lines go through `loki.process` stages.

use super::{convert, Converted, Source, Target};
use crate::config::StageConfig;

/// An Alloy config: `loki.source.file "a"` (`/var/log/*.log`) forwarding to
/// `loki.process.first`, then `components` (which declare it, from line 6 on), then
/// `loki.write "default"`.
pub(crate) fn file_source_into(components: &str) -> String {
    format!(
        r#"
loki.source.file "a" {{
  targets    = [{{__path__ = "/var/log/*.log"}}]
  forward_to = [loki.process.first.receiver]
}}
{components}
loki.write "default" {{
  endpoint {{
    url = "http://loki:3100/loki/api/v1/push"
  }}
}}
"#
    )
}

/// Converts Alloy `text` to a config and loads it: the conversion and its first target's stages.
pub(crate) fn converted_stages(text: &str) -> (Converted, Vec<StageConfig>) {
    let c = convert(Source::Alloy, Target::Config, text, "config.alloy").unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap_or_else(|e| panic!("{e}\n{}", c.yaml));
    let stages = cfg
        .targets
        .first()
        .map(|t| t.pipeline_stages.clone())
        .unwrap_or_default();
    (c, stages)
}
