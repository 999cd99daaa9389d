//! The `geoip` stage (Promtail's `geoip`, Alloy's `stage.geoip`): the IP address in an extracted
//! value is looked up in a MaxMind database, and what the database knows of it becomes extracted
//! values, which later stages make labels or structured metadata.
//!
//! ```yaml
//! - regex: {expression: '^(?P<ip>\S+) '}
//! - geoip: {source: ip, db: /geoip/GeoLite2-City.mmdb, db_type: city}
//! - labels: {geoip_country_code: ""}
//! ```
//!
//! As in Alloy, a line whose value is missing, is not an IP address, or is not in the database
//! gets nothing added and goes on; only the first two count as failures of the stage (as does a
//! record that does not decode). Records are decoded in place: names are borrowed from the
//! database, and numbers are written straight into the extracted value.

use super::config::{GeoipConfig, GeoipDbType};
use super::extract::{parse_path, Seg};
use super::{Extracted, Line};
use maxminddb::{PathElement, Reader};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

type Db = Reader<Vec<u8>>;

/// The most steps a `custom_lookups` path may have.
const MAX_STEPS: usize = 16;

/// The names of what the stage extracts, in the order of the indices below.
const FIELDS: [&str; 13] = [
    "geoip_city_name",
    "geoip_country_name",
    "geoip_country_code",
    "geoip_continent_name",
    "geoip_continent_code",
    "geoip_location_latitude",
    "geoip_location_longitude",
    "geoip_postal_code",
    "geoip_timezone",
    "geoip_subdivision_name",
    "geoip_subdivision_code",
    "geoip_autonomous_system_number",
    "geoip_autonomous_system_organization",
];
const CITY: usize = 0;
const COUNTRY: usize = 1;
const COUNTRY_CODE: usize = 2;
const CONTINENT: usize = 3;
const CONTINENT_CODE: usize = 4;
const LATITUDE: usize = 5;
const LONGITUDE: usize = 6;
const POSTAL_CODE: usize = 7;
const TIMEZONE: usize = 8;
const SUBDIVISION: usize = 9;
const SUBDIVISION_CODE: usize = 10;
const ASN: usize = 11;
const ASN_ORG: usize = 12;

/// The extracted names a database type gives (Alloy's).
pub fn fields(db_type: GeoipDbType) -> &'static [&'static str] {
    match db_type {
        GeoipDbType::City => &FIELDS[CITY..=SUBDIVISION_CODE],
        GeoipDbType::Country => &FIELDS[COUNTRY..=CONTINENT_CODE],
        GeoipDbType::Asn => &FIELDS[ASN..=ASN_ORG],
    }
}

/// `custom_lookups`: extracted name → path in the record.
type Lookups = Vec<(Arc<str>, Vec<Seg>)>;

pub struct GeoipStage {
    db: Arc<Db>,
    /// The database file as read (None: given as bytes).
    file: Option<FileId>,
    source: Box<str>,
    db_type: Option<GeoipDbType>,
    names: [Arc<str>; 13],
    custom: Lookups,
}

impl GeoipStage {
    /// The stage, its database read (or shared with stages that read the same unchanged file).
    /// Errors name the setting under `key` (`targets[0].pipeline_stages[2].geoip`).
    pub fn new(c: &GeoipConfig, key: &str) -> Result<GeoipStage, String> {
        let custom = Self::paths(c, key)?;
        let (db, file) = open(&c.db).map_err(|e| format!("{key}.db: {e}"))?;
        Ok(GeoipStage {
            file: Some(file),
            ..Self::with(c, db, custom)
        })
    }

    /// The database file as read: path, device and inode, size, modification time (None: given
    /// as bytes).
    pub(super) fn file(&self) -> Option<String> {
        let (path, dev, ino, len, s, ns) = self.file.as_ref()?;
        Some(format!("{path} {dev}:{ino} {len} {s}.{ns:09}"))
    }

    /// The stage on a database given as bytes rather than a file (tests, fuzzing).
    pub fn from_bytes(c: &GeoipConfig, db: Vec<u8>) -> Result<GeoipStage, String> {
        let custom = Self::paths(c, "geoip")?;
        let db = Reader::from_source(db).map_err(|e| format!("not a MaxMind database: {e}"))?;
        Ok(Self::with(c, Arc::new(db), custom))
    }

    fn with(c: &GeoipConfig, db: Arc<Db>, custom: Lookups) -> GeoipStage {
        GeoipStage {
            db,
            file: None,
            source: c.source.as_str().into(),
            db_type: c.db_type,
            names: FIELDS.map(Arc::from),
            custom,
        }
    }

    /// The settings checked without reading the database (`shipper convert` writes configs for
    /// other machines).
    pub fn check(c: &GeoipConfig, key: &str) -> Result<(), String> {
        Self::paths(c, key).map(drop)
    }

    /// The settings checked; Ok holds the `custom_lookups` paths.
    fn paths(c: &GeoipConfig, key: &str) -> Result<Lookups, String> {
        if c.db.is_empty() {
            return Err(format!("{key}.db: give the path of a MaxMind database file (.mmdb)"));
        }
        if c.source.is_empty() {
            return Err(format!("{key}.source: name the extracted value holding the IP address"));
        }
        if c.db_type.is_none() && c.custom_lookups.is_empty() {
            return Err(format!(
                "{key}.db_type: give city, country or asn (or custom_lookups), or nothing is extracted"
            ));
        }
        let mut custom = Vec::new();
        for (name, path) in &c.custom_lookups {
            let at = format!("{key}.custom_lookups.{name}");
            if name.is_empty() {
                return Err(format!("{key}.custom_lookups: an extracted name is empty"));
            }
            let path = if path.is_empty() { name } else { path };
            let steps = parse_path(path).map_err(|e| format!("{at}: the path {path:?} {e}"))?;
            if steps.len() > MAX_STEPS {
                return Err(format!("{at}: the path {path:?} has more than {MAX_STEPS} steps"));
            }
            custom.push((Arc::from(name.as_str()), steps));
        }
        Ok(custom)
    }

    /// Adds what the database knows of the address in `source`. False: the value is missing or
    /// not an IP address, or its record does not decode (the line is unchanged).
    pub fn apply(&self, line: &mut Line) -> bool {
        let Some(ip) = line.extracted.get(&self.source).and_then(|v| v.parse::<IpAddr>().ok()) else {
            return false;
        };
        // `::ffff:1.2.3.4` is looked up where IPv4 addresses are.
        let Ok(found) = self.db.lookup(ip.to_canonical()) else {
            return false;
        };
        if !found.has_data() {
            return true;
        }
        let ex = &mut line.extracted;
        let mut ok = true;
        match self.db_type {
            Some(GeoipDbType::Asn) => match found.decode::<AsnRecord>() {
                Ok(Some(r)) => self.set_asn(&r, ex),
                Ok(None) => {}
                Err(_) => ok = false,
            },
            Some(t) => match found.decode::<GeoRecord>() {
                Ok(Some(r)) => self.set_geo(&r, t == GeoipDbType::City, ex),
                Ok(None) => {}
                Err(_) => ok = false,
            },
            None => {}
        }
        for (name, steps) in &self.custom {
            let path: [PathElement<'_>; MAX_STEPS] = std::array::from_fn(|i| match steps.get(i) {
                Some(Seg::Key(k)) => PathElement::Key(k),
                Some(Seg::Index(n)) => PathElement::Index(*n),
                None => PathElement::Index(0),
            });
            // A path that leads nowhere (or through a list as if it were a map) gives nothing.
            if let Ok(Some(v)) = found.decode_path::<Scalar>(&path[..steps.len().min(MAX_STEPS)]) {
                v.set(name, ex);
            }
        }
        ok
    }

    fn set_str(&self, field: usize, value: Option<&str>, ex: &mut Extracted) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            ex.set(&self.names[field], v);
        }
    }

    fn set_geo(&self, r: &GeoRecord<'_>, city: bool, ex: &mut Extracted) {
        self.set_str(COUNTRY, r.country.names.en, ex);
        self.set_str(COUNTRY_CODE, r.country.iso_code, ex);
        self.set_str(CONTINENT, r.continent.names.en, ex);
        self.set_str(CONTINENT_CODE, r.continent.code, ex);
        if !city {
            return;
        }
        self.set_str(CITY, r.city.names.en, ex);
        if let (Some(lat), Some(lon)) = (&r.location.latitude, &r.location.longitude) {
            if lat.is_number() && lon.is_number() {
                lat.set(&self.names[LATITUDE], ex);
                lon.set(&self.names[LONGITUDE], ex);
            }
        }
        self.set_str(POSTAL_CODE, r.postal.code, ex);
        self.set_str(TIMEZONE, r.location.time_zone, ex);
        // The most specific subdivision (the last one), as Promtail and Alloy take it.
        if let Some(sub) = &r.subdivisions.0 {
            self.set_str(SUBDIVISION, sub.names.en, ex);
            self.set_str(SUBDIVISION_CODE, sub.iso_code, ex);
        }
    }

    fn set_asn(&self, r: &AsnRecord<'_>, ex: &mut Extracted) {
        if let Some(n) = r
            .autonomous_system_number
            .as_ref()
            .filter(|n| n.is_number() && !n.is_zero())
        {
            n.set(&self.names[ASN], ex);
        }
        self.set_str(ASN_ORG, r.autonomous_system_organization, ex);
    }
}

/// Identifies a database file as read: the same path, device, inode, size and modification time.
type FileId = (String, u64, u64, u64, i64, i64);

/// Reads the database at `path`, or shares the copy another stage read while the file is
/// unchanged (global stages are compiled once per target); a file changed since is read anew.
fn open(path: &str) -> Result<(Arc<Db>, FileId), String> {
    use std::os::unix::fs::MetadataExt;
    static OPEN: Mutex<Vec<(FileId, Weak<Db>)>> = Mutex::new(Vec::new());
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a file: give a MaxMind database file (.mmdb)"));
    }
    let id: FileId = (
        path.to_string(),
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    open.retain(|(_, db)| db.strong_count() > 0);
    if let Some(db) = open.iter().find(|(i, _)| *i == id).and_then(|(_, db)| db.upgrade()) {
        return Ok((db, id));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let db = Reader::from_source(bytes).map_err(|e| format!("{path} is not a MaxMind database: {e}"))?;
    let db = Arc::new(db);
    open.push((id.clone(), Arc::downgrade(&db)));
    Ok((db, id))
}

/// The parts of a GeoIP2 City or Country record the stage reads (others are skipped).
#[derive(Deserialize, Default)]
#[serde(default)]
struct GeoRecord<'a> {
    #[serde(borrow)]
    city: Place<'a>,
    #[serde(borrow)]
    country: Place<'a>,
    #[serde(borrow)]
    continent: Place<'a>,
    #[serde(borrow)]
    postal: Place<'a>,
    #[serde(borrow)]
    location: Location<'a>,
    #[serde(borrow)]
    subdivisions: Last<Place<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Place<'a> {
    #[serde(borrow)]
    names: Names<'a>,
    #[serde(borrow)]
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Location<'a> {
    #[serde(borrow)]
    latitude: Option<Scalar<'a>>,
    #[serde(borrow)]
    longitude: Option<Scalar<'a>>,
    #[serde(borrow)]
    time_zone: Option<&'a str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AsnRecord<'a> {
    #[serde(borrow)]
    autonomous_system_number: Option<Scalar<'a>>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

/// The last element of a list, without keeping the others.
struct Last<T>(Option<T>);

impl<T> Default for Last<T> {
    fn default() -> Self {
        Last(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Last<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Last<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Last<T>, A::Error> {
                let mut last = None;
                while let Some(x) = seq.next_element()? {
                    last = Some(x);
                }
                Ok(Last(last))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// A value read whatever its type in the database (integers of any width, double or float): a
/// string, number or boolean is extracted; a map or list is not.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    U128(u128),
    I64(i64),
    F64(f64),
    F32(f32),
    Bool(bool),
    Other,
}

impl Scalar<'_> {
    fn is_number(&self) -> bool {
        matches!(
            self,
            Scalar::U64(_) | Scalar::U128(_) | Scalar::I64(_) | Scalar::F64(_) | Scalar::F32(_)
        )
    }

    fn is_zero(&self) -> bool {
        matches!(self, Scalar::U64(0) | Scalar::U128(0) | Scalar::I64(0))
    }

    fn set(&self, name: &Arc<str>, ex: &mut Extracted) {
        match self {
            Scalar::Str(s) => ex.set(name, s),
            Scalar::U64(n) => ex.set_fmt(name, format_args!("{n}")),
            Scalar::U128(n) => ex.set_fmt(name, format_args!("{n}")),
            Scalar::I64(n) => ex.set_fmt(name, format_args!("{n}")),
            Scalar::F64(n) => ex.set_fmt(name, format_args!("{n}")),
            Scalar::F32(n) => ex.set_fmt(name, format_args!("{n}")),
            Scalar::Bool(b) => ex.set(name, if *b { "true" } else { "false" }),
            Scalar::Other => {}
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<Scalar<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Scalar<'a>, E> {
                Ok(Scalar::U128(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_f32<E>(self, v: f32) -> Result<Scalar<'a>, E> {
                Ok(Scalar::F32(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar<'a>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar<'a>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[path = "geoip_tests.rs"]
mod tests;
