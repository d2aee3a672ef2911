//! What a root filesystem looks like (metadata only), and the difference
//! between two looks: the changes a run step made.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bake_layer::Change;

use crate::RunError;

/// The kind of a filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
    /// With its target.
    Symlink(Vec<u8>),
    /// Sockets, fifos, devices: kept so a change of kind is seen.
    Other,
}

/// The metadata of one entry that tells whether it changed: content changes
/// move size, mtime and ctime; metadata changes move ctime; a replaced
/// entry has another inode. ctime cannot be set by a process, so a command
/// that restores an mtime is still seen. A regular file's capabilities
/// (`security.capability`, which the layer keeps) are compared as they are,
/// not only through the ctime that setting them moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub ino: u64,
    /// Nanoseconds since 1970.
    pub mtime: i128,
    pub ctime: i128,
    /// The raw `security.capability` value of a regular file.
    pub caps: Option<Vec<u8>>,
}

impl Node {
    fn from_metadata(m: &std::fs::Metadata, kind: NodeKind) -> Node {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Node {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            ino: m.ino(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
            caps: None,
        }
    }

    /// Whether `self` (after) differs from `before` in a way the layer must
    /// record. A directory whose only change is its times (children came
    /// and went) is not itself a change: its children are.
    fn changed_from(&self, before: &Node) -> bool {
        match (&self.kind, &before.kind) {
            (NodeKind::Dir, NodeKind::Dir) => {
                (self.mode, self.uid, self.gid, self.ino) != (before.mode, before.uid, before.gid, before.ino)
            }
            _ => self != before,
        }
    }
}

/// Every entry below a root, by relative path (`etc/passwd`), the root
/// itself excluded. Symlinks are never followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<String, Node>,
}

impl Snapshot {
    /// Walks `root`. A name that is not UTF-8 is an error: no image can
    /// hold it.
    pub fn take(root: &Path) -> Result<Snapshot, RunError> {
        let mut snap = Snapshot::default();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let items = fs_err::read_dir(&dir).map_err(RunError::io(&dir))?;
            for item in items {
                let item = item.map_err(RunError::io(&dir))?;
                let host = item.path();
                let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                    return Err(RunError::NotUtf8 { path: host });
                };
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let m = fs_err::symlink_metadata(&host).map_err(RunError::io(&host))?;
                let ft = m.file_type();
                let kind = if ft.is_dir() {
                    NodeKind::Dir
                } else if ft.is_file() {
                    NodeKind::File
                } else if ft.is_symlink() {
                    let target = fs_err::read_link(&host).map_err(RunError::io(&host))?;
                    NodeKind::Symlink(target.into_os_string().into_encoded_bytes())
                } else {
                    NodeKind::Other
                };
                let caps = match kind {
                    // lgetxattr: never follows a link (only files get here).
                    NodeKind::File => match xattr::get(&host, "security.capability") {
                        Ok(caps) => caps,
                        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => None,
                        Err(e) => return Err(RunError::io(&host)(e)),
                    },
                    _ => None,
                };
                if kind == NodeKind::Dir {
                    stack.push((host.clone(), path.clone()));
                }
                let node = Node {
                    caps,
                    ..Node::from_metadata(&m, kind)
                };
                snap.entries.insert(path, node);
            }
        }
        Ok(snap)
    }
}

/// What the diff leaves out: what the sandbox itself put in the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Mount points of the sandbox (`proc`, `dev`, `etc/resolv.conf`…):
    /// nothing below them is recorded, and they themselves only if they
    /// existed before (else the runtime created them as mount points).
    pub mounts: Vec<String>,
}

impl Exclusions {
    fn below_mount(&self, path: &str) -> Option<&str> {
        self.mounts
            .iter()
            .find(|m| path == m.as_str() || path.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with('/')))
            .map(String::as_str)
    }
}

/// The changes from `before` to `after`, sorted by path: `Put` for every
/// added or changed entry, `Whiteout` for every deleted entry whose parent
/// is still a directory (a deleted or replaced directory's children need
/// none). Paths are absolute (`/etc/passwd`).
pub fn diff(before: &Snapshot, after: &Snapshot, exclusions: &Exclusions) -> Vec<Change> {
    let excluded = |path: &str| match exclusions.below_mount(path) {
        None => false,
        // The mount point itself is the image's if the image had it.
        Some(mount) if mount == path => !before.entries.contains_key(path),
        Some(_) => true,
    };
    let mut changes = Vec::new();
    for (path, node) in &after.entries {
        if excluded(path) {
            continue;
        }
        let changed = match before.entries.get(path) {
            None => true,
            Some(old) => node.changed_from(old),
        };
        if changed {
            changes.push(Change::Put(format!("/{path}")));
        }
    }
    for path in before.entries.keys() {
        if after.entries.contains_key(path) || excluded(path) {
            continue;
        }
        let parent_is_dir = match path.rsplit_once('/') {
            None => true,
            Some((parent, _)) => after.entries.get(parent).is_some_and(|n| n.kind == NodeKind::Dir),
        };
        if parent_is_dir {
            changes.push(Change::Whiteout(format!("/{path}")));
        }
    }
    changes.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    changes
}

fn path_of(c: &Change) -> &str {
    match c {
        Change::Put(p) | Change::Whiteout(p) => p,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, ino: u64, ctime: i128) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            ino,
            mtime: 5,
            ctime,
            caps: None,
        }
    }

    fn snap(items: &[(&str, Node)]) -> Snapshot {
        Snapshot {
            entries: items.iter().map(|(p, n)| ((*p).to_owned(), n.clone())).collect(),
        }
    }

    fn dir(ino: u64, ctime: i128) -> Node {
        Node {
            mode: 0o755,
            ..node(NodeKind::Dir, ino, ctime)
        }
    }

    fn file(ino: u64, ctime: i128) -> Node {
        node(NodeKind::File, ino, ctime)
    }

    fn put(p: &str) -> Change {
        Change::Put(p.to_owned())
    }

    fn wh(p: &str) -> Change {
        Change::Whiteout(p.to_owned())
    }

    #[test]
    fn adds_changes_and_deletions() {
        let before = snap(&[
            ("etc", dir(1, 1)),
            ("etc/same", file(2, 1)),
            ("etc/edited", file(3, 1)),
            ("etc/chmod", file(4, 1)),
            ("etc/deleted", file(5, 1)),
            ("gone", dir(6, 1)),
            ("gone/a", file(7, 1)),
            ("gone/b", dir(8, 1)),
            ("gone/b/c", file(9, 1)),
            ("link", node(NodeKind::Symlink(b"a".to_vec()), 10, 1)),
        ]);
        let after = snap(&[
            // Children changed: the directory's times moved, nothing else.
            ("etc", dir(1, 9)),
            ("etc/same", file(2, 1)),
            (
                "etc/edited",
                Node {
                    size: 2,
                    ..file(3, 9)
                },
            ),
            (
                "etc/chmod",
                Node {
                    mode: 0o600,
                    ..file(4, 9)
                },
            ),
            ("etc/new", file(11, 9)),
            ("link", node(NodeKind::Symlink(b"b".to_vec()), 12, 9)),
        ]);
        assert_eq!(
            diff(&before, &after, &Exclusions::default()),
            [
                put("/etc/chmod"),
                wh("/etc/deleted"),
                put("/etc/edited"),
                put("/etc/new"),
                wh("/gone"),
                put("/link"),
            ]
        );
    }

    #[test]
    fn a_capability_change_is_a_change_even_at_the_same_ctime() {
        let before = snap(&[("f", file(1, 1)), ("g", file(2, 1))]);
        let after = snap(&[
            (
                "f",
                Node {
                    caps: Some(vec![1, 0, 0, 2]),
                    ..file(1, 1)
                },
            ),
            ("g", file(2, 1)),
        ]);
        assert_eq!(diff(&before, &after, &Exclusions::default()), [put("/f")]);
        assert_eq!(diff(&after, &before, &Exclusions::default()), [put("/f")]);
    }

    #[test]
    fn snapshots_read_capabilities_of_files() {
        let t = tempfile::tempdir().unwrap();
        fs_err::write(t.path().join("f"), "x").unwrap();
        fs_err::write(t.path().join("g"), "y").unwrap();
        // The unprivileged way to check it is read: a user xattr is not
        // the capability, so `g` stays without.
        xattr::set(t.path().join("g"), "user.other", b"1").unwrap();
        let s = Snapshot::take(t.path()).unwrap();
        assert_eq!(s.entries["f"].caps, None);
        assert_eq!(s.entries["g"].caps, None);
    }

    #[test]
    #[ignore = "needs root (CAP_SETFCAP): cargo xtask test"]
    fn snapshots_see_capabilities_set_on_files() {
        let t = tempfile::tempdir().unwrap();
        fs_err::write(t.path().join("f"), "x").unwrap();
        let before = Snapshot::take(t.path()).unwrap();
        let value = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        xattr::set(t.path().join("f"), "security.capability", &value).unwrap();
        let after = Snapshot::take(t.path()).unwrap();
        assert_eq!(after.entries["f"].caps.as_deref(), Some(&value[..]));
        assert_eq!(diff(&before, &after, &Exclusions::default()), [put("/f")]);
    }

    #[test]
    fn touched_files_and_directory_metadata_are_changes() {
        let before = snap(&[("d", dir(1, 1)), ("f", file(2, 1))]);
        let after = snap(&[("d", Node { uid: 5, ..dir(1, 2) }), ("f", file(2, 2))]);
        assert_eq!(
            diff(&before, &after, &Exclusions::default()),
            [put("/d"), put("/f")]
        );
    }

    #[test]
    fn replaced_entries() {
        let before = snap(&[
            ("a", dir(1, 1)),
            ("a/x", file(2, 1)),
            ("b", file(3, 1)),
            ("c", dir(4, 1)),
            ("c/old", file(5, 1)),
            ("c/kept", file(6, 1)),
        ]);
        let after = snap(&[
            // A directory became a file: its children need no whiteouts.
            ("a", file(7, 9)),
            // A file became a directory.
            ("b", dir(8, 9)),
            ("b/y", file(9, 9)),
            // A directory deleted and made again: what it lost is whited out.
            ("c", dir(10, 9)),
            ("c/kept", file(11, 9)),
        ]);
        assert_eq!(
            diff(&before, &after, &Exclusions::default()),
            [
                put("/a"),
                put("/b"),
                put("/b/y"),
                put("/c"),
                put("/c/kept"),
                wh("/c/old")
            ]
        );
    }

    #[test]
    fn what_the_sandbox_mounted_is_left_out() {
        let ex = Exclusions {
            mounts: vec![
                "proc".into(),
                "dev".into(),
                "tmp".into(),
                "etc/resolv.conf".into(),
            ],
        };
        let before = snap(&[
            ("dev", dir(1, 1)),
            ("dev/keep", file(2, 1)),
            ("etc", dir(3, 1)),
            ("procfile", file(4, 1)),
        ]);
        let after = snap(&[
            // Existed before: kept, and what lies below a mount is never recorded.
            ("dev", dir(1, 1)),
            ("etc", dir(3, 9)),
            // Created by the runtime as mount points.
            ("proc", dir(5, 9)),
            ("tmp", dir(6, 9)),
            ("tmp/x", file(7, 9)),
            ("etc/resolv.conf", file(8, 9)),
            // Not a mount, only a similar name.
            ("procfile", file(4, 9)),
        ]);
        assert_eq!(diff(&before, &after, &ex), [put("/procfile")]);
    }

    #[test]
    fn snapshots_see_kinds_and_names() {
        let t = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(t.path().join("a/b")).unwrap();
        fs_err::write(t.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("b/f", t.path().join("a/l")).unwrap();
        let s = Snapshot::take(t.path()).unwrap();
        let kinds: Vec<(&str, &NodeKind)> = s.entries.iter().map(|(p, n)| (p.as_str(), &n.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a", &NodeKind::Dir),
                ("a/b", &NodeKind::Dir),
                ("a/b/f", &NodeKind::File),
                ("a/l", &NodeKind::Symlink(b"b/f".to_vec()))
            ]
        );
        // Rewriting a file with the same bytes is still a change (ctime).
        let before = s;
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::write(t.path().join("a/b/f"), "x").unwrap();
        let after = Snapshot::take(t.path()).unwrap();
        assert_eq!(diff(&before, &after, &Exclusions::default()), [put("/a/b/f")]);
    }
}
