//! Checks for the values inside a recipe: modes, owners, ports, platforms,
//! image names, tags, base references and paths.
//!
//! These functions know nothing of TOML or positions: they take the (already
//! interpolated) value and return a [`Problem`], which the caller places.

use crate::recipe::{BaseRef, CopyMtime, Owner, Platform};
use crate::{Pos, RecipeError};

/// What is wrong with a value, before it is given a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    AbsoluteSource(String),
    SourceEscapes(String),
    RelativeDestination(String),
    DestinationEscapes(String),
}

impl Problem {
    pub(crate) fn at(self, pos: Pos) -> RecipeError {
        match self {
            Problem::Invalid { what, value, reason } => RecipeError::Invalid {
                pos,
                what,
                value,
                reason,
            },
            Problem::AbsoluteSource(path) => RecipeError::AbsoluteSource { pos, path },
            Problem::SourceEscapes(path) => RecipeError::SourceEscapes { pos, path },
            Problem::RelativeDestination(path) => RecipeError::RelativeDestination { pos, path },
            Problem::DestinationEscapes(path) => RecipeError::DestinationEscapes { pos, path },
        }
    }
}

fn invalid(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Problem {
    Problem::Invalid {
        what,
        value: value.into(),
        reason: reason.into(),
    }
}

pub(crate) const MAX_MODE: u32 = 0o7777;

/// A mode written as a TOML integer. `radix` is the radix it was written in:
/// a decimal mode other than 0 is refused, because `mode = 755` almost
/// always means 0o755 and would silently give 0o1363.
pub(crate) fn mode_from_integer(text: &str, radix: u32) -> Result<u32, Problem> {
    let shown = match radix {
        2 => format!("0b{text}"),
        8 => format!("0o{text}"),
        16 => format!("0x{text}"),
        _ => text.to_owned(),
    };
    let value = i64::from_str_radix(text, radix).ok();
    if radix == 10 && value != Some(0) {
        return Err(invalid(
            "mode",
            shown,
            "decimal modes are refused: write it in octal, such as `0o755` or \"0755\"",
        ));
    }
    match value.and_then(|v| u32::try_from(v).ok()) {
        Some(mode) if mode <= MAX_MODE => Ok(mode),
        _ => Err(invalid("mode", shown, "must be between 0 and 0o7777")),
    }
}

/// A mode written as a string of octal digits, such as `"0755"` or `"0o755"`.
pub(crate) fn mode_from_str(s: &str) -> Result<u32, Problem> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(invalid("mode", s, "expected octal digits, such as \"0755\""));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= MAX_MODE => Ok(mode),
        _ => Err(invalid("mode", s, "must be between 0 and 0o7777")),
    }
}

fn decimal_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `"UID:GID"` or `"UID"` (then the gid is the uid), both decimal.
/// A copy step's `mtime`: `"epoch"`, `"source"` or `"source-unclamped"`.
pub(crate) fn copy_mtime(s: &str) -> Result<CopyMtime, Problem> {
    match s {
        "epoch" => Ok(CopyMtime::Epoch),
        "source" => Ok(CopyMtime::Source),
        "source-unclamped" => Ok(CopyMtime::SourceUnclamped),
        _ => Err(invalid(
            "mtime",
            s,
            "expected \"epoch\" (the default), \"source\" or \"source-unclamped\"",
        )),
    }
}

/// A `capabilities` value: the textual form of `cap_from_text(3)`
/// (`"cap_net_raw+ep"`), see [`bake_caps`].
pub(crate) fn capabilities(s: &str) -> Result<bake_caps::FileCaps, Problem> {
    bake_caps::FileCaps::parse(s).map_err(|e| invalid("capabilities", s, e.to_string()))
}

pub(crate) fn owner(s: &str) -> Result<Owner, Problem> {
    let parsed = match s.split_once(':') {
        Some((uid, gid)) => decimal_u32(uid).zip(decimal_u32(gid)),
        None => decimal_u32(s).map(|uid| (uid, uid)),
    };
    parsed
        .map(|(uid, gid)| Owner { uid, gid })
        .ok_or_else(|| invalid("owner", s, "expected \"UID:GID\" or \"UID\" with numeric ids"))
}

const PORT_REASON: &str = "expected \"PORT\" or \"PORT/PROTO\" with PORT 1-65535 and PROTO tcp, udp or sctp";

/// An exposed port: `"8080"`, `"8080/tcp"`, `"53/udp"`, `"9/sctp"`;
/// normalised to `PORT/PROTO`.
pub(crate) fn port_from_str(s: &str) -> Result<String, Problem> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let port = decimal_u32(port).filter(|p| (1..=65535).contains(p));
    match (port, proto) {
        (Some(port), "tcp" | "udp" | "sctp") => Ok(format!("{port}/{proto}")),
        _ => Err(invalid("port", s, PORT_REASON)),
    }
}

/// An exposed port written as a TOML integer: that port over tcp.
pub(crate) fn port_from_integer(port: i64) -> Result<String, Problem> {
    if (1..=65535).contains(&port) {
        Ok(format!("{port}/tcp"))
    } else {
        Err(invalid("port", port.to_string(), PORT_REASON))
    }
}

/// `os/arch` or `os/arch/variant`: `bake_oci::Platform`'s syntax (each
/// part `[a-z0-9_.]+`), the one the CLI and image indexes use too.
pub(crate) fn platform(s: &str) -> Result<Platform, Problem> {
    match s.parse::<Platform>() {
        Ok(p) => Ok(p),
        Err(_) => Err(invalid(
            "platform",
            s,
            "expected \"OS/ARCH\" or \"OS/ARCH/VARIANT\" in lower case, such as \"linux/amd64\"",
        )),
    }
}

/// One path component of a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn name_component_ok(c: &str) -> bool {
    #[derive(PartialEq)]
    enum Last {
        Start,
        Alnum,
        Dot,
        Underscore,
        TwoUnderscores,
        Dash,
    }
    let mut last = Last::Start;
    for b in c.bytes() {
        last = match (b, last) {
            (b'a'..=b'z' | b'0'..=b'9', _) => Last::Alnum,
            (b'.', Last::Alnum) => Last::Dot,
            (b'_', Last::Alnum) => Last::Underscore,
            (b'_', Last::Underscore) => Last::TwoUnderscores,
            (b'-', Last::Alnum | Last::Dash) => Last::Dash,
            _ => return false,
        };
    }
    last == Last::Alnum
}

/// A sha256 digest written as 64 hex digits, optionally after `sha256:`.
/// Upper-case digits are accepted and stored in lower case.
pub(crate) fn sha256(s: &str) -> Result<bake_digest::Digest, Problem> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
    bake_digest::Digest::from_hex(&hex).map_err(|_| {
        invalid(
            "sha256",
            s,
            "expected 64 hex digits, optionally prefixed by `sha256:`",
        )
    })
}

/// A duration: whole numbers with units `h`, `m` and `s` in that order, such
/// as `90s`, `5m` or `1h30m`. `None` if it does not parse or overflows.
pub(crate) fn duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s;
    let mut last_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let mut chars = after.chars();
        let (rank, factor) = match chars.next()? {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return None,
        };
        if rank <= last_unit {
            return None;
        }
        last_unit = rank;
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = chars.as_str();
    }
    Some(total)
}

/// A `run` step's user: `UID[:GID]` in decimal, or `NAME[:GROUP]` with
/// names of `[A-Za-z0-9_.-]` not starting with `-` (mixed forms allowed).
pub(crate) fn run_user(s: &str) -> Result<String, Problem> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 256
            && !p.starts_with('-')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let ok = match s.split_once(':') {
        Some((user, group)) => part_ok(user) && part_ok(group),
        None => part_ok(s),
    };
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("user", s, "expected \"UID[:GID]\" or \"NAME[:GROUP]\""))
    }
}

/// A repository name as in the OCI distribution spec.
pub(crate) fn image_name(s: &str) -> Result<String, Problem> {
    if s.split('/').all(name_component_ok) {
        Ok(s.to_owned())
    } else {
        Err(invalid(
            "image name",
            s,
            "expected lower-case [a-z0-9] components separated by `.`, `_`, `__`, `-` or `/`",
        ))
    }
}

/// The bytes `s` takes as a string in canonical JSON, quotes included
/// (`"`, `\\` and `\n`-style escapes take 2, other control characters 6).
pub(crate) fn json_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn tag_ok(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = s.bytes();
    s.len() <= 128 && bytes.next().is_some_and(word) && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

const TAG_REASON: &str = "expected up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`";

pub(crate) fn tag(s: &str) -> Result<String, Problem> {
    if tag_ok(s) {
        Ok(s.to_owned())
    } else {
        Err(invalid("tag", s, TAG_REASON))
    }
}

fn check_path_text(s: &str) -> Result<(), Problem> {
    if s.is_empty() {
        Err(invalid("path", s, "must not be empty"))
    } else if s.contains('\0') {
        Err(invalid("path", s, "contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// A source path inside the build context, normalised: no `.` or empty
/// components, `..` resolved, `.` for the context itself.
pub(crate) fn source_path(s: &str) -> Result<String, Problem> {
    check_path_text(s)?;
    if s.starts_with('/') {
        return Err(Problem::AbsoluteSource(s.to_owned()));
    }
    let path = bake_path::relative(s).map_err(|bake_path::Escapes| Problem::SourceEscapes(s.to_owned()))?;
    Ok(if path.is_empty() { ".".to_owned() } else { path })
}

/// An absolute image path, normalised: no `.` or empty components, `..`
/// resolved, no trailing `/` except for `/` itself.
pub(crate) fn destination_path(s: &str) -> Result<String, Problem> {
    check_path_text(s)?;
    if !s.starts_with('/') {
        return Err(Problem::RelativeDestination(s.to_owned()));
    }
    bake_path::absolute(s).map_err(|bake_path::Escapes| Problem::DestinationEscapes(s.to_owned()))
}

/// A destination that names an entry to create, so `/` itself will not do.
pub(crate) fn entry_path(s: &str) -> Result<String, Problem> {
    let path = destination_path(s)?;
    if path == "/" {
        Err(invalid("path", s, "`/` cannot be replaced"))
    } else {
        Ok(path)
    }
}

/// The `base` string: `scratch`, `oci:PATH[:TAG|@DIGEST]`,
/// `docker-archive:PATH`, or a registry reference.
pub(crate) fn base(s: &str) -> Result<BaseRef, Problem> {
    if s == "scratch" {
        return Ok(BaseRef::Scratch);
    }
    if let Some(rest) = s.strip_prefix("oci:") {
        let (path, tag, digest) = if let Some((path, digest)) = rest.rsplit_once('@') {
            let digest = digest.parse().map_err(|_| {
                invalid(
                    "base",
                    s,
                    "expected a digest `sha256:` and 64 lower-case hex digits after `@`",
                )
            })?;
            (path, None, Some(digest))
        } else {
            match rest.rsplit_once(':') {
                Some((path, tag)) if !tag.contains('/') => {
                    if !tag_ok(tag) {
                        return Err(invalid("base", s, format!("invalid tag: {TAG_REASON}")));
                    }
                    (path, Some(tag.to_owned()), None)
                }
                _ => (rest, None, None),
            }
        };
        if path.is_empty() {
            return Err(invalid("base", s, "missing the layout path after `oci:`"));
        }
        return Ok(BaseRef::OciLayout {
            path: source_path(path)?,
            tag,
            digest,
        });
    }
    if let Some(path) = s.strip_prefix("docker-archive:") {
        if path.is_empty() {
            return Err(invalid(
                "base",
                s,
                "missing the archive path after `docker-archive:`",
            ));
        }
        return Ok(BaseRef::DockerArchive {
            path: source_path(path)?,
        });
    }
    if s.is_empty() {
        return Err(invalid("base", s, "must not be empty"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "base",
            s,
            "a registry reference cannot contain whitespace",
        ));
    }
    Ok(BaseRef::Registry {
        reference: s.to_owned(),
    })
}

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn variable_name_ok(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod run_value_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("90s"), Some(90));
        assert_eq!(duration("5m"), Some(300));
        assert_eq!(duration("1h30m"), Some(5400));
        assert_eq!(duration("1h2m3s"), Some(3723));
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1m1h",
            "1m1m",
            "-5s",
            "1.5m",
            "5m ",
            "99999999999999999999h",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn users_and_digests() {
        for good in ["0", "1000:1000", "nobody", "www-data:www-data", "app:0"] {
            assert_eq!(run_user(good), Ok(good.to_owned()));
        }
        for bad in ["", ":", "a:", "-a", "a b", "a:b:c", "ü"] {
            assert!(run_user(bad).is_err(), "{bad:?}");
        }
        let hex = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744";
        assert_eq!(sha256(hex).unwrap().hex(), hex);
        assert_eq!(
            sha256(&format!("sha256:{}", hex.to_uppercase())).unwrap().hex(),
            hex
        );
        assert!(sha256("sha256:abc").is_err());
        assert!(sha256(&format!("md5:{hex}")).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_from_integer("755", 8), Ok(0o755));
        assert_eq!(mode_from_integer("7777", 8), Ok(0o7777));
        assert_eq!(mode_from_integer("0", 10), Ok(0));
        assert_eq!(mode_from_integer("111101101", 2), Ok(0o755));
        assert!(mode_from_integer("10000", 8).is_err());
        assert!(mode_from_integer("755", 10).is_err());
        assert!(mode_from_integer("-1", 10).is_err());
        assert!(mode_from_integer("99999999999999999999999", 8).is_err());
        assert_eq!(mode_from_str("0755"), Ok(0o755));
        assert_eq!(mode_from_str("755"), Ok(0o755));
        assert_eq!(mode_from_str("0o4755"), Ok(0o4755));
        assert!(mode_from_str("").is_err());
        assert!(mode_from_str("0o").is_err());
        assert!(mode_from_str("0788").is_err());
        assert!(mode_from_str("17777").is_err());
        assert!(mode_from_str("+755").is_err());
        assert!(mode_from_str("077777777777777777777777").is_err());
    }

    #[test]
    fn owners() {
        assert_eq!(owner("0:0"), Ok(Owner { uid: 0, gid: 0 }));
        assert_eq!(owner("1000"), Ok(Owner { uid: 1000, gid: 1000 }));
        assert_eq!(owner("1000:50"), Ok(Owner { uid: 1000, gid: 50 }));
        assert_eq!(
            owner("4294967295:0"),
            Ok(Owner {
                uid: u32::MAX,
                gid: 0
            })
        );
        for bad in [
            "",
            ":",
            "1:",
            ":1",
            "a",
            "root:root",
            "+1",
            "1:2:3",
            "4294967296",
            " 1",
        ] {
            assert!(owner(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port_from_str("8080").as_deref(), Ok("8080/tcp"));
        assert_eq!(port_from_str("53/udp").as_deref(), Ok("53/udp"));
        assert_eq!(port_from_str("9/sctp").as_deref(), Ok("9/sctp"));
        assert_eq!(port_from_str("065535/tcp").as_deref(), Ok("65535/tcp"));
        for bad in [
            "", "0", "65536", "80/TCP", "80/", "/tcp", "80/tcp/x", "http", "-1",
        ] {
            assert!(port_from_str(bad).is_err(), "{bad:?}");
        }
        assert_eq!(port_from_integer(443).as_deref(), Ok("443/tcp"));
        assert!(port_from_integer(0).is_err());
        assert!(port_from_integer(70000).is_err());
    }

    #[test]
    fn platforms() {
        assert_eq!(
            platform("linux/amd64").map(|p| p.to_string()).as_deref(),
            Ok("linux/amd64")
        );
        let arm = platform("linux/arm64/v8");
        assert_eq!(
            arm,
            Ok(Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: Some("v8".into())
            })
        );
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "Linux/amd64",
            "linux/amd64/v8/x",
            "linux/amd 64",
        ] {
            assert!(platform(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_names() {
        for good in [
            "hello",
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "library/hello",
            "x0/y-1.z__2",
        ] {
            assert!(image_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "Hello", "a..b", "a___b", "-a", "a-", "a/", "/a", "a//b", "a._b", "a-.b", "a b", "a:1",
        ] {
            assert!(image_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        for good in ["latest", "v1.0", "_x", "A-b.c_D", "a".repeat(128).as_str()] {
            assert!(tag_ok(good), "{good:?}");
        }
        for bad in ["", ".x", "-x", "a b", "a/b", "a:b", "a".repeat(129).as_str()] {
            assert!(!tag_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn source_paths() {
        assert_eq!(source_path("bin/hello").as_deref(), Ok("bin/hello"));
        assert_eq!(source_path("./bin//hello/").as_deref(), Ok("bin/hello"));
        assert_eq!(source_path(".").as_deref(), Ok("."));
        assert_eq!(source_path("a/..").as_deref(), Ok("."));
        assert_eq!(source_path("a/../b").as_deref(), Ok("b"));
        assert_eq!(source_path("../x"), Err(Problem::SourceEscapes("../x".into())));
        assert_eq!(
            source_path("a/../../x"),
            Err(Problem::SourceEscapes("a/../../x".into()))
        );
        assert_eq!(source_path("/etc"), Err(Problem::AbsoluteSource("/etc".into())));
        assert!(source_path("").is_err());
        assert!(source_path("a\0b").is_err());
    }

    #[test]
    fn destination_paths() {
        assert_eq!(destination_path("/").as_deref(), Ok("/"));
        assert_eq!(destination_path("//usr/./bin//").as_deref(), Ok("/usr/bin"));
        assert_eq!(destination_path("/usr/../etc").as_deref(), Ok("/etc"));
        assert_eq!(destination_path("/usr/..").as_deref(), Ok("/"));
        assert_eq!(
            destination_path("/.."),
            Err(Problem::DestinationEscapes("/..".into()))
        );
        assert_eq!(
            destination_path("usr"),
            Err(Problem::RelativeDestination("usr".into()))
        );
        assert!(entry_path("/").is_err());
        assert!(entry_path("/a/..").is_err());
        assert_eq!(entry_path("/a/b").as_deref(), Ok("/a/b"));
    }

    #[test]
    fn bases() {
        let d = "sha256:".to_owned() + &"a".repeat(64);
        assert_eq!(base("scratch"), Ok(BaseRef::Scratch));
        assert_eq!(
            base("oci:img"),
            Ok(BaseRef::OciLayout {
                path: "img".into(),
                tag: None,
                digest: None
            })
        );
        assert_eq!(
            base("oci:./a/img:v1"),
            Ok(BaseRef::OciLayout {
                path: "a/img".into(),
                tag: Some("v1".into()),
                digest: None
            })
        );
        assert_eq!(
            base(&format!("oci:img@{d}")),
            Ok(BaseRef::OciLayout {
                path: "img".into(),
                tag: None,
                digest: d.parse().ok()
            })
        );
        assert_eq!(
            base("docker-archive:x.tar"),
            Ok(BaseRef::DockerArchive { path: "x.tar".into() })
        );
        assert_eq!(
            base("docker.io/library/debian:12"),
            Ok(BaseRef::Registry {
                reference: "docker.io/library/debian:12".into()
            })
        );
        for bad in [
            "",
            "oci:",
            "oci::v1",
            "oci:img:",
            "oci:img:-x",
            "oci:img@sha256:zz",
            "oci:/abs",
            "oci:../x",
            "docker-archive:",
            "a b",
        ] {
            assert!(base(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn variable_names() {
        for good in ["a", "_", "version", "A_1"] {
            assert!(variable_name_ok(good), "{good:?}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a b", "é"] {
            assert!(!variable_name_ok(bad), "{bad:?}");
        }
    }
}
