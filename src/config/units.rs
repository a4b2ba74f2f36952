//! Prometheus's duration (`1m30s`) and byte-size (`10MB`) syntaxes, so values
//! copied from a prometheus.yml mean the same here.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{de, Deserialize, Deserializer};

/// A duration written as Prometheus writes it: units `y w d h m s ms` in
/// decreasing order, integers only (`1h30m`, `500ms`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub StdDuration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(StdDuration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Duration(StdDuration::from_millis(ms))
    }

    /// Parses Prometheus's `model.ParseDuration` syntax.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!("{s:?} is not a valid duration (expected e.g. 15s, 1m30s, 500ms, 1h; units y w d h m s ms, largest first)")
        };
        if s == "0" {
            return Ok(Duration::default());
        }
        if s.is_empty() {
            return Err(bad());
        }
        let mut rest = s;
        let mut total: u64 = 0;
        let mut last_unit = 0usize;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let (index, ms) = UNITS
                .iter()
                .enumerate()
                .find(|(_, (u, _))| *u == unit)
                .map(|(i, (_, ms))| (i, *ms))
                .ok_or_else(bad)?;
            // Units must come largest first, each at most once.
            if total > 0 && index <= last_unit {
                return Err(bad());
            }
            last_unit = index;
            total = n
                .checked_mul(ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(Duration::from_millis(total))
    }

    pub fn as_std(self) -> StdDuration {
        self.0
    }
}

impl fmt::Display for Duration {
    /// Prints in the syntax [`Duration::parse`] reads, like Prometheus does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// In the syntax it is read in (`15s`), as Prometheus writes it.
impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        Duration::parse(&s).map_err(de::Error::custom)
    }
}

/// A byte size as Prometheus's `units.Base2Bytes` reads it: `0`, `512`,
/// `10MB`, `1GiB`; KB/MB/GB are powers of 1024 there, and here too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let bad = || format!("{s:?} is not a valid size (expected e.g. 0, 512B, 10MB, 1GiB)");
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = s[..digits].parse().map_err(|_| bad())?;
        let shift = match &s[digits..] {
            "" | "B" => 0,
            "KB" | "KiB" => 10,
            "MB" | "MiB" => 20,
            "GB" | "GiB" => 30,
            "TB" | "TiB" => 40,
            "PB" | "PiB" => 50,
            "EB" | "EiB" => 60,
            _ => return Err(bad()),
        };
        n.checked_mul(1u64 << shift).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [
            ("EiB", 60),
            ("PiB", 50),
            ("TiB", 40),
            ("GiB", 30),
            ("MiB", 20),
            ("KiB", 10),
        ] {
            if self.0 >= 1 << shift && self.0 % (1 << shift) == 0 {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// In the syntax it is read in (`1GiB`).
impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        ByteSize::parse(&s).map_err(de::Error::custom)
    }
}

/// YAML reads `0` or `512` as a number and `15s` as a string; both are text
/// to the unit parsers (environment overrides arrive as either, too).
struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = StringOrNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string such as \"15s\" or \"10MB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(StringOrNumber(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("0", 0),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("2w", 1_209_600_000),
            ("1y", 31_536_000_000),
            ("1m0s", 60_000),
        ];
        for (s, ms) in ok {
            assert_eq!(Duration::parse(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "1.5s", "30", "1s1m", "1s1s", "s", "1x", "-1s", " 1s"] {
            assert!(Duration::parse(s).is_err(), "{s:?} should be rejected");
        }
        assert_eq!(Duration::from_millis(90_500).to_string(), "1m30s500ms");
        assert_eq!(Duration::default().to_string(), "0s");
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("0"), Ok(ByteSize(0)));
        assert_eq!(ByteSize::parse("10MB"), Ok(ByteSize(10 << 20)));
        assert_eq!(ByteSize::parse("1GiB"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("512B"), Ok(ByteSize(512)));
        assert!(ByteSize::parse("10 MB").is_err());
        assert!(ByteSize::parse("1.5GB").is_err());
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
    }
}
