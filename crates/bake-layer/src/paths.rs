//! Lexical normalisation of image paths and archive entry names.
//!
//! An image path inside this crate is relative, `/`-separated, with no empty,
//! `.` or `..` component and no trailing slash; the root is `""`.

/// Normalises an absolute image destination (`/usr//bin/./x` → `usr/bin/x`).
pub(crate) fn normalise_dest(raw: &str) -> Result<String, &'static str> {
    if !raw.starts_with('/') {
        return Err("must be an absolute path");
    }
    normalise(raw, "'..' would leave /")
}

/// Normalises an archive entry name: a leading `/` or `./` is dropped, and a
/// `..` that would leave the archive's root is refused.
pub(crate) fn normalise_archive(raw: &str) -> Result<String, &'static str> {
    normalise(raw, "'..' would leave the unpack directory")
}

fn normalise(raw: &str, escape: &'static str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(escape);
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// `base` joined with `rel`, both normalised.
pub(crate) fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_owned(),
        (_, true) => base.to_owned(),
        _ => format!("{base}/{rel}"),
    }
}

/// The proper ancestors of a normalised path, nearest first (`a/b/c` → `a/b`, `a`).
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('/')?;
        rest = parent;
        Some(parent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(normalise_dest("/usr//bin/./x/").unwrap(), "usr/bin/x");
        assert_eq!(normalise_dest("/").unwrap(), "");
        assert_eq!(normalise_dest("/a/../b").unwrap(), "b");
        assert!(normalise_dest("/../etc").is_err());
        assert!(normalise_dest("relative").is_err());
        assert!(normalise_dest("/a\0b").is_err());
    }

    #[test]
    fn archive_names() {
        assert_eq!(normalise_archive("./usr/bin/").unwrap(), "usr/bin");
        assert_eq!(normalise_archive("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(normalise_archive("./").unwrap(), "");
        assert!(normalise_archive("../x").is_err());
        assert!(normalise_archive("a/../../x").is_err());
    }

    #[test]
    fn ancestors_nearest_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("a", "x/y"), "a/x/y");
    }
}
