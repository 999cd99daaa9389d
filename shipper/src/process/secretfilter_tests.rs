//! Each built-in rule on a secret of its format and on a near miss; the options; the stage in a
//! pipeline. The secrets are made up here, from the documented shapes (so no real-looking token is
//! written out in the source).

use super::*;
use crate::parse::StreamKind;

/// `n` characters cycling through `alphabet`.
fn fill(alphabet: &str, n: usize) -> String {
    alphabet.chars().cycle().take(n).collect()
}
fn alnum(n: usize) -> String {
    fill("aB3dE5gH7jK9mN1pQ2sT4vW6yZ8", n)
}
fn upper(n: usize) -> String {
    fill("QWERTYUIOPASDFGHJKLZXCVBNM234567", n)
}
fn digits(n: usize) -> String {
    fill("8401957326", n)
}
fn hex(n: usize) -> String {
    fill("3fa9c07e1d5b8264", n)
}

fn filter(yaml: &str) -> SecretFilter {
    let c: SecretFilterConfig = serde_yaml_ng::from_str(yaml).expect("config");
    SecretFilter::new(&c, "s[0].secretfilter").expect("compiles")
}

/// The line after the filter, and the rules counted.
fn run(f: &SecretFilter, text: &str) -> (String, Vec<&'static str>) {
    let mut line = Line::new(0, Bytes::copy_from_slice(text.as_bytes()), StreamKind::Stdout, 0);
    let mut rules = Vec::new();
    f.apply(&mut line, |r| rules.push(r));
    (line.text().to_string(), rules)
}

/// (rule id, a secret of its format, a near miss that is left as it is)
fn cases() -> Vec<(&'static str, String, String)> {
    let pem = |kind: &str, body: &str| format!("-----BEGIN {kind}-----\\n{body}\\n-----END {kind}-----");
    vec![
        (
            "aws-access-token",
            format!("AKIA{}", upper(16)),
            format!("AKIA{}", upper(15)),
        ),
        (
            "aws-access-token",
            format!("ASIA{}", upper(16)),
            format!("AKIA{}", upper(17)),
        ),
        ("github-pat", format!("ghp_{}", alnum(36)), format!("ghp_{}", alnum(35))),
        (
            "github-oauth",
            format!("gho_{}", alnum(36)),
            format!("gho_{}", alnum(37)),
        ),
        (
            "github-app-token",
            format!("ghs_{}", alnum(36)),
            format!("ghx_{}", alnum(36)),
        ),
        (
            "github-refresh-token",
            format!("ghr_{}", alnum(36)),
            format!("ghr-{}", alnum(36)),
        ),
        (
            "github-fine-grained-pat",
            format!("github_pat_{}_{}", alnum(22), alnum(59)),
            format!("github_pat_{}", alnum(40)),
        ),
        (
            "gitlab-pat",
            format!("glpat-{}", alnum(20)),
            format!("glpat-{}", alnum(19)),
        ),
        (
            "gitlab-ptt",
            format!("glptt-{}", hex(40)),
            format!("glptt-{}", upper(40)),
        ),
        (
            "gitlab-rrt",
            format!("GR1348941{}", alnum(20)),
            format!("GR1348942{}", alnum(20)),
        ),
        (
            "gitlab-deploy-token",
            format!("gldt-{}", alnum(20)),
            format!("gldt-{}", alnum(10)),
        ),
        (
            "slack-bot-token",
            format!("xoxb-{}-{}-{}", digits(11), digits(12), alnum(24)),
            format!("xoxb-{}-{}", digits(11), alnum(24)),
        ),
        (
            "slack-user-token",
            format!("xoxp-{}-{}-{}-{}", digits(10), digits(11), digits(12), hex(32)),
            format!("xoxq-{}-{}-{}-{}", digits(10), digits(11), digits(12), hex(32)),
        ),
        (
            "slack-app-token",
            format!("xapp-1-A{}-{}-{}", upper(10), digits(13), hex(64)),
            format!("xapp-1-A{}-{}-{}", upper(3), digits(13), hex(64)),
        ),
        (
            "slack-webhook-url",
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                upper(8),
                upper(10),
                alnum(24)
            ),
            format!("https://hooks.slack.com/services/T{}", upper(8)),
        ),
        (
            "gcp-api-key",
            format!("AIza{}-_{}", alnum(20), alnum(13)),
            format!("AIza{}", alnum(34)),
        ),
        (
            "stripe-access-token",
            format!("sk_live_{}", alnum(24)),
            format!("pk_live_{}", alnum(24)),
        ),
        (
            "stripe-access-token",
            format!("rk_test_{}", alnum(30)),
            format!("sk_live_{}", alnum(8)),
        ),
        (
            "grafana-api-key",
            format!("eyJrIjoi{}==", alnum(80)),
            format!("eyJrIjoi{}", alnum(40)),
        ),
        (
            "grafana-cloud-api-token",
            format!("glc_{}=", alnum(48)),
            format!("glc_{}", alnum(20)),
        ),
        (
            "grafana-service-account-token",
            format!("glsa_{}_{}", alnum(32), hex(8)),
            format!("glsa_{}_zzzzzzzz", alnum(32)),
        ),
        (
            "private-key",
            pem("RSA PRIVATE KEY", &alnum(120)),
            pem("PUBLIC KEY", &alnum(120)),
        ),
        (
            "private-key",
            pem("PRIVATE KEY", &alnum(64)),
            "BEGIN PRIVATE KEY".to_string(),
        ),
        (
            "jwt",
            format!("eyJ{}.eyJ{}.{}", alnum(20), alnum(40), alnum(43)),
            format!("eyJ{}.{}.{}", alnum(20), alnum(40), alnum(43)),
        ),
    ]
}

#[test]
fn each_rule_redacts_its_format_and_leaves_near_misses() {
    let f = filter("{}");
    for (id, secret, miss) in cases() {
        let (got, rules) = run(&f, &format!("key {secret}, ✓ next"));
        assert_eq!(got, format!("key <REDACTED-SECRET:{id}>, ✓ next"), "{id}: {secret}");
        assert_eq!(rules, [id]);
        let line = format!("key {miss}, ✓ next");
        let (got, rules) = run(&f, &line);
        assert_eq!(
            (got.as_str(), rules.len()),
            (line.as_str(), 0),
            "{id} near miss: {miss}"
        );
    }
    // Every rule is tried above.
    let tried: Vec<&str> = cases().iter().map(|c| c.0).collect();
    for r in RULES {
        assert!(tried.contains(&r.id), "no case for {}", r.id);
    }
}

#[test]
fn generic_assignments_only_with_include_generic() {
    let line = r#"login user=bob password=hunter2x {"api_key": "k3y-VALUE-77"} token=abc db_pwd: s3cr3t!!"#;
    let (got, rules) = run(&filter("{}"), line);
    assert_eq!((got.as_str(), rules.len()), (line, 0), "off by default");
    let (got, rules) = run(&filter("{include_generic: true}"), line);
    assert_eq!(
        got,
        r#"login user=bob password=<REDACTED-SECRET:generic-api-key> {"api_key": "<REDACTED-SECRET:generic-api-key>"} token=abc db_pwd: <REDACTED-SECRET:generic-api-key>"#,
        "values of six characters or more"
    );
    assert_eq!(rules, ["generic-api-key"; 3]);
    // A known format assigned to a secret-like name: one redaction, named by the specific rule.
    let aws = format!("AKIA{}", upper(16));
    let (got, rules) = run(&filter("{include_generic: true}"), &format!("api_key={aws} next"));
    assert_eq!(got, "api_key=<REDACTED-SECRET:aws-access-token> next");
    assert_eq!(rules, ["aws-access-token"]);
    // Secrets that overlap go as one, named by the first.
    let key = format!(
        "xx-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----",
        alnum(64)
    );
    let (got, rules) = run(&filter("{include_generic: true}"), &format!("token={key} done"));
    assert_eq!(got, "token=<REDACTED-SECRET:generic-api-key> done");
    assert_eq!(rules, ["generic-api-key"]);
}

#[test]
fn types_choose_rules_by_id_prefix() {
    let aws = format!("AKIA{}", upper(16));
    let gh = format!("ghp_{}", alnum(36));
    let line = format!("{aws} {gh}");
    let (got, _) = run(&filter("{types: [aws]}"), &line);
    assert_eq!(got, format!("<REDACTED-SECRET:aws-access-token> {gh}"));
    let (got, _) = run(&filter("{types: [github-p, aws-access-token]}"), &line);
    assert_eq!(got, "<REDACTED-SECRET:aws-access-token> <REDACTED-SECRET:github-pat>");
    for (yaml, want) in [
        (
            "{types: [nope]}",
            "s[0].secretfilter.types[0]: \"nope\" begins no rule id; the rules are aws-access-token",
        ),
        (
            "{types: [aws, '']}",
            "s[0].secretfilter.types[1]: \"\" begins no rule id",
        ),
        (
            "{types: [generic]}",
            "s[0].secretfilter.types[0]: \"generic\" begins no rule id (generic-api-key needs `include_generic: true`)",
        ),
        (
            "{allowlist: ['(']}",
            "s[0].secretfilter.allowlist[0]: \"(\" does not compile",
        ),
        (
            "{gitleaks_config: /etc/gitleaks.toml}",
            "s[0].secretfilter.gitleaks_config: shipper does not read Gitleaks rule files",
        ),
    ] {
        let c: SecretFilterConfig = serde_yaml_ng::from_str(yaml).expect("config");
        let err = SecretFilter::new(&c, "s[0].secretfilter").unwrap_err();
        assert!(err.starts_with(want), "{yaml}: {err}");
    }
    assert!(filter("{types: [generic], include_generic: true}").rules.len() == 1);
}

#[test]
fn allowlist_redact_with_and_partial_mask() {
    let keep = format!("AKIA{}", upper(16));
    let gone = format!("ASIA{}", upper(16));
    let line = format!("{keep} {gone}");
    let f = filter("{allowlist: ['^AKIA'], redact_with: '[$SECRET_NAME $SECRET_NAME]'}");
    let (got, rules) = run(&f, &line);
    assert_eq!(got, format!("{keep} [aws-access-token aws-access-token]"));
    assert_eq!(rules, ["aws-access-token"]);
    let (got, _) = run(&filter("{partial_mask: 4, redact_with: '***'}"), &line);
    assert_eq!(got, format!("{}*** {}***", &keep[..4], &gone[..4]));
    // At most half of a secret shows, none of a short one; `$SECRET_HASH` is the SHA-1 in hex.
    let f = filter("{partial_mask: 100, redact_with: '<$SECRET_HASH>'}");
    let mut out = String::new();
    f.redact("abcdef✓✓", "x", &mut out);
    assert_eq!(out, "abcd<bcce1724d4fe3e6da2ea6a9d4bc0761ace8d17a4>");
    out.clear();
    f.redact("abc", "x", &mut out);
    assert_eq!(out, "<a9993e364706816aba3e25717850c26c9cd0d89d>");
    assert_eq!(
        parts("a$SECRET_NAME$SECRET_HASH$b"),
        [Part::Text("a".into()), Part::Name, Part::Hash, Part::Text("$b".into())]
    );
}

#[test]
fn a_line_without_secrets_is_left_untouched() {
    let f = filter("{include_generic: true}");
    let text = "GET /api/v1/users?id=42 200 12ms token=ok AKIA lowercase-akia eyJ.eyJ";
    let mut line = Line::new(0, Bytes::copy_from_slice(text.as_bytes()), StreamKind::Stdout, 0);
    let before = line.line.as_ptr();
    f.apply(&mut line, |r| panic!("counted {r}"));
    assert_eq!(line.line.as_ptr(), before, "not copied");
}

#[test]
fn in_a_pipeline_redactions_are_counted_by_rule() {
    let aws = format!("AKIA{}", upper(16));
    let jwt = format!("eyJ{}.eyJ{}.{}", alnum(20), alnum(40), alnum(43));
    let lines = [format!("a {aws} b {jwt}"), "nothing here".to_string(), aws.clone()];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (out, stats) = crate::process::pipeline::tests::run("[{secretfilter: {}}]", &refs);
    let got: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
    assert_eq!(
        got,
        [
            "a <REDACTED-SECRET:aws-access-token> b <REDACTED-SECRET:jwt>",
            "nothing here",
            "<REDACTED-SECRET:aws-access-token>"
        ]
    );
    assert_eq!(
        stats.redacted,
        std::collections::BTreeMap::from([("aws-access-token", 2), ("jwt", 1)])
    );
}
