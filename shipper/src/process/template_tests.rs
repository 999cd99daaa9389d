use super::*;
use crate::parse::StreamKind;
use proptest::prelude::*;

fn line(entry: &str, kv: &[(&str, &str)]) -> Line {
    let mut l = Line::new(0, bytes::Bytes::from(entry.to_string()), StreamKind::Stdout, 0);
    for (k, v) in kv {
        l.extracted.set(&Arc::from(*k), v);
    }
    l
}

fn stage(source: &str, template: &str) -> TemplateStage {
    TemplateStage::new(&TemplateConfig {
        source: source.into(),
        template: template.into(),
    })
    .unwrap_or_else(|e| panic!("{template}: {e}"))
}

/// The template's output with `app=loki level=WARN empty="" n=42`, `source: level` and the line
/// `the line`.
fn render(template: &str) -> Result<String, String> {
    let l = line(
        "the line",
        &[("app", "loki"), ("level", "WARN"), ("empty", ""), ("n", "42")],
    );
    let mut out = String::new();
    stage("level", template).render(&l, &mut out).map(|()| out)
}

fn ok(template: &str) -> String {
    render(template).unwrap_or_else(|e| panic!("{template}: {e}"))
}

fn compile_err(template: &str) -> String {
    match TemplateStage::new(&TemplateConfig {
        source: "x".into(),
        template: template.into(),
    }) {
        Ok(_) => panic!("{template}: compiled"),
        Err(e) => e,
    }
}

/// Runs `template` on `kv` with `source`; the extracted values after, sorted.
fn apply(source: &str, template: &str, kv: &[(&str, &str)]) -> (bool, Vec<(String, String)>) {
    let mut l = line("a log line", kv);
    let set = stage(source, template).apply(&mut l);
    let mut ex: Vec<(String, String)> = l
        .extracted
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ex.sort();
    (set, ex)
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

#[test]
fn promtail_documented_examples() {
    assert_eq!(
        apply("new_key", "hello world!", &[]),
        (true, kv(&[("new_key", "hello world!")]))
    );
    assert_eq!(
        apply("app", "{{ .Value }}_some_suffix", &[("app", "loki")]),
        (true, kv(&[("app", "loki_some_suffix")]))
    );
    assert_eq!(
        apply("app", "{{ ToLower .Value }}", &[("app", "LOKI")]),
        (true, kv(&[("app", "loki")]))
    );
    assert_eq!(
        apply("app", "{{ .Value | ToUpper }} doki", &[("app", "loki")]),
        (true, kv(&[("app", "LOKI doki")]))
    );
    assert_eq!(
        apply(
            "output_msg",
            "{{ .level }} for app {{ ToUpper .app }}",
            &[("level", "warn"), ("app", "loki")]
        ),
        (
            true,
            kv(&[("level", "warn"), ("app", "loki"), ("output_msg", "warn for app LOKI")])
        )
    );
    assert_eq!(
        apply("app", "{{ ToLower .app }}", &[("app", "LOKI")]),
        (true, kv(&[("app", "loki")]))
    );
    assert_eq!(
        apply("app", r#"{{ Replace .Value "loki" "blokey" 1 }}"#, &[("app", "loki")]),
        (true, kv(&[("app", "blokey")]))
    );
    let t = r#"{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}"#;
    assert_eq!(apply("level", t, &[("level", "WARN")]), (true, kv(&[("level", "OK")])));
    assert_eq!(
        apply("level", t, &[("level", "INFO")]),
        (true, kv(&[("level", "INFO")]))
    );
    assert_eq!(
        apply("entry", "{{ .Entry }}", &[]),
        (true, kv(&[("entry", "a log line")]))
    );
    assert_eq!(
        apply(
            "testval",
            r#"{{ regexReplaceAll "(Silly)" .Value "${1}foo" }}"#,
            &[("testval", "Some Silly Value With Lots Of Spaces")]
        ),
        (true, kv(&[("testval", "Some Sillyfoo Value With Lots Of Spaces")]))
    );
    assert_eq!(
        apply(
            "testval",
            r#"{{ regexReplaceAll "( |Of)" .Value "_" }}"#,
            &[("testval", "Some Silly Value With Lots Of Spaces")]
        ),
        (true, kv(&[("testval", "Some_Silly_Value_With_Lots___Spaces")]))
    );
    assert_eq!(
        apply(
            "testval",
            r#"{{ Replace .Value " " "_" -1 | ToLower }}"#,
            &[("testval", "Some Silly Value")]
        ),
        (true, kv(&[("testval", "some_silly_value")]))
    );
    assert_eq!(
        apply(
            "testval",
            r#"{{ Trim .Value "!" }}"#,
            &[("testval", "!!!!!WOOOOO!!!!!")]
        ),
        (true, kv(&[("testval", "WOOOOO")]))
    );
    assert_eq!(
        apply("testval", "{{ add 7 3 }}", &[("testval", "Value")]),
        (true, kv(&[("testval", "10")]))
    );
}

#[test]
fn hashes_are_salted_as_promtail_salts_them() {
    let pii = &[("testval", "this is PII data")];
    let (_, ex) = apply("testval", r#"{{ Hash .Value "salt" }}"#, pii);
    assert_eq!(
        ex,
        kv(&[(
            "testval",
            "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"
        )])
    );
    let (_, ex) = apply("testval", r#"{{ Sha2Hash .Value "salt" }}"#, pii);
    assert_eq!(
        ex,
        kv(&[(
            "testval",
            "5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2"
        )])
    );
    assert_eq!(
        ok(r#"{{ sha256sum "a" }}"#),
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    );
}

#[test]
fn empty_result_removes_the_value() {
    assert_eq!(apply("testval", "", &[("testval", "WOOOOO")]), (true, vec![]));
    assert_eq!(apply("testval", "", &[]), (true, vec![]));
    assert_eq!(
        apply("a", "{{ .b }}", &[("a", "1"), ("b", "")]),
        (true, kv(&[("b", "")]))
    );
}

#[test]
fn runtime_failure_leaves_the_map_unchanged() {
    let before = &[("testval", "Some Value")];
    // A pattern that only exists at run time, and is invalid.
    assert_eq!(
        apply(
            "testval",
            r#"{{ regexReplaceAll .p .Value "x" }}"#,
            &[("testval", "v"), ("p", "(")]
        ),
        (false, kv(&[("testval", "v"), ("p", "(")]))
    );
    // A string function given an absent value (Promtail: "invalid value; expected string").
    assert_eq!(apply("testval", "{{ .Value | ToLower }}", &[]), (false, vec![]));
    assert_eq!(apply("testval", "{{ ToUpper .missing }}", before), (false, kv(before)));
    assert_eq!(apply("testval", r#"{{ eq .Value 1 }}"#, before), (false, kv(before)));
    assert_eq!(apply("testval", "{{ div 1 0 }}", before), (false, kv(before)));
    assert_eq!(apply("testval", "{{ .Value.x }}", before), (false, kv(before)));
}

#[test]
fn missing_values() {
    assert_eq!(ok("{{ .missing }}"), "<no value>");
    assert_eq!(ok("{{.Value}} in module {{.module}}"), "WARN in module <no value>");
    assert_eq!(ok(r#"{{ default "d" .missing }} {{ .empty | default "d" }}"#), "d d");
    assert_eq!(ok("{{ print .missing }} {{ .missing.x }}"), "<nil> <no value>");
    assert_eq!(ok(r#"{{ eq .missing "x" }} {{ eq .missing nil }}"#), "false true");
    let mut out = String::new();
    stage("nope", "[{{ .Value }}]")
        .render(&line("", &[]), &mut out)
        .unwrap();
    assert_eq!(out, "[<no value>]");
}

#[test]
fn go_builtins() {
    assert_eq!(
        ok(r#"{{ and .app .level }}|{{ and .empty .level }}|{{ or .empty 0 }}|{{ not .app }}"#),
        "WARN||0|false"
    );
    assert_eq!(ok(r#"{{ .app | and 1 }} {{ and 1 0 2 }} {{ or 0 "" 3 }}"#), "loki 0 3");
    assert_eq!(
        ok(
            r#"{{ eq .app "x" "loki" }} {{ ne .app "x" }} {{ lt "a" "b" }} {{ le 2.5 3.5 }} {{ gt 3 2 }} {{ ge "b" "b" }}"#
        ),
        "true true true true true true"
    );
    assert_eq!(
        ok("{{ eq 0x10 16 }} {{ eq true true }} {{ eq nil nil }}"),
        "true true true"
    );
    assert!(render("{{ eq 1 1.0 }}").unwrap_err().contains("incompatible types"));
    assert!(render("{{ lt true false }}").is_err());
    assert_eq!(ok(r#"{{ len .app }} {{ len "héllo" }} {{ len . }}"#), "4 6 6");
    assert!(render("{{ len 3 }}").is_err());
    assert_eq!(
        ok(r#"{{ index .app 1 }} {{ index . "app" }} {{ index . "Entry" }} {{ index . "nope" }}"#),
        "111 loki the line <no value>"
    );
    assert!(render("{{ index .app 10 }}").is_err());
    assert_eq!(ok(r#"{{ print .app 1 2 "x" 3 }} {{ print nil }}"#), "loki1 2x3 <nil>");
    assert_eq!(ok(r#"{{ println "a" 1 }}"#), "a 1\n");
    assert_eq!(
        ok(r#"{{ html "<a href='x'>&" }} {{ urlquery "a b&é" }}"#),
        "&lt;a href=&#39;x&#39;&gt;&amp; a+b%26%C3%A9"
    );
    assert_eq!(
        ok("{{ . }}"),
        "map[Entry:the line Value:WARN app:loki empty: level:WARN n:42]"
    );
}

#[test]
fn printf_verbs() {
    assert_eq!(
        ok(r#"{{ printf "%s-%d-%v-%q-%x" .app 3 true .app .app }}"#),
        r#"loki-3-true-"loki"-6c6f6b69"#
    );
    assert_eq!(
        ok(r#"{{ printf "%5s|%-5s|%05d|%+d|% d|%x|%X" "a" "b" 42 5 5 -255 255 }}"#),
        "    a|b    |00042|+5| 5|-ff|FF"
    );
    assert_eq!(
        ok(r#"{{ printf "%6.2f|%t|%c|%o|%b|%e|%.2s|%%" 3.14159 true 65 8 5 1234.5 "abc" }}"#),
        "  3.14|true|A|10|101|1.234500e+03|ab|%"
    );
    assert_eq!(
        ok(r#"{{ printf "%d" .app }} {{ printf "%s" }} {{ printf "%s" 1 2 }} {{ printf "%s" nil }}"#),
        "%!d(string=loki) %!s(MISSING) %!s(int=1)%!(EXTRA int=2) %!s(<nil>)"
    );
    assert_eq!(
        ok(r#"{{ printf "%q" "a\"b\n" }} {{ printf "%v" 1.5 }}"#),
        r#""a\"b\n" 1.5"#
    );
    assert_eq!(
        ok(r#"{{ .app | printf "%s!" }} {{ "a" | printf "%s%s" "b" }}"#),
        "loki! ba"
    );
}

#[test]
fn promtail_functions() {
    assert_eq!(
        ok(r#"{{ ToLower "AbC" }} {{ ToUpper "aBc" }} {{ ToUpper "ß" }}"#),
        "abc ABC ß"
    );
    assert_eq!(
        ok(r#"{{ Replace "aaa" "a" "b" 2 }} {{ Replace "aaa" "a" "b" -1 }}"#),
        "bba bbb"
    );
    assert_eq!(
        ok(r#"{{ Trim "xaxx" "x" }} {{ TrimLeft "abca" "a" }} {{ TrimRight "abca" "a" }}"#),
        "a bca abc"
    );
    assert_eq!(
        ok(r#"{{ TrimPrefix "aab" "a" }} {{ TrimSuffix "abb" "b" }} [{{ TrimSpace "  a \n" }}]"#),
        "ab ab [a]"
    );
    assert_eq!(
        ok(r#"{{ regexReplaceAll "(?P<x>o)" .app "${x}$x!" }} {{ regexReplaceAll "o" .app "$$" }}"#),
        "loo!ki l$ki"
    );
    assert_eq!(ok(r#"{{ regexReplaceAllLiteral "(o)" .app "${1}" }}"#), "l${1}ki");
    assert_eq!(ok(r#"{{ .app | regexReplaceAll "o" "xox" }}"#), "xlokix");
}

#[test]
fn sprig_functions() {
    assert_eq!(
        ok(
            r#"{{ default "d" 0 }} {{ default "d" 1 }} {{ empty .empty }} {{ empty .app }} {{ coalesce .empty .missing .app }} {{ ternary "y" "n" true }}"#
        ),
        "d 1 true false loki y"
    );
    assert_eq!(
        ok(r#"{{ trim "  a  " }} {{ trimAll "!" "!!a!!" }} {{ trimPrefix "a" "aab" }} {{ trimSuffix "b" "abb" }}"#),
        "a a ab ab"
    );
    assert_eq!(
        ok(r#"{{ upper "a" }} {{ lower "A" }} {{ title "hello wORLD it's a_b-c" }} {{ replace "a" "b" "aaa" }}"#),
        "A a Hello WORLD It'S A_b-C bbb"
    );
    assert_eq!(
        ok(r#"{{ contains "ok" .app }} {{ hasPrefix "lo" .app }} {{ hasSuffix "ki" .app }} {{ hasPrefix "x" .app }}"#),
        "true true true false"
    );
    assert_eq!(
        ok(r#"{{ quote .app 1 .missing nil }} {{ squote .app }} {{ cat "a" 1 .missing "b" }}"#),
        r#""loki" "1" 'loki' a 1 b"#
    );
    assert_eq!(
        ok(r#"{{ trunc 2 .app }} {{ trunc -2 .app }} {{ trunc 10 .app }} {{ trunc 2 "héllo" }}"#),
        "lo ki loki h"
    );
    assert_eq!(
        ok(r#"{{ repeat 3 "ab" }} {{ substr 1 3 "hello" }} {{ substr -1 2 "hello" }} {{ nospace "a b  c" }}"#),
        "ababab el he abc"
    );
    assert_eq!(ok(r#"{{ indent 2 "a\nb" }}|{{ nindent 2 "a" }}"#), "  a\n  b|\n  a");
    assert_eq!(
        ok(r#"{{ b64enc .app }} {{ b64dec "bG9raQ==" }} {{ b64dec "!!" }}"#),
        "bG9raQ== loki illegal base64 data at input byte 0"
    );
    assert_eq!(
        ok(r#"{{ toJson .app }} {{ toJson 3 }} {{ toJson .missing }} {{ toJson "<&>" }}"#),
        r#""loki" 3 null "\u003c\u0026\u003e""#
    );
    assert_eq!(
        ok("{{ toJson . }}"),
        r#"{"Entry":"the line","Value":"WARN","app":"loki","empty":"","level":"WARN","n":"42"}"#
    );
    assert_eq!(
        ok(r#"{{ toString 3 }} {{ atoi "12" }} {{ int "12" }} {{ int64 "x" }}"#),
        "3 12 12 0"
    );
    assert_eq!(
        ok(r#"{{ regexMatch "^l" .app }} {{ regexFind "o." .app }} {{ regexFind "x" .app }}|"#),
        "true ok |"
    );
    assert_eq!(
        ok(
            r#"{{ add .n 1 }} {{ add1 1 }} {{ sub 5 3 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 3 }} {{ min 4 2 }}"#
        ),
        "43 2 2 6 3 1 5 2"
    );
}

#[test]
fn syntax() {
    assert_eq!(ok(r#"{{- " x " -}} y"#), " x y");
    assert_eq!(ok("a  {{- 1 -}}  b {{- 2}}  c {{3 -}}  d"), "a1b2  c 3d");
    assert_eq!(ok("{{/* c */}}z {{- /* c */ -}} z"), "zz");
    assert_eq!(
        ok("{{ (ToUpper .app) }} {{ (.app) | ToUpper }} {{ ( \"a\" | ToUpper ) }}"),
        "LOKI LOKI A"
    );
    assert_eq!(
        ok(r#"{{ `raw\n` }} {{ "int\t\"x\"\u00e9\x41\101" }} {{ 'a' }} {{ '\n' }}"#),
        "raw\\n int\t\"x\"éAA 97 10"
    );
    assert_eq!(ok("{{ 1.5 }} {{ 1e21 }} {{ 100000.0 }} {{ 1000000.0 }} {{ 0x1F }} {{ -3 }} {{ 1_000 }} {{ 0.00001 }} {{ 017 }} {{ 0b101 }}"), "1.5 1e+21 100000 1e+06 31 -3 1000 1e-05 15 5");
    assert_eq!(ok("{{ true }} {{ false }} {{ not 0 }}"), "true false true");
    assert_eq!(ok(r#"{{ if .missing }}a{{ else if .app }}b{{ else }}c{{ end }}"#), "b");
    assert_eq!(
        ok(r#"{{ if .empty }}a{{ else if .missing }}b{{ else }}c{{ end }}"#),
        "c"
    );
    assert_eq!(
        ok(
            r#"{{ with .app }}{{ . }}{{ $.level }}{{ else }}none{{ end }} {{ with .missing }}x{{ else with .app }}w{{ . }}{{ end }}"#
        ),
        "lokiWARN wloki"
    );
    assert_eq!(
        ok(r#"{{ $x := .app }}{{ $x }}{{ $x = "y" }}{{ $x }}{{ if true }}{{ $x = "z" }}{{ end }}{{ $x }}"#),
        "lokiyz"
    );
    assert_eq!(
        ok(r#"{{ with $x := .app }}{{ $x }}{{ end }} {{ if $y := .level }}{{ $y }}{{ end }} {{ $.app }}"#),
        "loki WARN loki"
    );
    assert_eq!(
        ok("{{ if and .app (eq .level \"WARN\") (not .empty) }}yes{{ end }}"),
        "yes"
    );
    assert_eq!(ok("{{ .app | }}"), "loki");
    assert_eq!(ok("{{if .app}}\n  {{- .app -}}\n{{end}}"), "loki");
}

#[test]
fn compile_errors_say_where() {
    assert_eq!(
        compile_err("{{ ToLowr .app }}"),
        "template: 1:4: unknown function `ToLowr`"
    );
    assert_eq!(
        compile_err("ab\n  {{ .a | nope }}"),
        "template: 2:11: unknown function `nope`"
    );
    assert_eq!(compile_err("{{ if }}{{ end }}"), "template: 1:4: missing value for if");
    assert_eq!(compile_err("{{ end }}"), "template: 1:1: unexpected {{end}}");
    assert_eq!(compile_err("x{{ else }}"), "template: 1:2: unexpected {{else}}");
    assert!(compile_err("{{ if .a }}").contains("without {{end}}"));
    assert!(compile_err("{{ \"unclosed }}").contains("unterminated quoted string"));
    assert!(compile_err("{{ .a").contains("unclosed action"));
    assert!(compile_err("{{/* x */ }}").contains("comment ends before closing delimiter"));
    assert!(compile_err("{{ $y }}").contains("undefined variable \"$y\""));
    assert!(compile_err("{{ if .a }}{{ $y := 1 }}{{ end }}{{ $y }}").contains("undefined variable"));
    assert_eq!(
        compile_err("{{ ToUpper \"a\" \"b\" }}"),
        "template: 1:4: wrong number of args for ToUpper: want 1 got 2"
    );
    assert!(compile_err("{{ .a | Replace \"a\" }}").contains("want 4 got 2"));
    assert!(compile_err("{{ range .a }}{{ end }}").contains("{{range}} is not supported"));
    assert!(compile_err("{{ 1 2 }}").contains("can't give argument to non-function"));
    assert!(compile_err("{{ nil }}").contains("nil is not a command"));
    assert!(compile_err("{{ (1 }}").contains("unclosed left paren"));
    assert!(compile_err("{{ 1) }}").contains("unexpected right paren"));
    assert!(compile_err("{{ 1e400 }}").contains("bad number syntax"));
    assert_eq!(
        compile_err(r#"{{ regexReplaceAll "[" .Value "x" }}"#),
        "template: 1:4: regexReplaceAll: bad regular expression \"[\": unclosed character class"
    );
    let e = TemplateStage::new(&TemplateConfig {
        source: String::new(),
        template: "x".into(),
    })
    .unwrap_err();
    assert_eq!(e, "source: name the extracted value the template sets");
}

#[test]
fn literal_patterns_are_compiled_with_the_template() {
    let st = stage(
        "x",
        r#"{{ regexReplaceAll "o+" .Value "0" }}{{ regexReplaceAll .p .Value "0" }}"#,
    );
    let Node::Action(p) = &st.nodes[0] else { panic!() };
    let Cmd::Call(c) = &p.cmds[0] else { panic!() };
    assert!(c.re.is_some());
    let Node::Action(p) = &st.nodes[1] else { panic!() };
    let Cmd::Call(c) = &p.cmds[0] else { panic!() };
    assert!(c.re.is_none());
    assert_eq!(
        apply("x", &st_src(), &[("x", "foo"), ("p", "f")]).1,
        kv(&[("x", "f00oo"), ("p", "f")])
    );
}

fn st_src() -> String {
    r#"{{ regexReplaceAll "o+" .Value "0" }}{{ regexReplaceAll .p .Value "0" }}"#.into()
}

#[test]
fn config_yaml_shape() {
    let c: TemplateConfig = serde_yaml_ng::from_str("{source: a, template: '{{ .Value }}'}").unwrap();
    assert_eq!(c.source, "a");
    assert!(serde_yaml_ng::from_str::<TemplateConfig>("{source: a, templat: x}").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any template text compiles or is refused, and a compiled one runs or fails, never panics.
    #[test]
    fn never_panics(t in r#"([a-z ]|\{\{-? |\{\{|-?\}\}| -\}\}|\.[A-Za-z]+|\$x|:=|=|\||\(|\)|"[a-z\\]*"|`x`|'.'|[0-9.e+_-]+|/\*|\*/|if |else |end|with |ToUpper |printf |index |eq |and |regexReplaceAll |trunc |substr |default |len |nil|true|\.| )*"#,
                   raw in ".{0,40}") {
        for src in [t.as_str(), raw.as_str()] {
            if let Ok(st) = TemplateStage::new(&TemplateConfig { source: "app".into(), template: src.to_string() }) {
                let mut l = line("héllo wörld", &[("app", "lo\u{e9}ki"), ("n", "3")]);
                let before = l.extracted.clone();
                if !st.apply(&mut l) {
                    prop_assert_eq!(l.extracted, before);
                }
            }
        }
    }
}
