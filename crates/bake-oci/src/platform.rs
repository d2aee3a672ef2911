//! The platform an image is for, and how a request for one picks an entry
//! of an index: one syntax and one rule for every crate (recipes, the CLI,
//! layouts, registries).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The platform an image runs on: `os/architecture[/variant]`, e.g.
/// `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without a variant.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Platform {
        Platform::new("linux", "amd64")
    }

    /// As a JSON value, in the form used in index entries.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architecture".into(), Value::String(self.architecture.clone()));
        m.insert("os".into(), Value::String(self.os.clone()));
        if let Some(v) = &self.variant {
            m.insert("variant".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }

    /// Whether an image for `other` can serve a request for `self`: same
    /// os and architecture, and the same variant when both name one.
    pub fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The entry of an image index that serves this platform: the first
    /// whose platform is exactly this one, else the only one this platform
    /// [`accepts`](Platform::accepts). `None` when none fits, or when
    /// several fit and none exactly (e.g. `linux/arm` among `linux/arm/v6`
    /// and `linux/arm/v7`): the caller should list the index's platforms and
    /// ask for a variant. Every index lookup (layouts, registries) uses this.
    pub fn select<'a, T>(
        &self,
        entries: &'a [T],
        platform_of: impl Fn(&T) -> Option<&Platform>,
    ) -> Option<&'a T> {
        if let Some(exact) = entries.iter().find(|e| platform_of(e) == Some(self)) {
            return Some(exact);
        }
        let mut fitting = entries
            .iter()
            .filter(|e| platform_of(e).is_some_and(|p| self.accepts(p)));
        match (fitting.next(), fitting.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// This platform as an error names it when [`select`](Platform::select)
    /// found nothing in `entries`: with a hint when several entries fit.
    pub fn describe_unselected<T>(
        &self,
        entries: &[T],
        platform_of: impl Fn(&T) -> Option<&Platform>,
    ) -> String {
        let fitting = entries
            .iter()
            .filter(|e| platform_of(e).is_some_and(|p| self.accepts(p)))
            .count();
        if fitting > 1 {
            format!("{self} alone ({fitting} entries fit it: name the variant)")
        } else {
            self.to_string()
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A string that is not `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPlatform(pub String);

impl fmt::Display for InvalidPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid platform {:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64",
            self.0
        )
    }
}

impl std::error::Error for InvalidPlatform {}

impl FromStr for Platform {
    type Err = InvalidPlatform;
    /// Parses `os/architecture[/variant]`; each part is non-empty lower-case
    /// ASCII letters, digits, `_` or `.`.
    fn from_str(s: &str) -> Result<Platform, InvalidPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(*os, *arch)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(InvalidPlatform(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse_display_accepts() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(p, Platform::linux_amd64());
        assert_eq!(p.to_string(), "linux/amd64");
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(v7.to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "Linux/amd64",
            "linux/amd 64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.accepts(&v7));
        assert!(v7.accepts(&arm));
        assert!(!v7.accepts(&"linux/arm/v6".parse().unwrap()));
        assert!(!p.accepts(&"linux/arm64".parse().unwrap()));
        assert!(!p.accepts(&"windows/amd64".parse().unwrap()));
    }

    #[test]
    fn select_prefers_exact_then_the_only_fit() {
        let index: Vec<Platform> = [
            "linux/arm64",
            "linux/arm64/v8",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/amd64",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        let select = |want: &str| {
            let want: Platform = want.parse().unwrap();
            want.select(&index, |p| Some(p)).map(ToString::to_string)
        };
        // Exact matches win over merely fitting ones.
        assert_eq!(select("linux/arm64").as_deref(), Some("linux/arm64"));
        assert_eq!(select("linux/arm64/v8").as_deref(), Some("linux/arm64/v8"));
        assert_eq!(select("linux/arm/v7").as_deref(), Some("linux/arm/v7"));
        // No exact entry, several fit: no guess.
        assert_eq!(select("linux/arm"), None);
        let arm: Platform = "linux/arm".parse().unwrap();
        assert_eq!(
            arm.describe_unselected(&index, |p| Some(p)),
            "linux/arm alone (2 entries fit it: name the variant)"
        );
        assert_eq!(select("linux/riscv64"), None);
        // No exact entry, one fits: taken.
        let only_v8 = [index[1].clone(), index[4].clone()];
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(arm64.select(&only_v8, |p| Some(p)), Some(&only_v8[0]));
        // Entries without a platform are never chosen.
        assert_eq!(arm64.select(&[(), ()], |_| None), None);
    }
}
