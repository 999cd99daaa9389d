//! MaxMind DB files for tests, written from the format's specification
//! (<https://maxmind.github.io/MaxMind-DB/>): a binary search tree over the address bits with
//! 24, 28 or 32-bit records, the 16-byte separator, the data section (maps, arrays, UTF-8
//! strings, doubles, floats, unsigned integers, booleans, each value written once and named by
//! its offset), then `\xAB\xCD\xEFMaxMind.com` and the metadata map.
//!
//! ```
//! use shipper_testkit::mmdb::{city, Mmdb, Value};
//! let mut db = Mmdb::new("GeoLite2-City", 6, 28);
//! db.insert("81.2.69.0/24", city("London", "GB", "United Kingdom", "EU", "Europe"));
//! db.insert("2001:db8::/32", Value::map([("autonomous_system_number", Value::U32(64496))]));
//! let bytes = db.build();
//! assert!(bytes.len() > 100);
//! ```
//!
//! In a database of `ip_version` 6, IPv4 networks sit at `::a.b.c.d` (the first 96 bits zero),
//! where readers look IPv4 addresses up.

use std::collections::HashMap;
use std::net::IpAddr;

/// A value of the data section.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    F64(f64),
    F32(f32),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    /// A map from (key, value) pairs, in that order.
    pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// GeoIP2's `names` map with an English name only: `{"en": name}`.
    pub fn names(en: &str) -> Value {
        Value::map([("en", Value::str(en))])
    }
}

/// A City record shaped like GeoLite2-City's, without location, postal code or subdivisions (add
/// them with [`with`]).
pub fn city(city: &str, country_code: &str, country: &str, continent_code: &str, continent: &str) -> Value {
    Value::map([
        (
            "city",
            Value::map([("geoname_id", Value::U32(1)), ("names", Value::names(city))]),
        ),
        (
            "continent",
            Value::map([("code", Value::str(continent_code)), ("names", Value::names(continent))]),
        ),
        (
            "country",
            Value::map([("iso_code", Value::str(country_code)), ("names", Value::names(country))]),
        ),
        (
            "registered_country",
            Value::map([("iso_code", Value::str(country_code)), ("names", Value::names(country))]),
        ),
    ])
}

/// An ASN record shaped like GeoLite2-ASN's.
pub fn asn(number: u32, organization: &str) -> Value {
    Value::map([
        ("autonomous_system_number", Value::U32(number)),
        ("autonomous_system_organization", Value::str(organization)),
    ])
}

/// `record` (a map) with `key` set to `value`.
pub fn with(record: Value, key: &str, value: Value) -> Value {
    match record {
        Value::Map(mut pairs) => {
            pairs.retain(|(k, _)| k != key);
            pairs.push((key.to_string(), value));
            Value::Map(pairs)
        }
        other => other,
    }
}

/// A database being put together: its networks and their records.
pub struct Mmdb {
    database_type: String,
    ip_version: u16,
    record_size: u16,
    networks: Vec<(u128, u8, Value)>,
}

/// A record of the search tree while it is built.
#[derive(Clone, Copy, PartialEq)]
enum Child {
    Empty,
    Node(usize),
    Data(usize),
}

impl Mmdb {
    /// An empty database; `ip_version` 4 or 6, `record_size` 24, 28 or 32 bits.
    pub fn new(database_type: &str, ip_version: u16, record_size: u16) -> Mmdb {
        assert!(matches!(ip_version, 4 | 6), "ip_version 4 or 6");
        assert!(matches!(record_size, 24 | 28 | 32), "record_size 24, 28 or 32");
        Mmdb {
            database_type: database_type.to_string(),
            ip_version,
            record_size,
            networks: Vec::new(),
        }
    }

    /// Adds a network (`1.2.3.0/24`, `2001:db8::/32`) with its record. A network inside one added
    /// before keeps its own record; the rest of the larger one keeps the larger one's.
    pub fn insert(&mut self, network: &str, record: Value) {
        let (addr, len) = network.split_once('/').expect("a network such as 1.2.3.0/24");
        let len: u8 = len.parse().expect("a prefix length");
        let (bits, len) = match addr.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(v4) if self.ip_version == 4 => {
                assert!(len <= 32);
                ((u32::from(v4) as u128) << 96, len)
            }
            // `::a.b.c.d`: where IPv6 databases keep IPv4.
            IpAddr::V4(v4) => {
                assert!(len <= 32);
                (u32::from(v4) as u128, 96 + len)
            }
            IpAddr::V6(v6) => {
                assert!(self.ip_version == 6, "an IPv6 network in an IPv4 database");
                assert!(len <= 128);
                (u128::from(v6), len)
            }
        };
        self.networks.push((bits, len, record));
    }

    /// The database file's bytes.
    pub fn build(&self) -> Vec<u8> {
        // Data section: each distinct record once.
        let mut data = Vec::new();
        let mut offsets: Vec<usize> = Vec::new();
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for (_, _, record) in &self.networks {
            let mut bytes = Vec::new();
            encode(record, &mut bytes);
            let at = *seen.entry(bytes.clone()).or_insert_with(|| {
                let at = data.len();
                data.extend_from_slice(&bytes);
                at
            });
            offsets.push(at);
        }
        // The tree: wider networks first, so narrower ones split them.
        let mut order: Vec<usize> = (0..self.networks.len()).collect();
        order.sort_by_key(|&i| self.networks[i].1);
        let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty; 2]];
        for i in order {
            let (bits, len, _) = &self.networks[i];
            assert!(*len > 0, "a network of length 0 would be the root itself");
            let mut node = 0;
            for d in 0..*len {
                let bit = ((bits >> (127 - d as u32)) & 1) as usize;
                if d + 1 == *len {
                    nodes[node][bit] = Child::Data(offsets[i]);
                    break;
                }
                node = match nodes[node][bit] {
                    Child::Node(n) => n,
                    other => {
                        // Empty or a wider network's record: a new node with it on both sides.
                        nodes.push([other, other]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Child::Node(n);
                        n
                    }
                };
            }
        }
        let count = nodes.len() as u64;
        let record = |c: Child| -> u64 {
            match c {
                Child::Empty => count,
                Child::Node(n) => n as u64,
                Child::Data(at) => count + 16 + at as u64,
            }
        };
        let max = (1u64 << self.record_size) - 1;
        let mut out = Vec::new();
        for n in &nodes {
            let (l, r) = (record(n[0]), record(n[1]));
            assert!(
                l <= max && r <= max,
                "the data section is too large for {}-bit records",
                self.record_size
            );
            match self.record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.push((((l >> 24) as u8 & 0x0f) << 4) | ((r >> 24) as u8 & 0x0f));
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                _ => {
                    out.extend_from_slice(&(l as u32).to_be_bytes());
                    out.extend_from_slice(&(r as u32).to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            ("database_type", Value::Str(self.database_type.clone())),
            ("description", Value::map([("en", Value::str("A database for tests"))])),
            ("ip_version", Value::U16(self.ip_version)),
            ("languages", Value::Array(vec![Value::str("en")])),
            ("node_count", Value::U32(count as u32)),
            ("record_size", Value::U16(self.record_size)),
        ]);
        encode(&metadata, &mut out);
        out
    }
}

/// A control byte (and its size bytes) for type `t` (1-15) and `size`.
fn control(t: u8, size: usize, out: &mut Vec<u8>) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, Vec::new()),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => {
            assert!(size - 65_821 < 1 << 24, "a value too large for the format");
            (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
        }
    };
    if t <= 7 {
        out.push((t << 5) | low);
    } else {
        // Extended types: type 0 in the control byte, then the type less 7.
        out.push(low);
        out.push(t - 7);
    }
    out.extend_from_slice(&extra);
}

/// An unsigned integer in as few big-endian bytes as it needs.
fn uint(t: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(t, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::F64(f) => {
            control(3, 8, out);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::U16(n) => uint(5, *n as u64, out),
        Value::U32(n) => uint(6, *n as u64, out),
        Value::Map(pairs) => {
            control(7, pairs.len(), out);
            for (k, v) in pairs {
                encode(&Value::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Value::U64(n) => uint(9, *n, out),
        Value::Array(items) => {
            control(11, items.len(), out);
            for v in items {
                encode(v, out);
            }
        }
        Value::Bool(b) => control(14, *b as usize, out),
        Value::F32(f) => {
            control(15, 4, out);
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
}
