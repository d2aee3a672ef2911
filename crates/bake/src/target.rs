//! Where an image lives, as named on the command line: an OCI layout on disk
//! (`oci:PATH[:TAG|@DIGEST]`, or a path to a layout directory) or a registry
//! reference (`REGISTRY/REPO[:TAG|@DIGEST]`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// An image location given by the user.
#[derive(Debug, Clone)]
pub enum Target {
    /// An OCI image layout directory and the tag or digest in it (`None`:
    /// the only image there).
    Layout { dir: PathBuf, which: Option<String> },
    /// A registry reference, as typed.
    Registry(String),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target> {
        if let Some(rest) = s.strip_prefix("oci:") {
            if rest.is_empty() {
                bail!("invalid image {s:?}: expected oci:PATH[:TAG|@DIGEST]");
            }
            return Ok(split_layout(rest));
        }
        // A bare path to a layout directory (possibly with :TAG).
        let t = split_layout(s);
        if let Target::Layout { dir, .. } = &t {
            if dir.join("oci-layout").is_file() {
                return Ok(t);
            }
        }
        if Path::new(s).join("oci-layout").is_file() {
            return Ok(Target::Layout {
                dir: PathBuf::from(s),
                which: None,
            });
        }
        Ok(Target::Registry(s.to_owned()))
    }
}

fn split_layout(rest: &str) -> Target {
    if let Some((dir, digest)) = rest.rsplit_once('@') {
        return Target::Layout {
            dir: PathBuf::from(dir),
            which: Some(digest.to_owned()),
        };
    }
    // A tag follows the last ':' only if that ':' comes after the last '/'.
    match rest.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() => Target::Layout {
            dir: PathBuf::from(dir),
            which: Some(tag.to_owned()),
        },
        _ => Target::Layout {
            dir: PathBuf::from(rest),
            which: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layouts_and_references() {
        match Target::parse("oci:out/hello:latest").unwrap() {
            Target::Layout { dir, which } => {
                assert_eq!(dir, PathBuf::from("out/hello"));
                assert_eq!(which.as_deref(), Some("latest"));
            }
            t => panic!("{t:?}"),
        }
        match Target::parse("oci:out/hello@sha256:abc").unwrap() {
            Target::Layout { dir, which } => {
                assert_eq!(dir, PathBuf::from("out/hello"));
                assert_eq!(which.as_deref(), Some("sha256:abc"));
            }
            t => panic!("{t:?}"),
        }
        match Target::parse("oci:/abs/dir").unwrap() {
            Target::Layout { dir, which } => {
                assert_eq!(dir, PathBuf::from("/abs/dir"));
                assert_eq!(which, None);
            }
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            Target::parse("127.0.0.1:5000/app:v1").unwrap(),
            Target::Registry(_)
        ));
        assert!(Target::parse("oci:").is_err());
    }
}
