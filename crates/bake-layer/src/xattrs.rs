//! Extended attributes on disk (a `run` step's root): the capabilities
//! read when its changes become entries, set when a layer is applied to it.

use std::io;
use std::path::Path;

use bake_caps::{CapsError, FileCaps, XATTR};

/// The host's SELinux label: set by the host's policy on every file the
/// sandbox creates, never the image's content, so never reported.
const SELINUX: &str = "security.selinux";

/// A node's capabilities (or why they are malformed) and its other
/// attributes' names.
pub(crate) type OnDisk = (Option<Result<FileCaps, CapsError>>, Vec<String>);

/// What the node at `path` (never followed) carries: its capabilities, if
/// it is a `regular` file that has them, and the names of every other
/// attribute (a capability on a non-regular file included), sorted. A file
/// system without extended attributes has none.
pub(crate) fn read(path: &Path, regular: bool) -> io::Result<OnDisk> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok((None, Vec::new())),
        Err(e) => return Err(e),
    };
    let mut caps = None;
    let mut others = Vec::new();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        if name == XATTR && regular {
            // Gone since it was listed: none.
            if let Some(value) = xattr::get(path, XATTR)? {
                caps = Some(FileCaps::from_xattr(&value));
            }
        } else if name != SELINUX {
            others.push(name);
        }
    }
    others.sort();
    Ok((caps, others))
}

/// Sets `caps` on the regular file at `path` (never followed). Needs
/// `CAP_SETFCAP` (root).
pub(crate) fn set_caps(path: &Path, caps: &FileCaps) -> io::Result<()> {
    xattr::set(path, XATTR, &caps.to_xattr())
}

fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(95) // EOPNOTSUPP
}
