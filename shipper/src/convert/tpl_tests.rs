//! The renderer of Helm templates, on the constructs the charts' values use.

use super::{render, Ctx};
use crate::convert::{Outcome, Report};
use serde_json::json;

fn run(text: &str, alloy: bool, namespace: Option<&str>) -> (String, Vec<String>, Report) {
    let values = json!({"a": {"b": "x", "n": 3, "list": [1, 2]}, "on": true, "empty": ""});
    let ctx = Ctx {
        values: &values,
        namespace,
        release: None,
        alloy,
    };
    let mut report = Report::new("v.yaml");
    let mut holes = Vec::new();
    let out = render(text, &ctx, "k", &mut holes, &mut report).unwrap();
    (out, holes, report)
}

#[test]
fn values_pipes_trims_and_conditions_render_as_helm_does() {
    let cases = [
        ("v: {{ .Values.a.b }}", "v: x"),
        ("v: {{ .Values.a.b | quote }}", "v: \"x\""),
        ("v: {{ .Values.a.n }}", "v: 3"),
        ("v: {{ .Values.missing | default \"d\" }}", "v: d"),
        ("v: {{ default \"d\" .Values.empty }}", "v: d"),
        ("a\n  {{- .Values.a.b }}\n", "ax\n"),
        ("a {{ .Values.a.b -}}\n  b", "a xb"),
        ("l:{{- toYaml .Values.a.list | nindent 2 }}", "l:\n  - 1\n  - 2"),
        ("{{ if .Values.on }}y{{ else }}n{{ end }}", "y"),
        ("{{ if .Values.empty }}y{{ else if .Values.on }}z{{ end }}", "z"),
        ("{{ with .Values.a }}{{ .b }}{{ end }}", "x"),
        ("{{- /* a comment */ -}} t", "t"),
        ("{{ \"{{\" }} .Value {{ \"}}\" }}", "{{ .Value }}"),
        ("{{ tpl \"{{ .Values.a.b }}\" . }}", "x"),
        ("no template", "no template"),
    ];
    for (text, want) in cases {
        let (out, holes, report) = run(text, false, None);
        assert_eq!(out, want, "{text:?}");
        assert!(holes.is_empty() && report.complete(), "{text:?}: {}", report.render());
    }
}

#[test]
fn what_cannot_be_rendered_becomes_a_placeholder_named_in_the_report() {
    let (out, holes, report) = run(
        "u: {{ .Values.x.y }}\nw: {{ include \"t\" . }}\nz: {{ include \"t\" . }}",
        false,
        None,
    );
    assert_eq!(out, "u: ${VALUES_X_Y}\nw: ${HELM_TEMPLATE_1}\nz: ${HELM_TEMPLATE_1}");
    assert_eq!(holes, ["VALUES_X_Y", "HELM_TEMPLATE_1"]);
    let needs = report
        .notes
        .iter()
        .filter(|n| matches!(n.outcome, Outcome::Needs(_)))
        .count();
    assert_eq!(needs, 2, "{}", report.render());
    // Alloy: in a string a hole the lowering turns into ${VAR}, elsewhere env("VAR").
    let (out, _, _) = run("a = \"{{ .Values.q }}\"\nb = {{ .Values.q }}", true, None);
    assert_eq!(out, "a = \"\u{E000}VALUES_Q\u{E001}\"\nb = env(\"VALUES_Q\")");
    let (out, _, _) = run("{{ range .Values.a.list }}- {{ . }}{{ end }}", false, None);
    assert_eq!(out, "${HELM_TEMPLATE_1}");
}

#[test]
fn the_release_namespace_is_the_applications_or_the_pods() {
    let (out, holes, report) = run("ns: {{ .Release.Namespace }}", false, Some("monitoring"));
    assert_eq!(out, "ns: monitoring");
    assert!(holes.is_empty() && report.complete());
    let (out, holes, report) = run("ns: {{ .Release.Namespace }}", false, None);
    assert_eq!(out, "ns: ${RELEASE_NAMESPACE}");
    assert!(holes.is_empty() && report.complete(), "{}", report.render());
    let (out, holes, report) = run("n: {{ .Release.Name }}", false, None);
    assert_eq!(out, "n: ${RELEASE_NAME}");
    assert_eq!(holes, ["RELEASE_NAME"]);
    assert!(!report.complete());
}

#[test]
fn a_field_helm_does_not_have_renders_as_helm_renders_it() {
    // What `helm template` gives for these through the Alloy chart's `tpl`: a missing field is
    // nil, false in a test, unequal to a string and empty when printed.
    let t = r#"t = `{{ if eq .Value "I" }}info{{ else if ne .Value "W" }}other{{ end }}`"#;
    let (out, holes, report) = run(t, true, None);
    assert_eq!(out, "t = `other`");
    assert!(holes.is_empty(), "{holes:?}");
    assert!(report.complete(), "{}", report.render());
    assert!(
        report
            .render()
            .contains("`.Value`: not needed: Helm's templates have no such field"),
        "{}",
        report.render()
    );
}

#[test]
fn broken_templates_are_errors_never_panics() {
    let values = json!({});
    let ctx = Ctx {
        values: &values,
        namespace: None,
        release: None,
        alloy: false,
    };
    for text in [
        "{{ .Values.a",
        "{{ if .Values.a }}x",
        "{{ end }}",
        "{{ \"}}",
        "{{ ((( }}",
        "{{ | }}",
        "{{ tpl . . }}",
    ] {
        let mut report = Report::new("v.yaml");
        let _ = render(text, &ctx, "k", &mut Vec::new(), &mut report);
    }
}

#[test]
fn the_release_name_given_to_convert_is_rendered() {
    use crate::convert::{convert_with, Options, Source, Target};
    let values = "config:\n  clients:\n    - url: http://{{ .Release.Name }}-loki:3100/loki/api/v1/push\n";
    let without = convert_with(
        Source::PromtailHelmValues,
        Target::Config,
        values,
        "v.yaml",
        &Options::default(),
    )
    .unwrap();
    assert!(
        without.yaml.contains("url: http://${RELEASE_NAME}-loki:3100"),
        "{}",
        without.yaml
    );
    assert!(without.report.render().contains("NEEDS INPUT: kept as ${RELEASE_NAME}"));
    let opts = Options {
        release_name: Some("logs".into()),
        ..Options::default()
    };
    let with = convert_with(Source::PromtailHelmValues, Target::Config, values, "v.yaml", &opts).unwrap();
    assert!(with.yaml.contains("url: http://logs-loki:3100"), "{}", with.yaml);
    assert!(with.report.complete(), "{}", with.report.render());
}
