//! The sandbox's root filesystem: a tmpfs of its own, the same on every
//! machine.
//!
//! A `run` step sees the file system its root lives on: `stat -f /`, `df`,
//! `/proc/self/mountinfo` (the host path and device of the build directory)
//! and, above all, the order in which `readdir` lists a directory — hash
//! order on ext4, something else on btrfs or XFS. A command that writes
//! what it sees (`ls -U`, a tool walking a tree without sorting) made the
//! same recipe give different layers on two machines. So the root the
//! commands run in is always a fresh tmpfs ([`RootFs::mount`]), mounted with
//! fixed options and filled in a fixed order (the layers below, applied
//! entry by entry): its type, its size and inode counts, its readdir order
//! and its inode numbers follow from its content alone, and the sandbox
//! sees it as `/` of a `tmpfs` named `bake`, wherever the build directory
//! is.
//!
//! The price is memory: the root (the base and every layer below the step)
//! is held in RAM (or swap) while the layer is built. `size` is a limit,
//! not a reservation.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::RunError;

/// The mount options, fixed: they show in `/proc/self/mountinfo` and
/// `statfs` inside the sandbox, so nothing of the host may choose them
/// (tmpfs's default size is half the host's memory).
pub const OPTIONS: &str = "size=64g,nr_inodes=16777216,mode=0755";
/// The source name the mount shows (`mountinfo`'s source field).
pub const SOURCE: &str = "bake";

/// A tmpfs mounted on a directory for as long as this lives; unmounted
/// (lazily, so a process still holding a file cannot keep it) when dropped.
#[derive(Debug)]
pub struct RootFs {
    path: PathBuf,
}

impl RootFs {
    /// Mounts a fresh tmpfs on `path`, an empty directory, with
    /// [`OPTIONS`]. Needs `CAP_SYS_ADMIN` (run steps need root anyway).
    #[allow(unsafe_code)]
    pub fn mount(path: &Path) -> Result<RootFs, RunError> {
        let c = |s: &[u8]| CString::new(s).map_err(|e| RunError::io(path)(io::Error::other(e)));
        let target = c(path.as_os_str().as_bytes())?;
        let (source, fstype, options) = (c(SOURCE.as_bytes())?, c(b"tmpfs")?, c(OPTIONS.as_bytes())?);
        // SAFETY: every pointer is to a NUL-terminated string that lives
        // across the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(RunError::Io {
                path: path.to_owned(),
                source: io::Error::new(
                    e.kind(),
                    format!("cannot mount the sandbox's tmpfs root ({OPTIONS}): {e}"),
                ),
            });
        }
        Ok(RootFs {
            path: path.to_owned(),
        })
    }

    /// The directory it is mounted on.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RootFs {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

/// Unmounts whatever is mounted on `path` (lazily), if anything: for roots
/// a killed build left mounted. Errors are ignored (nothing mounted there
/// is the usual case).
#[allow(unsafe_code)]
pub fn unmount(path: &Path) {
    let Ok(target) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: a NUL-terminated string that lives across the call.
    unsafe {
        libc::umount2(target.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root: the mount has the fixed options and type, and is gone when
    /// the guard is dropped. (Skipped, and said so, when not root: the
    /// suite runs as root, where it cannot skip.)
    #[test]
    fn a_root_is_a_tmpfs_with_fixed_options_until_dropped() {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            eprintln!("not root: mounting needs CAP_SYS_ADMIN");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let line = |p: &Path| {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
                .map(str::to_owned)
        };
        {
            let m = RootFs::mount(&root).unwrap();
            assert_eq!(m.path(), root);
            let l = line(&root).expect("mounted");
            assert!(
                l.contains(" - tmpfs bake rw,size=67108864k,nr_inodes=16777216,mode=755"),
                "{l}"
            );
            std::fs::write(root.join("f"), "x").unwrap();
        }
        assert_eq!(line(&root), None);
        assert!(!root.join("f").exists());
        // A root left mounted (a killed build) is unmounted by path.
        let m = RootFs::mount(&root).unwrap();
        std::mem::forget(m);
        unmount(&root);
        assert_eq!(line(&root), None);
        // Not a directory: an error naming the path.
        let err = RootFs::mount(&dir.path().join("missing")).unwrap_err();
        assert!(
            err.to_string().contains("missing") && err.to_string().contains("tmpfs"),
            "{err}"
        );
    }
}
