//! Tests of `relabel.rs`. Most cases are Prometheus's own (`model/relabel/relabel_test.go`), with
//! the rules written in the YAML users paste, so that the config's defaults are tested too.

use super::*;
use proptest::prelude::*;

fn rules(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML {yaml:?}: {e}"))
}

fn relabeler(yaml: &str) -> Relabeler {
    Relabeler::new(&rules(yaml), "k").unwrap_or_else(|e| panic!("{e}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `apply`'s result: the labels, or None when the target was dropped.
fn run(yaml: &str, input: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    let mut l = labels(input);
    relabeler(yaml).apply(&mut l).then_some(l)
}

#[test]
fn actions() {
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<&'static [(&'static str, &'static str)]>,
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // replace
        ("default copies", "[{source_labels: [a], target_label: b}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("b", "foo")])),
        ("groups", "[{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("d", "choo-choo")])),
        ("rules see earlier results", r#"
            - {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
            - {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}"#,
            &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")])),
        ("separator", "[{source_labels: [a, b], separator: /, target_label: c}]",
            &[("a", "foo"), ("b", "bar")], Some(&[("a", "foo"), ("b", "bar"), ("c", "foo/bar")])),
        ("empty separator", "[{source_labels: [a, b], separator: '', target_label: c}]",
            &[("a", "foo"), ("b", "bar")], Some(&[("a", "foo"), ("b", "bar"), ("c", "foobar")])),
        ("missing label reads as empty", "[{source_labels: [a, nope, b], target_label: c}]",
            &[("a", "foo"), ("b", "bar")], Some(&[("a", "foo"), ("b", "bar"), ("c", "foo;;bar")])),
        ("no match changes nothing", "[{source_labels: [a], regex: f, target_label: b, replacement: bar}]",
            &[("a", "boo")], Some(&[("a", "boo")])),
        ("empty result deletes the target", "[{source_labels: [a], regex: '(f).*', target_label: $1, replacement: $2}]",
            &[("a", "foo"), ("f", "baz")], Some(&[("a", "foo")])),
        ("all missing: the default copies nothing, deleting", "[{source_labels: [nope], target_label: a}]",
            &[("a", "foo")], Some(&[])),
        ("no sources: a fixed value", "[{target_label: env, replacement: prod}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("env", "prod")])),
        ("no sources, empty replacement: deletes", "[{target_label: a, replacement: ''}]",
            &[("a", "foo"), ("b", "bar")], Some(&[("b", "bar")])),
        ("target named by a group", "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
            &[("a", "some-name-value")], Some(&[("a", "some-name-value"), ("name", "value")])),
        ("target expands to nothing: skipped", "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'}]",
            &[("a", "some-name-0")], Some(&[("a", "some-name-0")])),
        ("target expands to an invalid name: skipped", "[{source_labels: [a], target_label: $1}]",
            &[("a", "my-label")], Some(&[("a", "my-label")])),
        ("$1x is the group named 1x", "[{source_labels: [a], regex: '(f)oo', target_label: b, replacement: '$1x'}]",
            &[("a", "foo"), ("b", "old")], Some(&[("a", "foo")])),
        ("${1}x", "[{source_labels: [a], regex: '(f)oo', target_label: b, replacement: '${1}x'}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("b", "fx")])),
        ("named groups", "[{source_labels: [a], regex: '(?P<first>f)(?<rest>.*)', target_label: b, replacement: '$first-${rest}'}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("b", "f-oo")])),
        ("$$ is a dollar", "[{source_labels: [a], target_label: b, replacement: '$$1'}]",
            &[("a", "foo")], Some(&[("a", "foo"), ("b", "$1")])),
        ("dot matches a newline", "[{source_labels: [a], regex: 'line1.*line2', target_label: d, replacement: 'match${1}'}]",
            &[("a", "line1\nline2")], Some(&[("a", "line1\nline2"), ("d", "match")])),
        // keep / drop, and anchoring
        ("keep match", "[{source_labels: [a], regex: 'f.*', action: keep}]", &[("a", "foo")], Some(&[("a", "foo")])),
        ("keep no match", "[{source_labels: [a], regex: no-match, action: keep}]", &[("a", "foo")], None),
        ("drop match", "[{source_labels: [a], regex: '.*o.*', action: drop}]", &[("a", "foo")], None),
        ("drop no match", "[{source_labels: [a], regex: no-match, action: drop}]", &[("a", "foo")], Some(&[("a", "foo")])),
        ("drop stops later rules", r#"
            - {source_labels: [a], regex: '.*o.*', action: drop}
            - {source_labels: [a], target_label: b}"#, &[("a", "foo")], None),
        ("anchored: keep", "[{source_labels: [ns], regex: kube, action: keep}]", &[("ns", "kube-system")], None),
        ("anchored: drop", "[{source_labels: [ns], regex: kube, action: drop}]",
            &[("ns", "kube-system")], Some(&[("ns", "kube-system")])),
        ("anchored: inner alternation", "[{source_labels: [a], regex: 'f|o', action: drop}]", &[("a", "foo")], Some(&[("a", "foo")])),
        ("anchored: whole alternation", "[{source_labels: [a], regex: 'foo|bar', action: keep}]", &[("a", "foobar")], None),
        ("anchored: own ^$ still works", "[{source_labels: [ns], regex: '^kube-system$', action: drop}]",
            &[("ns", "kube-system")], None),
        ("empty regex matches a missing label", "[{source_labels: [nope], regex: '', action: drop}]", &[("a", "foo")], None),
        ("keep a present label", "[{source_labels: [nope], regex: '.+', action: keep}]", &[("a", "foo")], None),
        // keepequal / dropequal
        ("keepequal equal", "[{source_labels: [__tmp_port], target_label: __port1, action: keepequal}]",
            &[("__tmp_port", "1234"), ("__port1", "1234")], Some(&[("__tmp_port", "1234"), ("__port1", "1234")])),
        ("keepequal different", "[{source_labels: [__tmp_port], target_label: __port2, action: keepequal}]",
            &[("__tmp_port", "1234"), ("__port2", "5678")], None),
        ("dropequal equal", "[{source_labels: [__tmp_port], target_label: __port1, action: dropequal}]",
            &[("__tmp_port", "1234"), ("__port1", "1234")], None),
        ("dropequal different", "[{source_labels: [__tmp_port], target_label: __port2, action: dropequal}]",
            &[("__tmp_port", "1234"), ("__port2", "5678")], Some(&[("__tmp_port", "1234"), ("__port2", "5678")])),
        ("dropequal both missing", "[{source_labels: [x], target_label: y, action: dropequal}]", &[("a", "foo")], None),
        // hashmod (Prometheus's expected numbers)
        ("hashmod", "[{source_labels: [c], target_label: d, action: hashmod, modulus: 1000}]",
            &[("c", "baz")], Some(&[("c", "baz"), ("d", "976")])),
        ("hashmod newline", "[{source_labels: [a], target_label: b, action: hashmod, modulus: 1000}]",
            &[("a", "foo\nbar")], Some(&[("a", "foo\nbar"), ("b", "734")])),
        // labelmap
        ("labelmap", "[{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}]",
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")])),
        ("labelmap pod labels, default replacement", "[{regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}]",
            &[("__meta_kubernetes_pod_label_app", "web"), ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "shop"),
              ("__meta_kubernetes_pod_labelpresent_app", "true"), ("__meta_kubernetes_namespace", "prod")],
            Some(&[("__meta_kubernetes_pod_label_app", "web"), ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "shop"),
                   ("__meta_kubernetes_pod_labelpresent_app", "true"), ("__meta_kubernetes_namespace", "prod"),
                   ("app", "web"), ("app_kubernetes_io_name", "shop")])),
        ("labelmap reads the labels as they were", "[{regex: '(.*)', replacement: '${1}_c', action: labelmap}]",
            &[("a", "1"), ("a_c", "2")], Some(&[("a", "1"), ("a_c", "1"), ("a_c_c", "2")])),
        ("labelmap sanitizes an invalid name", "[{regex: '__tmp_(.+)', action: labelmap}]",
            &[("__tmp_9lives", "cat")], Some(&[("__tmp_9lives", "cat"), ("_9lives", "cat")])),
        ("labelmap skips an empty name", "[{regex: '__tmp(.*)', action: labelmap}]",
            &[("__tmp", "x")], Some(&[("__tmp", "x")])),
        // labeldrop / labelkeep
        ("labeldrop", "[{regex: '(b.*)', action: labeldrop}]", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], Some(&[("a", "foo")])),
        ("labelkeep", "[{regex: '(b.*)', action: labelkeep}]",
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], Some(&[("b1", "bar"), ("b2", "baz")])),
        ("labeldrop is anchored", "[{regex: b, action: labeldrop}]", &[("b", "1"), ("bb", "2")], Some(&[("bb", "2")])),
        // lowercase / uppercase
        ("case", r#"
            - {source_labels: [foo], action: uppercase, target_label: foo_uppercase}
            - {source_labels: [foo], action: lowercase, target_label: foo_lowercase}"#,
            &[("foo", "bAr123Foo")], Some(&[("foo", "bAr123Foo"), ("foo_lowercase", "bar123foo"), ("foo_uppercase", "BAR123FOO")])),
        ("lowercase of nothing deletes", "[{source_labels: [nope], action: lowercase, target_label: a}]", &[("a", "X")], Some(&[])),
        // A case reported against Prometheus: a label dropped, set again, then kept on.
        ("drop, set, keep", r#"
            - {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
            - {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics,
               target_label: __meta_kubernetes_pod_container_port_name}
            - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}"#,
            &[("__meta_kubernetes_pod_container_port_name", "foo"), ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091")],
            Some(&[("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"), ("__meta_kubernetes_pod_container_port_name", "metrics")])),
    ];
    for (name, yaml, input, want) in cases {
        let want = want.map(labels);
        assert_eq!(run(yaml, input), want, "case {name:?}");
    }
}

/// The usual Alloy `discovery.relabel` block for pod logs, as rules.
const ALLOY: &str = r#"
- {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
- {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
- {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}
- source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name, __meta_kubernetes_pod_label_app]
  regex: '^;*([^;]+)(;.*)?$'
  target_label: app
- {source_labels: [__meta_kubernetes_namespace, app], separator: /, target_label: job}
- source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
  separator: /
  target_label: __path__
  replacement: /var/log/pods/*$1/*.log
- {source_labels: [__meta_kubernetes_namespace], regex: kube-system, action: drop}
"#;

#[test]
fn alloy_kubernetes_setup() {
    let r = relabeler(ALLOY);
    let pod = |ns: &str, name_label: Option<&str>, app_label: Option<&str>| {
        let mut l = labels(&[
            ("__meta_kubernetes_namespace", ns),
            ("__meta_kubernetes_pod_name", "web-7d4b9"),
            ("__meta_kubernetes_pod_container_name", "nginx"),
            ("__meta_kubernetes_pod_uid", "0f3c"),
        ]);
        if let Some(v) = name_label {
            l.insert("__meta_kubernetes_pod_label_app_kubernetes_io_name".into(), v.into());
        }
        if let Some(v) = app_label {
            l.insert("__meta_kubernetes_pod_label_app".into(), v.into());
        }
        l
    };
    /// namespace, `app.kubernetes.io/name`, `app` → Some((app, job)), None when dropped.
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<(Option<&'static str>, &'static str)>,
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("shop", Some("cart"), Some("legacy"), Some((Some("cart"), "shop/cart"))),
        ("shop", None, Some("legacy"), Some((Some("legacy"), "shop/legacy"))),
        ("shop", Some("cart"), None, Some((Some("cart"), "shop/cart"))),
        ("shop", None, None, Some((None, "shop/"))),
        ("kube-system", Some("coredns"), None, None),
        ("kube-system-extra", None, None, Some((None, "kube-system-extra/"))),
    ];
    for &(ns, name_label, app_label, want) in cases {
        let mut l = pod(ns, name_label, app_label);
        let kept = r.apply(&mut l);
        let Some((app, job)) = want else {
            assert!(!kept, "{ns} should be dropped");
            continue;
        };
        assert!(kept, "{ns} dropped");
        assert_eq!(
            l.get("__path__").map(String::as_str),
            Some("/var/log/pods/*0f3c/nginx/*.log")
        );
        Relabeler::finish(&mut l);
        let mut expect = labels(&[
            ("namespace", ns),
            ("pod", "web-7d4b9"),
            ("container", "nginx"),
            ("job", job),
        ]);
        if let Some(app) = app {
            expect.insert("app".into(), app.into());
        }
        assert_eq!(l, expect, "{ns} {name_label:?} {app_label:?}");
    }
    assert!(r.uses_meta("__meta_kubernetes_pod_label_"));
    assert!(!r.uses_meta("__meta_kubernetes_pod_annotation_"));
}

#[test]
fn config_errors() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("[{regex: '('}]", r#"k[0].regex: "(" is not a valid regular expression: unclosed group"#),
        ("[{target_label: a}, {action: replace}]", "k[1].target_label: the replace action needs target_label (the label it writes)"),
        ("[{target_label: ''}]", "k[0].target_label: the replace action needs target_label (the label it writes)"),
        ("[{action: hashmod, target_label: a}]", "k[0].modulus: the hashmod action needs a modulus greater than 0 (the number of buckets)"),
        ("[{action: hashmod, target_label: a, modulus: 0}]", "k[0].modulus: the hashmod action needs a modulus greater than 0 (the number of buckets)"),
        ("[{action: keepequal, source_labels: [a]}]",
            "k[0].target_label: the keepequal action needs target_label (the label it compares the source_labels with)"),
        ("[{target_label: app-name}]",
            r#"k[0].target_label: "app-name" is not a valid label name: use letters, digits and _, not starting with a digit (did you mean "app_name"?)"#),
        ("[{target_label: 'x-$1'}]", r#"k[0].target_label: "x-$1" is not a valid label name: use letters, digits and _, not starting with a digit"#),
        ("[{action: hashmod, modulus: 8, target_label: 1x}]",
            r#"k[0].target_label: "1x" is not a valid label name: use letters, digits and _, not starting with a digit (did you mean "_1x"?)"#),
        ("[{action: lowercase, target_label: 'l$1'}]",
            r#"k[0].target_label: "l$1" is not a valid label name: use letters, digits and _, not starting with a digit"#),
        ("[{action: lowercase, target_label: a, replacement: x}]", "k[0].replacement: the lowercase action does not use replacement; remove it"),
        ("[{action: keepequal, target_label: a, regex: x}]",
            "k[0].regex: the keepequal action does not use regex (it compares the source_labels with target_label); remove it"),
        ("[{action: dropequal, target_label: a, separator: ','}]",
            "k[0].separator: the dropequal action does not use separator (it compares the source_labels with target_label); remove it"),
        ("[{action: labeldrop, regex: x, source_labels: [a]}]",
            "k[0].source_labels: the labeldrop action does not use source_labels (it matches regex against label names); remove it"),
        ("[{action: labelkeep, regex: x, target_label: a}]",
            "k[0].target_label: the labelkeep action does not use target_label (it matches regex against label names); remove it"),
        ("[{action: labelkeep, regex: x, modulus: 3}]",
            "k[0].modulus: the labelkeep action does not use modulus (it matches regex against label names); remove it"),
        ("[{action: labeldrop, regex: x, replacement: y}]",
            "k[0].replacement: the labeldrop action does not use replacement (it matches regex against label names); remove it"),
        ("[{action: labelmap, regex: x, replacement: a-b}]",
            r#"k[0].replacement: "a-b" is not a valid label name: use letters, digits and _, not starting with a digit (did you mean "a_b"?)"#),
        ("[{source_labels: [a, app.kubernetes.io/name], target_label: b}]",
            r#"k[0].source_labels[1]: "app.kubernetes.io/name" is not a valid label name: use letters, digits and _, not starting with a digit (did you mean "app_kubernetes_io_name"?)"#),
    ];
    for (yaml, want) in cases {
        assert_eq!(
            Relabeler::new(&rules(yaml), "k").err().as_deref(),
            Some(*want),
            "{yaml}"
        );
    }
    // A regex error is one line whatever the crate says.
    let err = Relabeler::new(&rules("[{regex: 'a{99999}{99999}'}]"), "k").unwrap_err();
    assert!(
        err.starts_with(r#"k[0].regex: "a{99999}{99999}" is not a valid regular expression: "#),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    #[rustfmt::skip]
    let valid = [
        "[{target_label: $1}]", "[{target_label: '${1}_x'}]", "[{target_label: '_$name$2'}]",
        "[{action: keepequal, source_labels: [a], target_label: b, modulus: 0}]",
        "[{action: labeldrop, regex: x, modulus: 0}]", "[{action: labelmap, regex: '(.*)', replacement: 'k8s_${1}'}]",
        "[{action: drop, regex: x, target_label: ignored}]",
        // Prometheus accepts it (`^(?s:a)|(b)$`); so do we.
        "[{action: drop, regex: 'a)|(b'}]",
    ];
    for yaml in valid {
        if let Err(e) = Relabeler::new(&rules(yaml), "k") {
            panic!("{yaml}: {e}");
        }
    }
}

#[test]
fn label_templates() {
    for ok in ["a", "_", "$1", "${1}", "a$1", "${name}_x", "$a$b", "a1", "$1x", "_9"] {
        assert!(is_label_template(ok), "{ok}");
    }
    for bad in ["", "1a", "$", "${}", "${1", "${a-b}", "a-b", "a$", "a $1", "x-$1", "$-"] {
        assert!(!is_label_template(bad), "{bad}");
    }
    for ok in ["a", "_", "__meta_x", "A_1"] {
        assert!(is_label_name(ok), "{ok}");
    }
    for bad in ["", "1a", "a-b", "a.b", "é", "a b"] {
        assert!(!is_label_name(bad), "{bad}");
    }
}

#[test]
fn uses_meta() {
    const P: &str = "__meta_kubernetes_pod_label_";
    #[rustfmt::skip]
    let cases: &[(&str, bool)] = &[
        ("[]", false),
        ("[{source_labels: [__meta_kubernetes_namespace], target_label: ns}]", false),
        ("[{source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_pod_label_app], target_label: app}]", true),
        ("[{source_labels: [__meta_kubernetes_pod_labelpresent_app], action: keep, regex: 'true'}]", false),
        ("[{source_labels: [__meta_kubernetes_namespace], target_label: __meta_kubernetes_pod_label_x}]", false),
        ("[{source_labels: [a], target_label: __meta_kubernetes_pod_label_x, action: keepequal}]", true),
        ("[{regex: 'nothing_like_it', action: labelmap}]", true),
        ("[{regex: x, action: labeldrop}]", true),
        ("[{regex: x, action: labelkeep}]", true),
    ];
    for (yaml, want) in cases {
        assert_eq!(relabeler(yaml).uses_meta(P), *want, "{yaml}");
    }
    assert!(relabeler("[]").is_empty());
    assert!(!relabeler(ALLOY).is_empty());
}

#[test]
fn finish_removes_double_underscore_labels() {
    let mut l = labels(&[
        ("__path__", "/x"),
        ("__meta_a", "1"),
        ("_one", "2"),
        ("app", "3"),
        ("a__b", "4"),
    ]);
    Relabeler::finish(&mut l);
    assert_eq!(l, labels(&[("_one", "2"), ("app", "3"), ("a__b", "4")]));
}

#[test]
fn md5_rfc1321_vectors() {
    let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    #[rustfmt::skip]
    let cases: &[(&[u8], &str)] = &[
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        (b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a"),
    ];
    for (input, want) in cases {
        assert_eq!(hex(md5(input)), *want, "{:?}", String::from_utf8_lossy(input));
    }
    // Padding edges: the length field just fits, just does not, a whole block, two blocks.
    #[rustfmt::skip]
    let lengths = [
        (55, "ef1772b6dff9a122358552954ad0df65"), (56, "3b0c8ac703f828b04c6c197006d17218"),
        (63, "b06521f39153d618550606be297466d5"), (64, "014842d480b571495a4a0363793f7367"),
        (65, "c743a45e0d2e6a95cb859adae0248435"), (119, "8a7bd0732ed6a28ce75f6dabc90e1613"),
        (120, "5f61c0ccad4cac44c75ff505e1f1e537"),
    ];
    for (n, want) in lengths {
        assert_eq!(hex(md5(&vec![b'a'; n])), want, "{n} times a");
    }
}

#[test]
fn hashmod_bucket_is_prometheus() {
    // md5("abc") = 900150983cd24fb0 d6963f7d28e17f72 (RFC 1321): the bucket is the last 8 bytes,
    // big-endian, modulo the modulus.
    assert_eq!(hash("abc"), 0xd6963f7d28e17f72);
    assert_eq!(0xd6963f7d28e17f72_u64 % 1000, 458);
    let r = relabeler("[{source_labels: [a], target_label: b, action: hashmod, modulus: 1000}]");
    let mut l = labels(&[("a", "abc")]);
    assert!(r.apply(&mut l));
    assert_eq!(l["b"], "458");
    // A modulus of 1 puts everything in bucket 0; u64::MAX keeps the hash but for the one value.
    let one = relabeler("[{source_labels: [a], target_label: b, action: hashmod, modulus: 1}]");
    let mut l = labels(&[("a", "abc")]);
    assert!(one.apply(&mut l));
    assert_eq!(l["b"], "0");
    let max = relabeler(&format!(
        "[{{source_labels: [a], target_label: b, action: hashmod, modulus: {}}}]",
        u64::MAX
    ));
    let mut l = labels(&[("a", "abc")]);
    assert!(max.apply(&mut l));
    assert_eq!(l["b"], 0xd6963f7d28e17f72_u64.to_string());
}

proptest! {
    /// Any rule the config can hold either fails to compile with an error or runs without panicking
    /// on any labels, and never writes a label name Loki would refuse.
    #[test]
    fn never_panics(
        action in 0usize..11,
        sources in proptest::collection::vec("[a-z_$.]{0,6}", 0..3),
        target in proptest::option::of("[a-z_$0-9{}-]{0,6}"),
        regex in ".{0,12}",
        replacement in "[a-z$0-9{}_-]{0,8}",
        separator in ".{0,2}",
        modulus in proptest::option::of(any::<u64>()),
        input in proptest::collection::btree_map("[a-z_]{1,6}", ".{0,8}", 0..6),
    ) {
        const ACTIONS: [RelabelAction; 11] = [
            RelabelAction::Replace, RelabelAction::Keep, RelabelAction::Drop, RelabelAction::Hashmod,
            RelabelAction::Labelmap, RelabelAction::Labeldrop, RelabelAction::Labelkeep, RelabelAction::Lowercase,
            RelabelAction::Uppercase, RelabelAction::Keepequal, RelabelAction::Dropequal,
        ];
        let cfg = RelabelConfig {
            source_labels: sources, separator, target_label: target, regex, modulus, replacement, action: ACTIONS[action],
        };
        if let Ok(r) = Relabeler::new(&[cfg], "k") {
            let mut l = input;
            if r.apply(&mut l) {
                prop_assert!(l.keys().all(|k| is_label_name(k)), "{:?}", l);
            }
        }
    }
}
