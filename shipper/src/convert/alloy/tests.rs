use super::{parse, Expr, Item};

/// The shape of Alloy's Kubernetes pod-logs example (written from the public docs' description).
const PODS: &str = r#"
// Discover pods on this node.
discovery.kubernetes "pods" {
  role = "pod"
  selectors {
    role  = "pod"
    field = "spec.nodeName=" + coalesce(sys.env("HOSTNAME"), constants.hostname)
  }
}

/* Relabel: namespace, pod, container, app, and the file path. */
discovery.relabel "pods" {
  targets = discovery.kubernetes.pods.targets
  rule {
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }
  rule {
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    replacement   = "/var/log/pods/*$1/*.log"
    target_label  = "__path__"
  }
}

local.file_match "pods" {
  path_targets = discovery.relabel.pods.output
}

loki.source.file "pods" {
  targets    = local.file_match.pods.targets
  forward_to = [loki.process.pods.receiver]
}

loki.process "pods" {
  stage.cri { }
  stage.json {
    expressions = { level = "", "msg" = "message" }
  }
  stage.match {
    selector = `{app="web"} |~ "\d+"`
    action   = "drop"
  }
  forward_to = [loki.write.default.receiver]
}

loki.write "default" {
  endpoint {
    url       = env("LOKI_URL")
    tenant_id = "team-a"
    basic_auth {
      username      = "u"
      password_file = "/etc/secret/pw"
    }
    batch_wait = "1s"
    batch_size = 1048576
  }
  external_labels = {cluster = "prod", "env" = "eu\t\"1\"",}
}
"#;

#[test]
fn parses_a_kubernetes_pod_logs_pipeline() {
    let body = parse(PODS).unwrap();
    let names: Vec<(String, Option<String>)> = body
        .items
        .iter()
        .map(|i| match i {
            Item::Block(b) => (b.name.clone(), b.label.clone()),
            Item::Attr(a) => (a.name.clone(), None),
        })
        .collect();
    let want = [
        "discovery.kubernetes",
        "discovery.relabel",
        "local.file_match",
        "loki.source.file",
        "loki.process",
        "loki.write",
    ];
    assert_eq!(names.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(), want);
    assert!(names.iter().all(|(_, l)| l.is_some()));

    let relabel = body.blocks("discovery.relabel").next().unwrap();
    assert_eq!((relabel.pos.line, relabel.pos.col), (12, 1));
    assert_eq!(
        relabel.body.attr("targets").unwrap().path().as_deref(),
        Some("discovery.kubernetes.pods.targets")
    );
    let rules: Vec<_> = relabel.body.blocks("rule").collect();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[1].body.attr("replacement"),
        Some(&Expr::Str("/var/log/pods/*$1/*.log".into()))
    );

    let process = body.blocks("loki.process").next().unwrap();
    let stages: Vec<&str> = process
        .body
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Block(b) => Some(b.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(stages, ["stage.cri", "stage.json", "stage.match"]);
    let json = process.body.blocks("stage.json").next().unwrap();
    assert_eq!(
        json.body.attr("expressions"),
        Some(&Expr::Object(vec![
            ("level".into(), Expr::Str(String::new())),
            ("msg".into(), Expr::Str("message".into()))
        ]))
    );
    // A raw string keeps its backslashes.
    let m = process.body.blocks("stage.match").next().unwrap();
    assert_eq!(
        m.body.attr("selector"),
        Some(&Expr::Str(r#"{app="web"} |~ "\d+""#.into()))
    );
    let Some(Expr::Array(to)) = process.body.attr("forward_to") else { panic!() };
    assert_eq!(to[0].path().as_deref(), Some("loki.write.default.receiver"));

    let write = body.blocks("loki.write").next().unwrap();
    let endpoint = write.body.blocks("endpoint").next().unwrap();
    assert!(
        matches!(endpoint.body.attr("url"), Some(Expr::Call(f, args)) if f.path().as_deref() == Some("env") && args == &[Expr::Str("LOKI_URL".into())])
    );
    assert_eq!(endpoint.body.attr("batch_size"), Some(&Expr::Number(1048576.0)));
    assert_eq!(
        write.body.attr("external_labels"),
        Some(&Expr::Object(vec![
            ("cluster".into(), Expr::Str("prod".into())),
            ("env".into(), Expr::Str("eu\t\"1\"".into()))
        ]))
    );

    // The selector's field is a `+` of a string and a call with a nested call.
    let k = body.blocks("discovery.kubernetes").next().unwrap();
    let sel = k.body.blocks("selectors").next().unwrap();
    let Some(Expr::Binary("+", left, right)) = sel.body.attr("field") else {
        panic!("{:?}", sel.body.attr("field"))
    };
    assert_eq!(**left, Expr::Str("spec.nodeName=".into()));
    assert!(matches!(&**right, Expr::Call(f, args) if f.path().as_deref() == Some("coalesce") && args.len() == 2));
}

#[test]
fn values_operators_and_precedence() {
    let body = parse("a = null\nb = [true, false, -1.5e3, 0x]\n").unwrap_err();
    assert_eq!(body.pos.line, 2, "{body}");
    let body = parse("a = 1 + 2 * 3 ^ 2 ^ 1 == 19 || !false && x[0].y\nb = \"\\u00e9\\x41\\101\"\n").unwrap();
    let Some(Expr::Binary("||", l, r)) = body.attr("a") else { panic!("{:?}", body.attr("a")) };
    assert!(matches!(&**l, Expr::Binary("==", _, _)));
    assert!(matches!(&**r, Expr::Binary("&&", _, _)));
    let Expr::Binary("==", sum, _) = &**l else { unreachable!() };
    let Expr::Binary("+", _, product) = &**sum else { panic!("{sum:?}") };
    let Expr::Binary("*", _, power) = &**product else { panic!("{product:?}") };
    // `^` is right-associative: 3 ^ (2 ^ 1).
    assert!(matches!(&**power, Expr::Binary("^", _, r) if matches!(&**r, Expr::Binary("^", _, _))));
    assert_eq!(body.attr("b"), Some(&Expr::Str("éAA".into())));
    let body = parse("x = [\n  1,\n  2,\n]\ny = {}\nz = (\n 1\n)\n").unwrap();
    assert_eq!(
        body.attr("x"),
        Some(&Expr::Array(vec![Expr::Number(1.0), Expr::Number(2.0)]))
    );
    assert_eq!(body.attr("y"), Some(&Expr::Object(vec![])));
}

#[test]
fn errors_say_where_and_what() {
    let cases = [
        (
            "loki.write \"a\" {\n  endpoint {\n    url = \"x\"\n  }\n",
            5,
            "block not closed",
        ),
        ("a = \"abc\nb = 1\n", 1, "string not closed"),
        ("a = `abc\n", 1, "raw string not closed"),
        ("/* never closed\n", 1, "comment not closed"),
        ("a = \"\\q\"\n", 1, "unknown escape"),
        ("a = 1 b = 2\n", 1, "expected a new line"),
        (
            "block \"x\" \"y\" {}\n",
            1,
            "expected `=` (an attribute) or `{` (a block)",
        ),
        ("a = [1 2]\n", 1, "expected `,` or `]`"),
        ("a = {b = 1 c = 2}\n", 1, "expected `,` or `}`"),
        ("a = \n", 1, "expected a value"),
        ("}\n", 1, "expected a block or an attribute"),
        ("a = 1 @ 2\n", 1, "unexpected character '@'"),
    ];
    for (src, line, what) in cases {
        let e = parse(src).expect_err(src);
        assert_eq!(e.pos.line, line, "{src:?}: {e}");
        assert!(e.message.contains(what), "{src:?}: {e}");
    }
    let e = parse("a = 1 @ 2\n").unwrap_err();
    assert_eq!(e.to_string(), "1:7: unexpected character '@'");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let src = format!("a = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&src).unwrap_err().message.contains("nested deeper"));
    let src = format!("a = {}1\n", "-".repeat(100_000));
    assert!(parse(&src).unwrap_err().message.contains("nested deeper"));
    let mut blocks = String::new();
    for _ in 0..10_000 {
        blocks.push_str("b {\n");
    }
    assert!(parse(&blocks).unwrap_err().message.contains("nested deeper"));
}

proptest::proptest! {
    /// Arbitrary input never panics: it parses or gives an error with a position inside the text.
    #[test]
    fn arbitrary_text_never_panics(src in "[a-z\"`{}\\[\\]().,=+\\-*/!<>&|^% \n\\\\0-9]{0,200}") {
        match parse(&src) {
            Ok(_) => {}
            Err(e) => proptest::prop_assert!(e.pos.line as usize <= src.lines().count() + 1),
        }
    }
}
