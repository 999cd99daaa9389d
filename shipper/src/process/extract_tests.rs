//! Tests of extract.rs: table-driven cases per stage, path errors, and property tests that the
//! JSON scanner never panics and agrees with serde_json.

use super::*;
use crate::parse::StreamKind;
use crate::process::config::JsonConfig;
use bytes::Bytes;
use json::{parse_path, Seg};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn line(text: &str) -> Line {
    Line::new(0, Bytes::copy_from_slice(text.as_bytes()), StreamKind::Stdout, 0)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn json(exprs: &[(&str, &str)]) -> JsonStage {
    JsonStage::new(&JsonConfig {
        expressions: map(exprs),
        ..Default::default()
    })
    .expect("valid config")
}

/// The extracted values, sorted, as `name=value` (compact to compare in tables).
fn got(l: &Line) -> Vec<String> {
    let mut v: Vec<String> = l.extracted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v
}

#[test]
fn json_values() {
    let exprs = [
        ("level", ""),
        ("msg", "message"),
        ("trace", "span.trace_id"),
        ("id", "items[1].id"),
        ("dotted", "[\"a.b\"]"),
        ("quoted", "\"k y\".z"),
        ("obj", "span"),
        ("arr", "items"),
        ("n", "num"),
        ("b", "flag"),
    ];
    let stage = json(&exprs);
    let cases: &[(&str, &[&str])] = &[
        (r#"{"level":"info","message":"hi"}"#, &["level=info", "msg=hi"]),
        (
            r#"{"span":{"trace_id":"abc","x":[1,{"y":2}]},"items":[{"id":1},{"id":"two"}]}"#,
            &[
                "arr=[{\"id\":1},{\"id\":\"two\"}]",
                "id=two",
                "obj={\"trace_id\":\"abc\",\"x\":[1,{\"y\":2}]}",
                "trace=abc",
            ],
        ),
        // Whitespace anywhere; objects come out compact, strings inside keep their spaces.
        (
            " { \"span\" : { \"trace_id\" : \"a b\" , \"z\" : [ 1 , 2 ] } } \n",
            &["obj={\"trace_id\":\"a b\",\"z\":[1,2]}", "trace=a b"],
        ),
        (
            r#"{"message":"a\"b\\n","level":"\u00e9\ud83d\ude00"}"#,
            &["level=é😀", "msg=a\"b\\n"],
        ),
        (
            r#"{"message":"tab\there\nnl \/ \b\f\r"}"#,
            &["msg=tab\there\nnl / \u{8}\u{c}\r"],
        ),
        (
            r#"{"message":"lone \ud800 x \udc00"}"#,
            &["msg=lone \u{fffd} x \u{fffd}"],
        ),
        (
            r#"{"num":1.5e3,"flag":true,"level":-0.25E-2}"#,
            &["b=true", "level=-0.25E-2", "n=1.5e3"],
        ),
        (r#"{"num":42,"flag":false}"#, &["b=false", "n=42"]),
        // null and missing paths are not set; a scalar where an object is expected is missing.
        (
            r#"{"level":null,"span":"str","items":{"1":{"id":3}}}"#,
            &["arr={\"1\":{\"id\":3}}", "obj=str"],
        ),
        (r#"{"items":[{"id":1}]}"#, &["arr=[{\"id\":1}]"]),
        (
            r#"{"a.b":"dots","k y":{"z":"q"},"a":{"b":"nested"}}"#,
            &["dotted=dots", "quoted=q"],
        ),
        // Escaped keys match their decoded form; duplicates: the last one wins, null included.
        (r#"{"lev\u0065l":"esc","mes\"sage":"no"}"#, &["level=esc"]),
        (
            r#"{"level":"a","level":"b","message":"m","message":null}"#,
            &["level=b"],
        ),
        (r#"{}"#, &[]),
        (r#"{"span":{"trace_id":"a"},"span":"x"}"#, &["obj=x"]),
        (r#"{"span":{"trace_id":"a"},"span":{"y":1}}"#, &["obj={\"y\":1}"]),
        (
            r#"{"items":[{"id":1},{"id":2}],"items":[{"id":3}]}"#,
            &["arr=[{\"id\":3}]"],
        ),
        (r#"{"deep":[[[{"level":"x"}]]],"level":"top"}"#, &["level=top"]),
    ];
    for (input, want) in cases {
        let mut l = line(input);
        assert!(stage.apply(&mut l), "{input}");
        assert_eq!(got(&l), *want, "{input}");
    }
}

#[test]
fn json_malformed_extracts_nothing() {
    let stage = json(&[("level", "")]);
    for input in [
        "",
        "   ",
        "plain text",
        "[1,2]",
        "\"str\"",
        "42",
        r#"{"level":"info""#,
        r#"{"level":"info"} trailing"#,
        r#"{"level":"info"}{}"#,
        r#"{"level":"info",}"#,
        r#"{"level":"in"fo"}"#,
        r#"{"level":"bad \x escape"}"#,
        r#"{"level":"short \u12"}"#,
        "{\"level\":\"raw\ncontrol\"}",
        r#"{"level":01}"#,
        r#"{"level":1.}"#,
        r#"{"level":.5}"#,
        r#"{"level":+1}"#,
        r#"{"level":1e}"#,
        r#"{"level":tru}"#,
        r#"{"level":NaN}"#,
        r#"{"level":1e309}"#,
        r#"{"level":-1E+400}"#,
        r#"{level:"x"}"#,
        r#"{"level" "x"}"#,
        r#"{"a":[1,2,]}"#,
        r#"{"a":[1 2]}"#,
        r#"{"a":{"b":1}"#,
        "{\"level\":\"x\"}\u{0}",
    ] {
        let mut l = line(input);
        assert!(!stage.apply(&mut l), "{input:?} was accepted");
        assert!(l.extracted.is_empty(), "{input:?}");
    }
    let huge = format!("{{\"level\":{}}}", "9".repeat(400));
    assert!(!stage.apply(&mut line(&huge)), "an integer beyond f64");
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    assert!(!stage.apply(&mut line(&deep)), "nesting beyond the limit");
    let ok = format!("{{\"a\":{}1{},\"level\":\"x\"}}", "[".repeat(100), "]".repeat(100));
    let mut l = line(&ok);
    assert!(stage.apply(&mut l));
    assert_eq!(got(&l), ["level=x"]);
}

#[test]
fn json_source_from_extracted() {
    let stage = JsonStage::new(&JsonConfig {
        expressions: map(&[("user", "name"), ("inner", "")]),
        source: Some("inner".into()),
        ..Default::default()
    })
    .expect("valid");
    let mut l = line("whatever");
    assert!(!stage.apply(&mut l), "missing source");
    l.extracted
        .set(&Arc::from("inner"), r#"{"name":"bob","inner":{"x":1}}"#);
    assert!(stage.apply(&mut l));
    // The source itself may be overwritten by what it held.
    assert_eq!(got(&l), ["inner={\"x\":1}", "user=bob"]);
}

#[test]
fn json_config_errors() {
    let cases: &[(&str, &str)] = &[
        (" ", "where a key should be"),
        ("a.", "ends with `.`"),
        ("a..b", "where a key should be"),
        (".a", "where a key should be"),
        ("[0].a", "starts with an index"),
        ("a.[0]", "right before `[`"),
        ("a[x]", "is not an index"),
        ("a[-1]", "is not an index"),
        ("a[*]", "is not an index"),
        ("a[]", "is not an index"),
        ("a[0", "without its closing"),
        ("a[\"k\"", "without its closing"),
        ("\"open", "without its closing quote"),
        ("a | b", "after a key"),
        ("a.|b", "where a key should be"),
        ("length(a)", "after a key"),
        ("a[99999999999999999999999]", "too large"),
        ("\"bad \\q\"", "bad quoted key"),
    ];
    for (expr, want) in cases {
        let err = JsonStage::new(&JsonConfig {
            expressions: map(&[("x", expr)]),
            ..Default::default()
        })
        .expect_err(expr);
        assert!(
            err.contains(want) && err.contains(&format!("{expr:?}")),
            "{expr}: {err}"
        );
    }
    let err = JsonStage::new(&JsonConfig::default()).expect_err("empty");
    assert_eq!(err, "json stage needs at least one entry in expressions");
    assert!(JsonStage::new(&JsonConfig {
        expressions: map(&[("", "a")]),
        ..Default::default()
    })
    .is_err());
    // Bare keys beyond JMESPath's identifiers are fine.
    assert_eq!(
        parse_path("x-request-id.1st").ok(),
        Some(vec![Seg::Key("x-request-id".into()), Seg::Key("1st".into())])
    );
    assert_eq!(
        parse_path("a[2][0][\"b.c\"]").ok(),
        Some(vec![
            Seg::Key("a".into()),
            Seg::Index(2),
            Seg::Index(0),
            Seg::Key("b.c".into())
        ])
    );
}

#[test]
fn logfmt_values() {
    let stage = LogfmtStage::new(&LogfmtConfig {
        mapping: map(&[
            ("level", ""),
            ("msg", "message"),
            ("flag", ""),
            ("url", ""),
            ("dur", "took"),
            ("m2", "message"),
        ]),
        source: None,
    })
    .expect("valid");
    let cases: &[(&str, &[&str])] = &[
        ("level=info message=hello", &["level=info", "m2=hello", "msg=hello"]),
        (
            r#"level=warn message="quoted \"value\" \\ \n \u00e9" other=1"#,
            &[
                "level=warn",
                "m2=quoted \"value\" \\ \n é",
                "msg=quoted \"value\" \\ \n é",
            ],
        ),
        ("flag level=debug", &["flag=", "level=debug"]),
        ("level=a level=b level=", &["level="]),
        ("level=a\tlevel=b\nlevel=c", &["level=c"]),
        ("url=/a?b=c&d=\"e\" took=1.5ms", &["dur=1.5ms", "url=/a?b=c&d=\"e\""]),
        (
            "message=\"unterminated \\\" rest",
            &["m2=unterminated \" rest", "msg=unterminated \" rest"],
        ),
        (
            "message=\"\" level=\"x\"junk flag",
            &["flag=", "level=x", "m2=", "msg="],
        ),
        ("=orphan \"quoted junk\" level=ok", &["level=ok"]),
        (
            "message=\"bad \\q escape\"",
            &["m2=bad \\q escape", "msg=bad \\q escape"],
        ),
        ("message=\"trailing \\", &["m2=trailing \\", "msg=trailing \\"]),
        ("just some words", &[]),
        ("", &[]),
        ("lev=x levelx=y", &[]),
        ("level=é😀 ", &["level=é😀"]),
    ];
    for (input, want) in cases {
        let mut l = line(input);
        assert!(stage.apply(&mut l), "{input}");
        assert_eq!(got(&l), *want, "{input}");
    }
    let from = LogfmtStage::new(&LogfmtConfig {
        mapping: map(&[("a", "")]),
        source: Some("s".into()),
    })
    .expect("ok");
    let mut l = line("a=line");
    assert!(!from.apply(&mut l), "missing source");
    l.extracted.set(&Arc::from("s"), "a=1 s=2");
    assert!(from.apply(&mut l));
    assert_eq!(got(&l), ["a=1", "s=a=1 s=2"]);
    assert!(LogfmtStage::new(&LogfmtConfig::default()).is_err());
    assert!(LogfmtStage::new(&LogfmtConfig {
        mapping: map(&[("a", "b c")]),
        source: None
    })
    .is_err());
}

#[test]
fn regex_values() {
    let stage = RegexStage::new(&RegexConfig {
        expression: r"^(?P<ip>\S+) (?:user=(?P<user>\w+) )?(?<verb>GET|POST) (\S+)".into(),
        source: None,
    })
    .expect("valid");
    let cases: &[(&str, bool, &[&str])] = &[
        ("1.2.3.4 user=bob GET /x", true, &["ip=1.2.3.4", "user=bob", "verb=GET"]),
        ("1.2.3.4 POST /y", true, &["ip=1.2.3.4", "verb=POST"]),
        ("1.2.3.4 PUT /z", false, &[]),
        ("", false, &[]),
    ];
    for (input, ok, want) in cases {
        let mut l = line(input);
        assert_eq!(stage.apply(&mut l), *ok, "{input}");
        assert_eq!(got(&l), *want, "{input}");
    }
    for (expr, want) in [
        ("(a", "does not compile"),
        ("(a)(b)", "no named group"),
        ("", "needs an expression"),
    ] {
        let err = RegexStage::new(&RegexConfig {
            expression: expr.into(),
            source: None,
        })
        .expect_err(expr);
        assert!(err.contains(want), "{expr}: {err}");
    }
    let from = RegexStage::new(&RegexConfig {
        expression: "(?P<x>\\d+)".into(),
        source: Some("s".into()),
    })
    .expect("ok");
    let mut l = line("123");
    assert!(!from.apply(&mut l));
    l.extracted.set(&Arc::from("s"), "ab 45");
    assert!(from.apply(&mut l));
    assert_eq!(l.extracted.get("x"), Some("45"));
}

/// A JSON string literal for `s`, each character written as is, `\uXXXX` (a surrogate pair above
/// U+FFFF) or its short escape, as `how` says: every way a writer may encode the same string.
fn encode(s: &[(char, u8)]) -> String {
    let mut out = String::from("\"");
    for &(c, how) in s {
        match (c, how % 3) {
            ('"', 0) | ('\\', 0) => {
                out.push('\\');
                out.push(c);
            }
            ('\n', 0) => out.push_str("\\n"),
            ('/', 0) => out.push_str("\\/"),
            (c, 1) | (c @ ('"' | '\\' | '\0'..='\u{1f}'), _) => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            (c, _) => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Arbitrary JSON values, nested a few levels, with keys from a small set so paths hit them.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Eighths print short and parse back exactly (serde_json's float parsing is not exact).
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        "[a-z\\\\\"é😀\u{1} ]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[abc]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn json_never_panics_and_agrees_on_validity(s in r#"[ {}\[\]":,0-9a-z.\\\-+\n]{0,40}"#) {
        let stage = json(&[("a", ""), ("b", "a.b[1]"), ("c", "[\"\\\\\"]")]);
        let mut l = line(&s);
        let ours = stage.apply(&mut l);
        let theirs = s.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok();
        prop_assert_eq!(ours, theirs, "{:?}", s);
    }

    /// Generated documents, compact or pretty, whole or with one character removed or inserted:
    /// valid exactly when serde_json says so, and when valid every path's value is what serde_json
    /// finds there (strings decoded, anything else as compact JSON).
    #[test]
    fn json_agrees_with_serde(
        doc in proptest::collection::btree_map("[abc]", json_value(), 0..4),
        pretty in any::<bool>(),
        edit in proptest::option::of((any::<proptest::sample::Index>(), proptest::option::of("[ {}\\[\\]\":,0-9a-z.\\\\-]"))),
    ) {
        let value = serde_json::Value::Object(doc.into_iter().collect());
        let mut text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.expect("json");
        if let Some((at, insert)) = edit {
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            let i = bounds.get(at.index(bounds.len().max(1))).copied().unwrap_or(0);
            match insert {
                Some(c) => text.insert_str(i, &c),
                None if !text.is_empty() => { text.remove(i); }
                None => {}
            }
        }
        let paths = [("a", "a"), ("ba", "b.a"), ("c0", "c[0]"), ("c1b", "c[1].b"), ("aa", "a.a")];
        let stage = json(&paths);
        let mut l = line(&text);
        let ours = stage.apply(&mut l);
        let parsed = serde_json::from_str::<serde_json::Value>(&text).ok().filter(|v| v.is_object());
        prop_assert_eq!(ours, parsed.is_some(), "{}", text);
        if let Some(v) = parsed {
            for (name, path) in paths {
                let pointer = format!("/{}", path.replace(['.', '['], "/").replace(']', ""));
                let ours = l.extracted.get(name);
                match v.pointer(&pointer) {
                    None | Some(serde_json::Value::Null) => prop_assert_eq!(ours, None, "{} in {}", path, text),
                    Some(serde_json::Value::String(s)) => prop_assert_eq!(ours, Some(s.as_str()), "{} in {}", path, text),
                    // Numbers keep their text, which serde_json may print differently: compare values.
                    Some(other) => {
                        let ours = ours.map(|o| (o, serde_json::from_str::<serde_json::Value>(o).ok()));
                        prop_assert!(ours.as_ref().is_some_and(|(o, v)| v.as_ref() == Some(other) && !o.contains('\n')), "{} in {}: {:?}", path, text, ours);
                    }
                }
            }
        }
    }

    #[test]
    fn stages_never_panic(s in any::<String>()) {
        let _ = json(&[("a", ""), ("b", "a.b[1]")]).apply(&mut line(&s));
        let logfmt = LogfmtStage::new(&LogfmtConfig { mapping: map(&[("a", "")]), source: None });
        prop_assert!(logfmt.map(|st| st.apply(&mut line(&s))) == Ok(true));
    }

    #[test]
    fn json_strings_agree_with_serde(chars in proptest::collection::vec((any::<char>(), any::<u8>()), 0..40)) {
        let lit = encode(&chars);
        let doc = format!("{{\"pad\":[1,{{}}],\"k\":{lit},\"after\":null}}");
        let want: String = chars.iter().map(|c| c.0).collect();
        let via_serde: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        prop_assert_eq!(via_serde["k"].as_str(), Some(want.as_str()));
        let mut l = line(&doc);
        prop_assert!(json(&[("k", "")]).apply(&mut l));
        prop_assert_eq!(l.extracted.get("k"), Some(want.as_str()));
        // The same string as a key (a quoted path; "" would mean the name itself).
        if !want.is_empty() {
            let mut l = line(&format!("{{{lit}:1}}"));
            prop_assert!(json(&[("v", &serde_json::to_string(&want).expect("str"))]).apply(&mut l));
            prop_assert_eq!(l.extracted.get("v"), Some("1"));
        }
    }
}

fn time(name: &str, input: &str, f: impl Fn(&mut Line) -> bool) {
    let mut l = line(input);
    let n = 2_000_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        l.extracted.clear();
        assert!(f(std::hint::black_box(&mut l)));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name}: {} bytes/line, {:.0} ns/line, {:.0} MB/s",
        input.len(),
        secs * 1e9 / f64::from(n),
        input.len() as f64 * f64::from(n) / secs / 1e6
    );
}

/// `cargo test --release -p shipper --lib extract::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let text = r#"{"ts":"2024-05-01T12:34:56.789Z","level":"info","caller":"server/handler.go:142","msg":"request served","method":"GET","path":"/api/v1/users/12345","status":200,"duration_ms":12.5,"span":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#;
    let stage = json(&[("level", ""), ("msg", ""), ("trace", "span.trace_id")]);
    time("json", text, |l| stage.apply(l));
    // Baseline on the same machine and moment: a full serde_json tree, then the same 3 values.
    time("serde_json::Value (baseline)", text, |l| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&l.line) else { return false };
        for (name, path) in [("level", "/level"), ("msg", "/msg"), ("trace", "/span/trace_id")] {
            if let Some(s) = v.pointer(path).and_then(|v| v.as_str()) {
                l.extracted.set(&Arc::from(name), s);
            }
        }
        true
    });
    let lf = r#"ts=2024-05-01T12:34:56.789Z level=info caller=server/handler.go:142 msg="request served" method=GET path=/api/v1/users/12345 status=200 duration_ms=12.5 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"#;
    let mapping = map(&[("level", ""), ("msg", ""), ("trace", "trace_id")]);
    let stage = LogfmtStage::new(&LogfmtConfig { mapping, source: None }).expect("ok");
    time("logfmt", lf, |l| stage.apply(l));
}
