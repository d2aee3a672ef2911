//! Lexical normalisation of `/`-separated paths, written once.
//!
//! Every path bake takes from outside — a recipe's `copy` source and
//! destination, an archive entry name, a docker archive's member names —
//! is reduced to its components the same way: empty and `.` components are
//! dropped and each `..` removes the component before it. A `..` with
//! nothing before it would climb above where the path starts; that is
//! [`Escapes`], never silently clamped (clamping is what following a
//! symlink inside a root does, and that is not lexical). Nothing here
//! touches a file system, and NUL bytes are the caller's to refuse.
//!
//! ```
//! assert_eq!(bake_path::components("/usr//bin/./x/../y"), Ok(vec!["usr", "bin", "y"]));
//! assert_eq!(bake_path::components("a/../.."), Err(bake_path::Escapes));
//! assert_eq!(bake_path::relative("./a/b/"), Ok("a/b".to_owned()));
//! assert_eq!(bake_path::absolute("/"), Ok("/".to_owned()));
//! ```

/// A `..` that would leave the path's starting point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escapes;

impl std::fmt::Display for Escapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("'..' would leave the root")
    }
}

impl std::error::Error for Escapes {}

/// The components of `raw`: no empty, `.` or `..` component is left. A
/// leading `/` is not kept (the caller knows whether its paths are
/// absolute); the root is the empty list.
pub fn components(raw: &str) -> Result<Vec<&str>, Escapes> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(Escapes)?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts)
}

/// `raw` normalised and relative: its components joined by `/`, `""` for
/// the starting point itself.
pub fn relative(raw: &str) -> Result<String, Escapes> {
    components(raw).map(|c| c.join("/"))
}

/// `raw` normalised and absolute: `/` followed by its components, `/` for
/// the root.
pub fn absolute(raw: &str) -> Result<String, Escapes> {
    components(raw).map(|c| format!("/{}", c.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Component, Path};

    /// An independent reading of the same rule, through std's `Path`
    /// components (which keep `..` and drop `.`): the two must agree.
    fn reference(raw: &str) -> Result<Vec<String>, Escapes> {
        let mut out: Vec<String> = Vec::new();
        for c in Path::new(raw).components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => {
                    out.pop().ok_or(Escapes)?;
                }
                Component::Normal(n) => out.push(n.to_str().unwrap().to_owned()),
                Component::Prefix(_) => unreachable!("no prefixes on unix"),
            }
        }
        Ok(out)
    }

    /// Every string of up to 8 characters over `a`, `b`, `.` and `/`
    /// (87,380 of them): the same answer as the reference, and the result
    /// is a fixed point with no empty, `.` or `..` component.
    #[test]
    fn agrees_with_std_paths_on_every_short_string() {
        let alphabet = ['a', 'b', '.', '/'];
        let mut checked = 0;
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            let got = components(&s).map(|v| v.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
            assert_eq!(got, reference(&s), "{s:?}");
            if let Ok(parts) = &got {
                assert!(
                    parts.iter().all(|p| !p.is_empty() && p != "." && p != ".."),
                    "{s:?}"
                );
                let again = relative(&s).unwrap();
                assert_eq!(relative(&again).unwrap(), again, "{s:?} is not a fixed point");
                assert_eq!(absolute(&s).unwrap(), format!("/{again}"));
            }
            checked += 1;
            if s.len() < 8 {
                for c in alphabet {
                    stack.push(format!("{s}{c}"));
                }
            }
        }
        assert_eq!(checked, (0..=8).map(|n| 4usize.pow(n)).sum::<usize>());
    }

    #[test]
    fn names_with_dots_are_names() {
        assert_eq!(components("a/.../..b/.c"), Ok(vec!["a", "...", "..b", ".c"]));
        assert_eq!(relative(".."), Err(Escapes));
        assert_eq!(relative("/.."), Err(Escapes));
        assert_eq!(relative("a/b/../../c"), Ok("c".to_owned()));
        assert_eq!(relative("."), Ok(String::new()));
    }
}
