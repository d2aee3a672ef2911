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
    bake_path::relative(raw).map_err(|bake_path::Escapes| escape)
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

/// How many symlinks [`follow_links`] follows for one path before it gives
/// up (Linux's `MAXSYMLINKS`).
pub(crate) const MAX_LINK_HOPS: usize = 40;

/// Resolves the normalised image path `path` through `links` (normalised
/// path → symlink target, the symlinks of the layers below), the way the
/// kernel would inside the image's root: every ancestor that is a symlink in
/// `links` (and for which `own` is false, i.e. not replaced by this layer)
/// is replaced by its target, an absolute target starting again at the
/// root and `..` stopping there; the last component is followed only when
/// `follow_last` (a directory over a symlink to a directory keeps the
/// symlink, as dpkg and `mkdir -p` do). Fails after [`MAX_LINK_HOPS`] links.
pub(crate) fn follow_links(
    links: &std::collections::BTreeMap<String, String>,
    path: &str,
    follow_last: bool,
    own: impl Fn(&str) -> bool,
) -> Result<String, String> {
    if links.is_empty() {
        return Ok(path.to_owned());
    }
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let here = if done.is_empty() {
            part.clone()
        } else {
            format!("{}/{part}", done.join("/"))
        };
        let target = (follow_last || !todo.is_empty())
            .then(|| links.get(&here))
            .flatten()
            .filter(|_| !own(&here));
        let Some(target) = target else {
            done.push(part);
            continue;
        };
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(format!(
                "more than {MAX_LINK_HOPS} symlinks of the layers below on the way (a loop at /{here}?)"
            ));
        }
        if target.starts_with('/') {
            done.clear();
        }
        for c in target.split('/').rev() {
            todo.push_front(c.to_owned());
        }
    }
    Ok(done.join("/"))
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

    fn links(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn paths_follow_the_symlinks_below() {
        let usrmerge = links(&[
            ("bin", "usr/bin"),
            ("lib", "/usr/lib"),
            ("usr/lib64", "lib"),
            ("etc/x", "../../../y"),
        ]);
        let no = |_: &str| false;
        let f = |p: &str, last: bool| follow_links(&usrmerge, p, last, no).unwrap();
        assert_eq!(f("bin/busybox", false), "usr/bin/busybox");
        assert_eq!(f("lib/x/y.so", false), "usr/lib/x/y.so");
        assert_eq!(f("usr/lib64/ld.so", false), "usr/lib/ld.so");
        // The last component: a file over the link replaces it; a directory
        // over it goes through it.
        assert_eq!(f("bin", false), "bin");
        assert_eq!(f("bin", true), "usr/bin");
        // `..` in a target stops at the root.
        assert_eq!(f("etc/x/z", false), "y/z");
        assert_eq!(f("usr/local/bin/x", false), "usr/local/bin/x");
        assert_eq!(f("", true), "");
        // A link this layer replaced is not followed.
        assert_eq!(
            follow_links(&usrmerge, "bin/x", false, |p| p == "bin").unwrap(),
            "bin/x"
        );
        // Loops end with an error.
        let lp = links(&[("a", "b"), ("b", "a")]);
        let e = follow_links(&lp, "a/x", false, no).unwrap_err();
        assert!(e.contains("more than 40 symlinks"), "{e}");
        assert!(follow_links(&links(&[("a", "a/b")]), "a/x", false, no).is_err());
        // No links: the path as it is.
        assert_eq!(follow_links(&links(&[]), "bin/x", true, no).unwrap(), "bin/x");
    }
}
