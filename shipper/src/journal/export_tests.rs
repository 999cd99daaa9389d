use super::*;
use proptest::prelude::*;

fn binary(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(b'\n');
    v.extend_from_slice(&(value.len() as u64).to_le_bytes());
    v.extend_from_slice(value);
    v.push(b'\n');
    v
}

fn entries(parsed: Vec<Parsed>) -> Vec<ExportEntry> {
    parsed
        .into_iter()
        .map(|p| match p {
            Parsed::Entry(e) => e,
            Parsed::Bad(why) => panic!("unexpected bad entry: {why}"),
        })
        .collect()
}

/// Two entries as journalctl writes them: text fields, a multi-line binary MESSAGE, invalid UTF-8.
fn sample() -> Vec<u8> {
    let mut s =
        b"__CURSOR=s=ab;i=1\n__REALTIME_TIMESTAMP=1700000000000001\nMESSAGE=hello world\n_SYSTEMD_UNIT=foo.service\n\n"
            .to_vec();
    s.extend_from_slice(b"__CURSOR=s=ab;i=2\n__REALTIME_TIMESTAMP=1700000000000002\n");
    s.extend(binary("MESSAGE", b"multi\nline \xff end"));
    s.extend_from_slice(b"PRIORITY=3\n\n");
    s
}

#[test]
fn text_and_binary_fields() {
    let e = entries(parse_in_pieces(&sample(), &[], 1024));
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].get("MESSAGE").unwrap().value, b"hello world");
    assert_eq!(e[0].get("__CURSOR").unwrap().value, b"s=ab;i=1");
    assert_eq!(e[0].get("_SYSTEMD_UNIT").unwrap().value, b"foo.service");
    assert_eq!(e[1].get("MESSAGE").unwrap().value, b"multi\nline \xff end");
    assert_eq!(e[1].get("PRIORITY").unwrap().value, b"3");
    assert!(e[1].get("_SYSTEMD_UNIT").is_none());
    // A value may contain `=`: only the first one separates the name.
    let e = entries(parse_in_pieces(b"MESSAGE=a=b\n\n", &[], 1024));
    assert_eq!(e[0].get("MESSAGE").unwrap().value, b"a=b");
}

#[test]
fn split_anywhere_gives_the_same_entries() {
    let s = sample();
    let whole = parse_in_pieces(&s, &[], 1024);
    for cut in 1..=s.len() as u8 {
        assert_eq!(parse_in_pieces(&s, &[cut], 1024), whole, "reads of {cut} bytes");
    }
    assert_eq!(parse_in_pieces(&s, &[1, 7, 3, 200], 1024), whole);
}

#[test]
fn only_wanted_fields_are_kept() {
    let mut p = ExportParser::new(1024, Some(vec!["MESSAGE".into(), "PRIORITY".into()]));
    p.feed(&sample());
    let Some(Parsed::Entry(a)) = p.next() else { panic!() };
    let Some(Parsed::Entry(b)) = p.next() else { panic!() };
    assert_eq!(p.next(), None);
    assert_eq!(a.fields.len(), 1);
    assert_eq!(
        b.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["MESSAGE", "PRIORITY"]
    );
}

#[test]
fn long_values_are_cut_and_flagged() {
    let mut s = format!("MESSAGE={}\nX=1\n\n", "a".repeat(100)).into_bytes();
    s.extend(binary("MESSAGE", &[b'b'; 100]));
    s.extend_from_slice(b"\n");
    for cuts in [&[][..], &[1], &[3, 50]] {
        let e = entries(parse_in_pieces(&s, cuts, 10));
        assert_eq!(e.len(), 2, "cuts {cuts:?}");
        let m = e[0].get("MESSAGE").unwrap();
        assert_eq!((m.value.as_slice(), m.cut), (&b"aaaaaaaaaa"[..], true));
        assert_eq!(e[0].get("X").unwrap().value, b"1", "the next field is still read");
        let m = e[1].get("MESSAGE").unwrap();
        assert_eq!((m.value.as_slice(), m.cut), (&b"bbbbbbbbbb"[..], true));
    }
}

#[test]
fn truncated_input_waits_and_finish_forgets_it() {
    let s = sample();
    let mut p = ExportParser::new(1024, None);
    // The second entry cut inside its binary MESSAGE.
    let cut = s.len() - 20;
    p.feed(&s[..cut]);
    assert!(matches!(p.next(), Some(Parsed::Entry(_))));
    assert_eq!(p.next(), None, "incomplete: waits for more");
    assert!(p.finish(), "there was an entry in progress");
    assert!(!p.finish());
    // A restart of journalctl starts a fresh stream.
    p.feed(b"MESSAGE=again\n\n");
    let Some(Parsed::Entry(e)) = p.next() else { panic!() };
    assert_eq!(e.get("MESSAGE").unwrap().value, b"again");
}

#[test]
fn garbage_drops_one_entry_and_parsing_resumes() {
    // A bad name, a binary value not ending in `\n`, an absurd length: each costs its entry only.
    let mut s = b"MESSAGE=ok1\n\nnot a field\nMESSAGE=x\n\n".to_vec();
    s.extend_from_slice(b"MESSAGE\n\x02\0\0\0\0\0\0\0abX\nY=1\n\n");
    s.extend_from_slice(b"MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xffzz\n\n");
    s.extend_from_slice(b"MESSAGE=ok2\n\n");
    for cuts in [&[][..], &[1], &[2, 5]] {
        let got = parse_in_pieces(&s, cuts, 1024);
        let bad = got.iter().filter(|p| matches!(p, Parsed::Bad(_))).count();
        let good: Vec<_> = got
            .iter()
            .filter_map(|p| match p {
                Parsed::Entry(e) => Some(e.get("MESSAGE").unwrap().value.clone()),
                Parsed::Bad(_) => None,
            })
            .collect();
        assert_eq!(bad, 3, "{got:?}");
        assert_eq!(good, [b"ok1".to_vec(), b"ok2".to_vec()]);
    }
}

#[test]
fn stray_empty_lines_are_not_entries() {
    let e = entries(parse_in_pieces(b"\n\n\nMESSAGE=a\n\n\n\nMESSAGE=b\n\n", &[], 64));
    assert_eq!(e.len(), 2);
}

#[test]
fn a_repeated_field_does_not_grow_memory_without_bound() {
    let s = "MESSAGE=x\n".repeat(1000) + "\n";
    let e = entries(parse_in_pieces(s.as_bytes(), &[], 64));
    assert_eq!(e[0].fields.len(), MAX_FIELDS);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_split_does_not_matter(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzz_one(&data);
    }

    #[test]
    fn export_like_bytes_split_anywhere(
        fields in proptest::collection::vec(("[A-Z_]{1,6}", proptest::collection::vec(any::<u8>(), 0..40), any::<bool>(), any::<bool>()), 0..30),
        cuts in proptest::collection::vec(1u8..50, 1..8),
    ) {
        let mut s = Vec::new();
        for (name, value, bin, end) in &fields {
            if *bin {
                s.extend(binary(name, value));
            } else {
                s.extend_from_slice(name.as_bytes());
                s.push(b'=');
                s.extend(value.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
                s.push(b'\n');
            }
            if *end {
                s.push(b'\n');
            }
        }
        let whole = parse_in_pieces(&s, &[], 16);
        prop_assert!(whole.iter().all(|p| matches!(p, Parsed::Entry(_))), "{:?}", whole);
        prop_assert_eq!(parse_in_pieces(&s, &cuts, 16), whole);
    }
}
