//! [`Source::Changes`](crate::Source::Changes): the entries a `run` step
//! changed, read from the root filesystem it ran in.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layer::{Content, Entry, Kind, Layer, io_err};
use crate::paths::{ancestors, normalise_dest};
use crate::tarfmt::Meta;
use crate::{Change, LayerError};

const WHITEOUT_PREFIX: &str = ".wh.";

impl<'a> Layer<'a> {
    pub(crate) fn add_changes(
        &mut self,
        index: usize,
        root: &Path,
        changes: &[Change],
    ) -> Result<(), LayerError> {
        let bad = |path: &str, reason: &str| LayerError::BadChange {
            index,
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let epoch = self.epoch;
        // (dev, ino) → hardlink group, within this source.
        let mut links: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for change in changes {
            let raw = match change {
                Change::Put(p) | Change::Whiteout(p) => p,
            };
            let rel = normalise_dest(raw).map_err(|reason| LayerError::BadImagePath {
                index,
                path: raw.clone(),
                reason,
            })?;
            if rel.is_empty() {
                if matches!(change, Change::Whiteout(_)) {
                    return Err(bad("", "the root cannot be deleted"));
                }
                continue;
            }
            let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
            // In any component: `a/.wh.b/c` would be a directory `.wh.b`
            // in the layer, which unpackers read as deleting `a/b`.
            if rel.split('/').any(|c| c.starts_with(WHITEOUT_PREFIX)) {
                return Err(bad(
                    &rel,
                    "names with a component starting with `.wh.` cannot be stored in an OCI layer (they mean deletions)",
                ));
            }
            self.add_root_dirs(index, root, parent)?;
            let meta_of = |m: &std::fs::Metadata| Meta {
                mode: m.mode() & 0o7777,
                uid: u64::from(m.uid()),
                gid: u64::from(m.gid()),
                mtime: epoch,
                caps: None,
            };
            match change {
                Change::Whiteout(_) => {
                    let path = match parent {
                        "" => format!("{WHITEOUT_PREFIX}{name}"),
                        p => format!("{p}/{WHITEOUT_PREFIX}{name}"),
                    };
                    let entry = Entry {
                        kind: Kind::File {
                            content: Content::Bytes(&[]),
                            size: 0,
                            group: None,
                        },
                        meta: Meta {
                            mode: 0o644,
                            uid: 0,
                            gid: 0,
                            mtime: self.epoch,
                            caps: None,
                        },
                        index,
                    };
                    self.insert(index, path, entry)?;
                }
                Change::Put(_) => {
                    let host = root.join(&rel);
                    let m = fs_err::symlink_metadata(&host).map_err(io_err(index, &host))?;
                    let ft = m.file_type();
                    let meta = meta_of(&m);
                    let kind = if ft.is_dir() {
                        Kind::Dir
                    } else if ft.is_file() {
                        let group = (m.nlink() > 1).then(|| {
                            let next = &mut self.next_group;
                            *links.entry((m.dev(), m.ino())).or_insert_with(|| {
                                *next += 1;
                                *next
                            })
                        });
                        Kind::File {
                            content: Content::Disk(host.clone()),
                            size: m.len(),
                            group,
                        }
                    } else if ft.is_symlink() {
                        let target = fs_err::read_link(&host).map_err(io_err(index, &host))?;
                        let Some(target) = target.to_str().filter(|t| !t.is_empty()) else {
                            return Err(LayerError::NotUtf8 {
                                index,
                                path: host,
                                what: "the symlink target",
                            });
                        };
                        Kind::Symlink {
                            target: target.to_owned(),
                        }
                    } else if ft.is_socket() {
                        // A daemon's leftover socket means nothing in an image.
                        continue;
                    } else {
                        let kind = if ft.is_fifo() {
                            "fifo"
                        } else if ft.is_block_device() {
                            "block device"
                        } else {
                            "character device"
                        };
                        return Err(bad(
                            &rel,
                            &format!("is a {kind}: only regular files, directories and symlinks can be kept"),
                        ));
                    };
                    let mut meta = match kind {
                        Kind::Symlink { .. } => Meta { mode: 0o777, ..meta },
                        _ => meta,
                    };
                    // Capabilities are kept (regular files); the rest is
                    // dropped, and said so.
                    let (caps, others) =
                        crate::xattrs::read(&host, ft.is_file()).map_err(io_err(index, &host))?;
                    meta.caps = caps.transpose().map_err(|e| bad(&rel, &format!("has a {e}")))?;
                    for name in others {
                        self.drop_xattr(&rel, name);
                    }
                    self.insert(index, rel, Entry { kind, meta, index })?;
                }
            }
        }
        Ok(())
    }

    /// Adds `dir` and its ancestors, with their metadata read from `root`,
    /// unless this layer already has them.
    fn add_root_dirs(&mut self, index: usize, root: &Path, dir: &str) -> Result<(), LayerError> {
        if dir.is_empty() {
            return Ok(());
        }
        let mut missing: Vec<&str> = std::iter::once(dir)
            .chain(ancestors(dir))
            .take_while(|d| !self.entries.contains_key(*d))
            .collect();
        missing.reverse();
        for d in missing {
            let host = root.join(d);
            let m = fs_err::symlink_metadata(&host).map_err(io_err(index, &host))?;
            if !m.is_dir() {
                return Err(LayerError::BadChange {
                    index,
                    path: d.to_owned(),
                    reason: "is a parent of a change but not a directory".to_owned(),
                });
            }
            let meta = Meta {
                mode: m.mode() & 0o7777,
                uid: u64::from(m.uid()),
                gid: u64::from(m.gid()),
                mtime: self.epoch,
                caps: None,
            };
            self.insert(
                index,
                d.to_owned(),
                Entry {
                    kind: Kind::Dir,
                    meta,
                    index,
                },
            )?;
        }
        Ok(())
    }
}
