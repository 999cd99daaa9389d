//! Tests of the `geoip` stage on databases the testkit writes (GeoLite2-shaped City, Country and
//! ASN records), and of that writer itself, read back by the maxminddb crate.

use super::*;
use crate::parse::StreamKind;
use bytes::Bytes;
use shipper_testkit::mmdb::{asn, city, with, Mmdb, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// London's record as GeoLite2-City has it (with two subdivisions: the most specific is last).
fn london() -> Value {
    let r = city("London", "GB", "United Kingdom", "EU", "Europe");
    let r = with(
        r,
        "location",
        Value::map([
            ("accuracy_radius", Value::U16(100)),
            ("latitude", Value::F64(51.5142)),
            ("longitude", Value::F64(-0.0931)),
            ("time_zone", Value::str("Europe/London")),
        ]),
    );
    let r = with(r, "postal", Value::map([("code", Value::str("EC2V"))]));
    with(
        r,
        "subdivisions",
        Value::Array(vec![
            Value::map([("iso_code", Value::str("ENG")), ("names", Value::names("England"))]),
            Value::map([
                ("iso_code", Value::str("CTY")),
                ("names", Value::names("City of London")),
            ]),
        ]),
    )
}

fn city_db(ip_version: u16, record_size: u16) -> Vec<u8> {
    let mut db = Mmdb::new("GeoLite2-City", ip_version, record_size);
    db.insert("81.2.69.0/24", london());
    // A narrower network inside it, with its own record.
    db.insert("81.2.69.160/27", city("Camden", "GB", "United Kingdom", "EU", "Europe"));
    db.insert(
        "2.125.160.216/29",
        city("Boxford", "GB", "United Kingdom", "EU", "Europe"),
    );
    let mut custom = city("Berlin", "DE", "Germany", "EU", "Europe");
    custom = with(
        custom,
        "MyCompany",
        Value::map([
            ("DeptName", Value::str("Platform")),
            ("Floor", Value::U32(3)),
            ("Ratio", Value::F32(1.5)),
            ("Remote", Value::Bool(true)),
            ("Tags", Value::Array(vec![Value::str("a"), Value::str("b")])),
        ]),
    );
    db.insert("10.1.0.0/16", custom);
    if ip_version == 6 {
        db.insert("2001:db8::/32", city("Paris", "FR", "France", "EU", "Europe"));
    }
    db.build()
}

fn asn_db() -> Vec<u8> {
    let mut db = Mmdb::new("GeoLite2-ASN", 6, 24);
    db.insert("1.0.0.0/24", asn(13335, "CLOUDFLARENET"));
    db.insert("8.8.8.0/24", asn(15169, "GOOGLE"));
    db.build()
}

fn cfg(db_type: Option<GeoipDbType>) -> GeoipConfig {
    GeoipConfig {
        db: "/unused".into(),
        source: "ip".into(),
        db_type,
        custom_lookups: BTreeMap::new(),
    }
}

fn stage(c: &GeoipConfig, db: Vec<u8>) -> GeoipStage {
    GeoipStage::from_bytes(c, db).unwrap()
}

/// Runs the stage on a line whose `ip` is `ip` (None: not extracted): its result and what it
/// extracted besides `ip`.
fn run(st: &GeoipStage, ip: Option<&str>) -> (bool, Vec<(String, String)>) {
    let mut line = Line::new(0, Bytes::from_static(b"x"), StreamKind::Stdout, 0);
    if let Some(ip) = ip {
        line.extracted.set(&Arc::from("ip"), ip);
    }
    let ok = st.apply(&mut line);
    let mut got: Vec<(String, String)> = line
        .extracted
        .iter()
        .filter(|(k, _)| *k != "ip")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    got.sort();
    (ok, got)
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

#[test]
fn the_writers_databases_read_back_with_maxminddb_for_every_record_size() {
    for ip_version in [4, 6] {
        for record_size in [24, 28, 32] {
            let what = format!("ip_version {ip_version}, {record_size}-bit records");
            let r = Reader::from_source(city_db(ip_version, record_size)).unwrap();
            r.verify().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.metadata().database_type, "GeoLite2-City");
            assert_eq!(r.metadata().record_size, record_size);
            let city_of = |ip: &str| -> Option<String> {
                let found = r.lookup(ip.parse().unwrap()).unwrap();
                let c: Option<maxminddb::geoip2::City> = found.decode().unwrap();
                c.and_then(|c| c.city.names.english.map(str::to_string))
            };
            for (ip, want) in [
                ("81.2.69.0", Some("London")),
                ("81.2.69.159", Some("London")),
                ("81.2.69.160", Some("Camden")),
                ("81.2.69.191", Some("Camden")),
                ("81.2.69.192", Some("London")),
                ("81.2.69.255", Some("London")),
                ("81.2.70.0", None),
                ("81.2.68.255", None),
                ("2.125.160.216", Some("Boxford")),
                ("2.125.160.223", Some("Boxford")),
                ("2.125.160.224", None),
                ("10.1.255.255", Some("Berlin")),
                ("127.0.0.1", None),
            ] {
                assert_eq!(city_of(ip).as_deref(), want, "{what}: {ip}");
            }
            // The crate's own GeoIP2 types see the GeoLite2 shape: location, subdivisions, country.
            let found = r.lookup("81.2.69.1".parse().unwrap()).unwrap();
            let c: maxminddb::geoip2::City = found.decode().unwrap().unwrap();
            assert_eq!(c.location.latitude, Some(51.5142));
            assert_eq!(c.location.time_zone, Some("Europe/London"));
            assert_eq!(c.subdivisions[0].iso_code, Some("ENG"));
            assert_eq!(c.country.iso_code, Some("GB"));
            assert_eq!(c.continent.code, Some("EU"));
            assert_eq!(found.network().unwrap().to_string(), "81.2.69.0/25", "{what}");
            if ip_version == 6 {
                assert_eq!(city_of("2001:db8:1::1").as_deref(), Some("Paris"));
                assert_eq!(city_of("2001:db9::1"), None);
            }
        }
    }
    let r = Reader::from_source(asn_db()).unwrap();
    r.verify().unwrap();
    let a: maxminddb::geoip2::Asn = r.lookup("8.8.8.8".parse().unwrap()).unwrap().decode().unwrap().unwrap();
    assert_eq!(a.autonomous_system_number, Some(15169));
    assert_eq!(a.autonomous_system_organization, Some("GOOGLE"));
}

#[test]
fn a_city_database_gives_alloys_fields_with_the_most_specific_subdivision() {
    let st = stage(&cfg(Some(GeoipDbType::City)), city_db(6, 28));
    let (ok, got) = run(&st, Some("81.2.69.142"));
    assert!(ok);
    assert_eq!(
        got,
        pairs(&[
            ("geoip_city_name", "London"),
            ("geoip_country_name", "United Kingdom"),
            ("geoip_country_code", "GB"),
            ("geoip_continent_name", "Europe"),
            ("geoip_continent_code", "EU"),
            ("geoip_location_latitude", "51.5142"),
            ("geoip_location_longitude", "-0.0931"),
            ("geoip_postal_code", "EC2V"),
            ("geoip_timezone", "Europe/London"),
            ("geoip_subdivision_name", "City of London"),
            ("geoip_subdivision_code", "CTY"),
        ])
    );
    // A record without location, postal code or subdivisions gives what it has.
    let (ok, got) = run(&st, Some("81.2.69.170"));
    assert!(ok);
    assert_eq!(
        got.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [
            "geoip_city_name",
            "geoip_continent_code",
            "geoip_continent_name",
            "geoip_country_code",
            "geoip_country_name"
        ]
    );
    assert_eq!(got[0].1, "Camden");
    // IPv6, and IPv4 written as an IPv4-mapped IPv6 address.
    assert_eq!(
        run(&st, Some("2001:db8::7")).1[0],
        ("geoip_city_name".into(), "Paris".into())
    );
    assert_eq!(run(&st, Some("::ffff:81.2.69.142")).1[0].1, "London");
}

#[test]
fn country_and_asn_databases_give_their_fields_only() {
    let st = stage(&cfg(Some(GeoipDbType::Country)), city_db(4, 24));
    let (ok, got) = run(&st, Some("81.2.69.142"));
    assert!(ok);
    assert_eq!(
        got,
        pairs(&[
            ("geoip_country_name", "United Kingdom"),
            ("geoip_country_code", "GB"),
            ("geoip_continent_name", "Europe"),
            ("geoip_continent_code", "EU"),
        ])
    );
    let st = stage(&cfg(Some(GeoipDbType::Asn)), asn_db());
    assert_eq!(
        run(&st, Some("1.0.0.1")),
        (
            true,
            pairs(&[
                ("geoip_autonomous_system_number", "13335"),
                ("geoip_autonomous_system_organization", "CLOUDFLARENET"),
            ])
        )
    );
    // An ASN database looked up as a city one has none of a city's fields: nothing is added.
    let st = stage(&cfg(Some(GeoipDbType::City)), asn_db());
    assert_eq!(run(&st, Some("8.8.8.8")), (true, vec![]));
}

#[test]
fn a_missing_value_or_one_that_is_no_ip_fails_and_an_address_not_in_the_database_adds_nothing() {
    let st = stage(&cfg(Some(GeoipDbType::City)), city_db(6, 32));
    assert_eq!(run(&st, None), (false, vec![]), "no `ip` extracted");
    for bad in [
        "",
        "not an ip",
        "81.2.69",
        "81.2.69.142 ",
        "81.2.69.256",
        "fe80::1%eth0",
    ] {
        assert_eq!(run(&st, Some(bad)), (false, vec![]), "{bad:?}");
    }
    for absent in ["127.0.0.1", "192.0.2.1", "::1", "2001:db9::1"] {
        assert_eq!(run(&st, Some(absent)), (true, vec![]), "{absent}");
    }
    // An IPv6 address in a database of IPv4 only cannot be looked up: a failure.
    let st = stage(&cfg(Some(GeoipDbType::City)), city_db(4, 24));
    assert_eq!(run(&st, Some("2001:db8::1")), (false, vec![]));
}

#[test]
fn custom_lookups_extract_scalars_by_path_and_skip_maps_lists_and_missing_paths() {
    let mut c = cfg(None);
    c.custom_lookups = BTreeMap::from(
        [
            ("department", "MyCompany.DeptName"),
            ("floor", "MyCompany.Floor"),
            ("ratio", "MyCompany.Ratio"),
            ("remote", "MyCompany.Remote"),
            ("tag", "MyCompany.Tags[1]"),
            ("tags", "MyCompany.Tags"),
            ("company", "MyCompany"),
            ("nothing", "MyCompany.Nope"),
            ("through_a_list", "MyCompany.Tags.x"),
            ("subdivision", "subdivisions[1].iso_code"),
            ("postal", ""),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let st = stage(&c, city_db(6, 24));
    assert_eq!(
        run(&st, Some("10.1.2.3")),
        (
            true,
            pairs(&[
                ("department", "Platform"),
                ("floor", "3"),
                ("ratio", "1.5"),
                ("remote", "true"),
                ("tag", "b"),
            ])
        )
    );
    let (ok, got) = run(&st, Some("81.2.69.1"));
    assert!(ok);
    assert_eq!(got, pairs(&[("subdivision", "CTY")]));
    // With a db_type, both.
    c.db_type = Some(GeoipDbType::Country);
    let st = stage(&c, city_db(6, 24));
    let (_, got) = run(&st, Some("10.1.2.3"));
    assert!(got.contains(&("department".into(), "Platform".into())), "{got:?}");
    assert!(got.contains(&("geoip_country_code".into(), "DE".into())), "{got:?}");
}

#[test]
fn settings_and_databases_that_cannot_work_are_refused_naming_the_key() {
    let key = "targets[0].pipeline_stages[2].geoip";
    let city = Some(GeoipDbType::City);
    let cases = [
        (
            GeoipConfig {
                db: String::new(),
                ..cfg(city)
            },
            ".db: give the path",
        ),
        (
            GeoipConfig {
                source: String::new(),
                ..cfg(city)
            },
            ".source: name",
        ),
        (cfg(None), ".db_type: give city, country or asn"),
        (
            GeoipConfig {
                custom_lookups: BTreeMap::from([("x".to_string(), "a[-1]".to_string())]),
                ..cfg(None)
            },
            ".custom_lookups.x: the path \"a[-1]\" has [-1]",
        ),
    ];
    for (c, want) in cases {
        let e = GeoipStage::check(&c, key).err().unwrap();
        assert!(e.starts_with(key) && e.contains(want), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("GeoLite2-City.mmdb");
    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(&not_a_db, "hello").unwrap();
    for (path, want) in [
        (missing.as_path(), "No such file"),
        (not_a_db.as_path(), "is not a MaxMind database"),
        (dir.path(), "is not a file"),
    ] {
        let c = GeoipConfig {
            db: path.display().to_string(),
            ..cfg(city)
        };
        let e = GeoipStage::new(&c, key).err().unwrap();
        assert!(
            e.starts_with(&format!("{key}.db: ")) && e.contains(&path.display().to_string()) && e.contains(want),
            "{e}"
        );
    }
    // A corrupt database is refused or, if it opens, never panics on lookups.
    let good = city_db(6, 28);
    for cut in [0, 10, good.len() / 2, good.len() - 20] {
        let mut bad = good.clone();
        bad.truncate(cut);
        if let Ok(st) = GeoipStage::from_bytes(&cfg(city), bad) {
            let _ = run(&st, Some("81.2.69.142"));
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_config_loads_the_database_once_and_names_the_key_when_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    write(&db, &city_db(6, 24));
    let yaml = |db: &Path| {
        format!(
            "targets:\n  - paths: [/x/*.log]\n  - paths: [/y/*.log]\n    pipeline_stages:\n      - regex: {{expression: '^(?P<ip>\\S+)'}}\n      - geoip: {{source: ip, db: {}, db_type: city}}\npipeline_stages:\n  - geoip: {{source: ip, db: {}, db_type: country}}\n",
            db.display(),
            db.display()
        )
    };
    let cfg = crate::config::load_str(&yaml(&db), "t").unwrap();
    let compiled = cfg.compile_targets().unwrap();
    // Every stage naming the file shares one copy of it.
    let dbs: Vec<Arc<Db>> = compiled
        .iter()
        .flat_map(|t| t.pipeline.as_ref().expect("stages").stages.iter())
        .filter_map(|(_, s)| match s {
            crate::process::pipeline::Stage::Geoip(g) => Some(g.db.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(dbs.len(), 3);
    assert!(dbs.iter().all(|d| Arc::ptr_eq(d, &dbs[0])));
    // A file changed since is read anew (a reload after an update).
    write(&db, &asn_db());
    let again = GeoipStage::new(&cfg_at(&db), "k").unwrap();
    assert!(!Arc::ptr_eq(&again.db, &dbs[0]));
    assert_eq!(again.db.metadata().database_type, "GeoLite2-ASN");

    let missing = dir.path().join("gone.mmdb");
    let e = crate::config::load_str(&yaml(&missing), "t")
        .unwrap()
        .validate("t")
        .err()
        .unwrap();
    assert_eq!(e.key, "pipeline_stages[0].geoip.db", "{e}");
    assert!(e.message.contains(&missing.display().to_string()), "{e}");
    let e = crate::config::load_str(
        "targets: [{paths: [/x/*.log]}]\npipeline_stages:\n  - geoip: {source: ip, db: /x.mmdb, db_type: town}\n",
        "t",
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("town") && e.to_string().contains("city"), "{e}");
}

/// A reload compares targets by a key: a database changed on disk changes the key of the targets
/// whose stages read it, so their files get stages reading the new one.
#[test]
fn a_database_changed_on_disk_changes_the_reload_key_of_the_targets_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    write(&db, &city_db(6, 24));
    let yaml = format!(
        "targets:\n  - paths: [/x/*.log]\n  - paths: [/y/*.log]\n    pipeline_stages:\n      - regex: {{expression: '^(?P<ip>\\S+)'}}\n      - geoip: {{source: ip, db: {}, db_type: city}}\n",
        db.display()
    );
    let cfg = crate::config::load_str(&yaml, "t").unwrap();
    let keys = || {
        let t = crate::discover::Targets::from_config(&cfg).unwrap();
        [t.key(0).unwrap().to_string(), t.key(1).unwrap().to_string()]
    };
    let before = keys();
    assert_eq!(keys(), before, "an unchanged database keeps the keys");
    assert!(before[1].contains(&db.display().to_string()), "{}", before[1]);
    write(&db, &asn_db());
    let after = keys();
    assert_eq!(after[0], before[0], "the target without geoip is untouched");
    assert_ne!(after[1], before[1], "the target reading the database is read anew");
}

fn cfg_at(db: &Path) -> GeoipConfig {
    GeoipConfig {
        db: db.display().to_string(),
        ..cfg(Some(GeoipDbType::Asn))
    }
}

#[test]
fn in_a_pipeline_regex_geoip_and_labels_label_the_line_by_its_country() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    write(&db, &city_db(4, 32));
    let yaml = format!(
        "- regex: {{expression: '^(?P<ip>\\S+) '}}\n- geoip: {{source: ip, db: {}, db_type: city}}\n- labels: {{country: geoip_country_code, geoip_city_name: ''}}\n",
        db.display()
    );
    let (out, stats) =
        crate::process::pipeline::tests::run(&yaml, &["81.2.69.142 GET /", "127.0.0.1 GET /", "- GET /"]);
    let labels: Vec<Option<String>> = out.iter().map(|o| o.1.clone()).collect();
    assert!(labels[0].as_deref().unwrap().contains("country=\"GB\""), "{labels:?}");
    assert!(
        labels[0].as_deref().unwrap().contains("geoip_city_name=\"London\""),
        "{labels:?}"
    );
    assert_eq!(labels[1], None, "not in the database: the file's labels");
    assert_eq!(labels[2], None);
    assert_eq!(out[0].0, "81.2.69.142 GET /");
    assert_eq!(stats.failed.get("geoip"), Some(&1), "`-` is no IP address");
}
