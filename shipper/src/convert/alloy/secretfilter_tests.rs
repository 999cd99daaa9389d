use crate::config::StageConfig;
use crate::convert::alloy_fixture::{converted_stages, file_source_into};
use crate::convert::Outcome;

/// A `loki.secretfilter` between two `loki.process`: its stage between theirs, its arguments
/// carried (an older Alloy's maps as lists), what shipper lacks reported on its line.
#[test]
fn a_secretfilter_in_a_chain_becomes_a_stage_at_its_place() {
    let text = file_source_into(
        r#"loki.process "first" {
  stage.json {
    expressions = { msg = "" }
  }
  forward_to = [loki.secretfilter.s.receiver]
}
loki.secretfilter "s" {
  forward_to      = [loki.process.last.receiver]
  types           = { "aws" = "aws", "gh" = "github" }
  allowlist       = ["^AKIA0000"]
  redact_with     = "<R:$SECRET_NAME:$SECRET_HASH>"
  include_generic = true
  partial_mask    = 2
  gitleaks_config = "/etc/gitleaks.toml"
  origin_label    = "job"
}
loki.process "last" {
  stage.static_labels {
    values = { a = "b" }
  }
  forward_to = [loki.write.default.receiver]
}"#,
    );
    let (c, stages) = converted_stages(&text);
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["json", "secretfilter", "static_labels"]);
    let StageConfig::Secretfilter(f) = &stages[1] else { panic!("{names:?}") };
    assert_eq!(f.types, ["aws", "github"]);
    assert_eq!(f.allowlist, ["^AKIA0000"]);
    assert_eq!(f.redact_with.as_deref(), Some("<R:$SECRET_NAME:$SECRET_HASH>"));
    assert!(f.include_generic);
    assert_eq!((f.partial_mask, f.gitleaks_config.as_deref()), (2, None));
    let notes: Vec<(Option<u32>, &str, &str)> = c
        .report
        .notes
        .iter()
        .filter(|n| n.what.starts_with("loki.secretfilter"))
        .map(|n| {
            let kind = match n.outcome {
                Outcome::Mapped(_) => "mapped",
                Outcome::Unsupported(_) => "unsupported",
                Outcome::NotNeeded(_) => "not needed",
                Outcome::Needs(_) => "needs input",
                Outcome::BuiltIn(_) => "built in",
            };
            (n.line, n.what.as_str(), kind)
        })
        .collect();
    assert_eq!(
        notes,
        [
            (Some(19), "loki.secretfilter \"s\" gitleaks_config", "unsupported"),
            (Some(20), "loki.secretfilter \"s\" origin_label", "not needed"),
            (Some(12), "loki.secretfilter \"s\"", "mapped"),
        ]
    );
}
