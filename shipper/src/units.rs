//! Human-friendly durations (`500ms`, `10s`, `5m`, `1h30m`) and byte sizes (`256KiB`, `1MiB`, `1048576`)
//! as they appear in the YAML config and on the command line.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written like Prometheus/Promtail ones: `250ms`, `10s`, `5m`, `1h`, `1m30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn ms(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not a duration; write it like 500ms, 10s, 5m, 1h or 1m30s");
        if s.is_empty() {
            return Err(bad());
        }
        if s == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                _ => return Err(bad()),
            };
            total = total.saturating_add(part);
        }
        Ok(Dur(total))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            write!(f, "0s")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A size in bytes: a plain integer or a number with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not a size; write it like 1048576, 256KiB, 1MiB or 2GiB");
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if split == 0 {
            return Err(bad());
        }
        let n: u64 = s[..split].parse().map_err(|_| bad())?;
        let mult: u64 = match s[split..].trim() {
            "" | "B" => 1,
            "KiB" | "Ki" => 1 << 10,
            "MiB" | "Mi" => 1 << 20,
            "GiB" | "Gi" => 1 << 30,
            "KB" | "kB" | "K" => 1_000,
            "MB" | "M" => 1_000_000,
            "GB" | "G" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b != 0 && b.is_multiple_of(1 << 30) {
            write!(f, "{}GiB", b >> 30)
        } else if b != 0 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b != 0 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}")
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// In the configuration reference: a string such as `500ms`, `10s`, `5m` or `24h`.
impl schemars::JsonSchema for Dur {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "duration"})
    }
}

/// In the configuration reference: bytes, as an integer or with a unit (`256KiB`, `1MiB`, `2GiB`).
impl schemars::JsonSchema for ByteSize {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "integer"], "format": "byte-size"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("500ms".parse::<Dur>().unwrap(), Dur::ms(500));
        assert_eq!("1m30s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert_eq!("5m".parse::<Dur>().unwrap().to_string(), "5m");
        assert_eq!(Dur::ms(1500).to_string(), "1500ms");
        for bad in ["", "10", "1x", "ms", "-1s", "1.5s"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!("256KiB".parse::<ByteSize>().unwrap(), ByteSize(256 << 10));
        assert_eq!("1 MiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 20));
        assert_eq!("12".parse::<ByteSize>().unwrap(), ByteSize(12));
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        for bad in ["", "MiB", "1TiB", "-1", "99999999999999999999"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }
}
