//! A content-addressed blob store: the `blobs/sha256/<hex>` half of an OCI
//! image layout, usable on its own as a cache.
//!
//! Every blob is named by the sha256 of its bytes. The store keeps two promises
//! (DESIGN.md invariant 5):
//!
//! * **Atomic writes.** A blob is written to a temporary file in the same
//!   directory, hashed while it is written, and renamed to its digest only once
//!   it is complete (and, with [`BlobWriter::finish_expecting`], only when it
//!   has the digest the caller expected). A build killed midway leaves at worst
//!   a `.tmp-*` file, never a blob with the wrong content, and two writers of
//!   the same blob simply race to rename identical bytes.
//! * **Verified reads.** [`BlobStore::open_verified`] returns a reader that
//!   fails at end of stream if the bytes on disk no longer match their name.
//!
//! ```
//! use std::io::{Read, Write};
//! let dir = tempfile::tempdir().unwrap();
//! let store = bake_store::BlobStore::open(dir.path()).unwrap();
//! let mut w = store.writer().unwrap();
//! w.write_all(b"hello").unwrap();
//! let (digest, size) = w.finish().unwrap();
//! assert_eq!(size, 5);
//! assert!(store.has(&digest));
//! let mut back = String::new();
//! store.open_verified(&digest).unwrap().read_to_string(&mut back).unwrap();
//! assert_eq!(back, "hello");
//! ```
//!
//! The store knows nothing of manifests, images or what a blob means; it never
//! deletes a blob it did not just fail to write (garbage collection is the
//! caller's decision).

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bake_digest::{Digest, HashingWriter, VerifyingReader};
use fs_err as fs;

/// Errors from the blob store; each names the blob or path at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("blob {0} is not in the store at {1}")]
    Missing(Digest, PathBuf),
    #[error("blob written does not match its expected digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is corrupt in the store at {path}: its content hashes to {actual}")]
    Corrupt {
        digest: Digest,
        path: PathBuf,
        actual: Digest,
    },
    /// A symlink, directory, fifo or device where a blob should be: never
    /// followed or read (it could point anywhere, or never end).
    #[error("blob {digest} at {path} is not a regular file")]
    NotAFile { digest: Digest, path: PathBuf },
    /// A store directory (`blobs`, `blobs/sha256`) that is a symlink or
    /// not a directory: never followed, written into or deleted from.
    #[error("{path} is {kind}, not a directory: bake does not follow it")]
    NotADirectory { path: PathBuf, kind: &'static str },
    /// A file bake reads from an input (`oci-layout`, `index.json`, a
    /// docker archive) that is a symlink, fifo, device or directory.
    #[error("{path} is {kind}, not a regular file")]
    NotRegularFile { path: PathBuf, kind: &'static str },
}

/// The mode a file bake writes gets: 0666 less this process's umask, read
/// once from `/proc/self/status` (`None` where it cannot be read).
pub fn new_file_mode() -> Option<u32> {
    static MODE: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let umask = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        let umask = u32::from_str_radix(umask.trim(), 8).ok()?;
        Some(0o666 & !umask)
    })
}

/// Whether a file with `meta` may be hard-linked into an output as it is: a
/// link shares the inode, its mode and its owner. So the mode must be the
/// one a new file would get (a blob cached under another umask is copied
/// instead, so outputs always have the modes the umask allows), and the
/// owner must be this process's user: a base layout's blob owned by someone
/// else is copied, or its owner could rewrite our output in place after it
/// was verified.
pub fn linkable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    static EUID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    // The owner of /proc/self is the process's effective uid.
    let euid = *EUID.get_or_init(|| std::fs::metadata("/proc/self").ok().map(|m| m.uid()));
    euid == Some(meta.uid()) && new_file_mode().is_none_or(|m| meta.permissions().mode() & 0o7777 == m)
}

/// Writes `bytes` to `path` so that a reader, or the file system after a
/// crash, sees the old content or the new one, never a mix or an empty
/// file: a `.tmp-*` file in the same directory, created with `mode` (less
/// the umask, as `open(2)` does), written, synced, renamed over `path`, and
/// the directory synced so the rename itself is durable. On any error the
/// temp file is removed and `path` is as it was. The one implementation for
/// index.json, cache entries, lock files and credentials.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes the entries of `dir` (a rename into it, say) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `open(2)` flags std has no names for (Linux x86_64 and aarch64 values).
const O_NOFOLLOW: i32 = 0o400000;
const O_NONBLOCK: i32 = 0o4000;
/// `errno` for `open(2)` with `O_NOFOLLOW` on a symlink.
const ELOOP: i32 = 40;

/// What a file type is, for errors: `"a symlink"`, `"a fifo"`, ….
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a fifo"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only if it is a regular file, with no race
/// between check and open: a symlink (as the last component) is not
/// followed, a fifo does not block the open (`O_NOFOLLOW | O_NONBLOCK`),
/// and the opened handle itself is checked (`fstat`). Errors name the
/// path; a missing file keeps [`io::ErrorKind::NotFound`].
pub fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), StoreError> {
    open_checked(path, O_NOFOLLOW | O_NONBLOCK)
}

/// Opens an input file bake reads whole (an `unpack` archive, a `.deb`, a
/// copied file being hashed or written): like [`open_regular`], but links
/// are followed (the path was resolved inside the build context already).
/// A fifo, socket or device in a file's place — even one swapped in after
/// a walk looked — is an error naming the path, not a hang or an endless
/// read.
pub fn open_input(path: &Path) -> io::Result<std::fs::File> {
    match open_checked(path, O_NONBLOCK) {
        Ok((file, _)) => Ok(file),
        Err(StoreError::Io(e)) => Err(e),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
    }
}

/// Opens `path` for reading with `flags`, then checks the handle is a
/// regular file.
fn open_checked(path: &Path, flags: i32) -> Result<(std::fs::File, std::fs::Metadata), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(ELOOP) => {
            return Err(StoreError::NotRegularFile {
                path: path.to_path_buf(),
                kind: "a symlink",
            });
        }
        Err(e) => {
            return Err(io::Error::new(e.kind(), format!("failed to open {}: {e}", path.display())).into());
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("failed to stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(StoreError::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok((file, meta))
}

/// Checks, without following links, that `path` is a directory if it
/// exists; `Ok(false)` when it does not.
fn real_dir(path: &Path) -> Result<bool, StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(m) => Err(StoreError::NotADirectory {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("failed to stat {}: {e}", path.display())).into()),
    }
}

/// A directory holding `blobs/sha256/<hex>` files.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    dir: PathBuf,
}

impl BlobStore {
    /// Opens the store rooted at `root`; blobs live in `root/blobs/sha256/`.
    /// Creates nothing (reading a base's layout leaves it as it is): the
    /// directories are made by the first write ([`BlobStore::create_dirs`]).
    /// Refuses a `blobs` or `blobs/sha256` that is a symlink or not a
    /// directory: it is never followed, for reading, writing or deleting.
    pub fn open(root: &Path) -> Result<BlobStore, StoreError> {
        let blobs = root.join("blobs");
        let dir = blobs.join("sha256");
        if real_dir(&blobs)? {
            real_dir(&dir)?;
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// Makes `root/blobs/sha256/` if needed (and `root`), refusing a
    /// `blobs` or `blobs/sha256` that is a symlink or not a directory.
    /// Every write calls it.
    pub fn create_dirs(&self) -> Result<(), StoreError> {
        fs::create_dir_all(&self.root)?;
        let blobs = self.root.join("blobs");
        for dir in [&blobs, &self.dir] {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                // Whatever is there (a symlink included: mkdir does not
                // follow it) must be a real directory.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(
                        io::Error::new(e.kind(), format!("failed to create {}: {e}", dir.display())).into(),
                    );
                }
            }
            if !real_dir(dir)? {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} vanished as it was created", dir.display()),
                )
                .into());
            }
        }
        Ok(())
    }

    /// The directory the store was opened on.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Whether the blob is present as a regular file (not verified: see
    /// [`BlobStore::verify`]; a symlink is not a blob).
    pub fn has(&self, digest: &Digest) -> bool {
        std::fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Size of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.path(digest);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(StoreError::NotAFile {
                digest: digest.clone(),
                path,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing(digest.clone(), path)),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a stored blob, which must be a regular file: a symlink is
    /// not followed, a fifo or device not opened.
    fn open_file(&self, digest: &Digest) -> Result<std::fs::File, StoreError> {
        let path = self.path(digest);
        let not_a_file = || StoreError::NotAFile {
            digest: digest.clone(),
            path: path.clone(),
        };
        match open_regular(&path) {
            Ok((file, _)) => Ok(file),
            Err(StoreError::NotRegularFile { .. }) => Err(not_a_file()),
            Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::Missing(digest.clone(), path))
            }
            Err(e) => Err(e),
        }
    }

    /// A writer for a new blob. Nothing is visible in the store until
    /// [`BlobWriter::finish`] succeeds; dropping the writer removes the
    /// temporary file.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        self.create_dirs()?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            // Like any file a tool writes: 0666 less the umask (tempfile's
            // default, 0600, would keep the layout from other users).
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&self.dir)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("failed to create a temporary blob in {}: {e}", self.dir.display()),
                )
            })?;
        Ok(BlobWriter {
            inner: HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, tmp)),
            store: self.clone(),
        })
    }

    /// Stores `bytes` and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes)?;
        w.finish_expecting(&digest)?;
        Ok(digest)
    }

    /// Copies everything `reader` yields into the store, failing (and storing
    /// nothing) unless it hashes to `expected`.
    pub fn put_reader_expecting(&self, reader: &mut impl Read, expected: &Digest) -> Result<u64, StoreError> {
        let mut w = self.writer()?;
        io::copy(reader, &mut w)?;
        w.finish_expecting(expected)
    }

    /// A reader over a stored blob that fails with `InvalidData` at end of
    /// stream if the content does not hash to `digest`.
    pub fn open_verified(&self, digest: &Digest) -> Result<impl Read + use<>, StoreError> {
        let file = self.open_file(digest)?;
        Ok(VerifyingReader::new(
            BufReader::with_capacity(256 * 1024, file),
            digest.clone(),
            None,
        ))
    }

    /// Reads a whole (small) blob, verified: manifests, configs, indexes.
    pub fn read_verified(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest);
        let mut bytes = Vec::new();
        self.open_file(digest)?.read_to_end(&mut bytes)?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Corrupt {
                digest: digest.clone(),
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Re-hashes a stored blob.
    pub fn verify(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.path(digest);
        let mut r = self.open_verified(digest)?;
        match io::copy(&mut r, &mut io::sink()) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let actual = bake_digest::HashingReader::new(self.open_file(digest)?);
                let mut actual = actual;
                io::copy(&mut actual, &mut io::sink())?;
                Err(StoreError::Corrupt {
                    digest: digest.clone(),
                    path,
                    actual: actual.finish().1,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes the blob `digest` of `other` present here, by hard link when both
    /// stores share a filesystem and its mode is what this process would
    /// give a new file ([`linkable`]), else by a verified copy.
    pub fn import_from(&self, other: &BlobStore, digest: &Digest) -> Result<(), StoreError> {
        if self.has(digest) {
            return Ok(());
        }
        let src = other.path(digest);
        let dst = self.path(digest);
        // Never hard-link a symlink (or anything but a regular file) in.
        other.size(digest)?;
        self.create_dirs()?;
        let same_mode = std::fs::symlink_metadata(&src).is_ok_and(|m| linkable(&m));
        if same_mode && fs::hard_link(&src, &dst).is_ok() {
            return Ok(());
        }
        let mut r = other.open_verified(digest)?;
        self.put_reader_expecting(&mut r, digest)?;
        Ok(())
    }
}

/// A blob being written; see [`BlobStore::writer`].
pub struct BlobWriter {
    inner: HashingWriter<io::BufWriter<tempfile::NamedTempFile>>,
    store: BlobStore,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Completes the blob: flushes, syncs and renames it into place.
    pub fn finish(self) -> Result<(Digest, u64), StoreError> {
        self.finish_inner(None)
    }

    /// Like [`BlobWriter::finish`], but stores nothing and fails unless the
    /// bytes hash to `expected`.
    pub fn finish_expecting(self, expected: &Digest) -> Result<u64, StoreError> {
        self.finish_inner(Some(expected)).map(|(_, n)| n)
    }

    fn finish_inner(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let (buf, digest, size) = self.inner.finish();
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_data()?;
        let dst = self.store.path(&digest);
        tmp.persist(&dst).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("failed to store blob {digest} at {}: {}", dst.display(), e.error),
            )
        })?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_content_with_the_mode_asked_less_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write_atomic(&path, b"one", 0o666).unwrap();
        write_atomic(&path, b"two", 0o666).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(Some(mode), new_file_mode(), "0666 less the umask");
        let private = dir.path().join("config.json");
        write_atomic(&private, b"secret", 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o077,
            0
        );
        // Nothing else is left in the directory.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["config.json", "index.json"]);
    }

    #[test]
    fn write_atomic_that_fails_leaves_the_old_content_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"kept").unwrap();
        assert!(write_atomic(&path, b"new", 0o666).is_err());
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"kept");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        // A directory that does not exist is an error, and creates nothing.
        assert!(write_atomic(&dir.path().join("missing/file"), b"x", 0o666).is_err());
        assert!(!dir.path().join("missing").exists());
    }

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        s.create_dirs().unwrap();
        (dir, s)
    }

    fn entries(s: &BlobStore) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(s.root().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn put_and_read_back() {
        let (_d, s) = store();
        let d = s.put_bytes(b"{}").unwrap();
        assert_eq!(d, Digest::of(b"{}"));
        assert_eq!(s.read_verified(&d).unwrap(), b"{}");
        assert_eq!(s.size(&d).unwrap(), 2);
        assert_eq!(entries(&s), vec![d.hex().to_owned()]);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert!(entries(&s).is_empty());
    }

    #[test]
    fn wrong_expected_digest_stores_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        let err = w.finish_expecting(&Digest::of(b"abd")).unwrap_err();
        assert!(
            err.to_string().contains("does not match its expected digest"),
            "{err}"
        );
        assert!(entries(&s).is_empty());
    }

    #[test]
    fn corruption_is_detected_on_read() {
        let (_d, s) = store();
        let d = s.put_bytes(b"original").unwrap();
        std::fs::write(s.path(&d), b"tampered").unwrap();
        let err = s.read_verified(&d).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
        let mut r = s.open_verified(&d).unwrap();
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        assert!(matches!(s.verify(&d), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn missing_blob_names_digest() {
        let (_d, s) = store();
        let d = Digest::of(b"nope");
        let err = s.read_verified(&d).err().unwrap();
        assert!(err.to_string().contains(&d.to_string()), "{err}");
    }

    #[test]
    fn blobs_that_are_not_regular_files_are_refused() {
        let (d, s) = store();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"host file").unwrap();
        let digest = Digest::of(b"host file");
        std::os::unix::fs::symlink(&secret, s.path(&digest)).unwrap();
        assert!(!s.has(&digest));
        for err in [
            s.read_verified(&digest).unwrap_err(),
            s.open_verified(&digest).err().unwrap(),
            s.verify(&digest).unwrap_err(),
            s.size(&digest).unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::NotAFile { .. }), "{err}");
            assert!(err.to_string().contains("is not a regular file"), "{err}");
        }
        let (_o, other) = store();
        assert!(matches!(
            other.import_from(&s, &digest),
            Err(StoreError::NotAFile { .. })
        ));
        assert!(!other.path(&digest).exists());
        // A directory in a blob's place is refused the same way.
        let dir = Digest::of(b"dir");
        std::fs::create_dir(s.path(&dir)).unwrap();
        assert!(matches!(s.read_verified(&dir), Err(StoreError::NotAFile { .. })));
    }

    fn mkfifo(path: &Path) {
        let st = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn open_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        assert!(!s.has(&Digest::of(b"x")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The first write makes the directories.
        s.put_bytes(b"x").unwrap();
        assert!(dir.path().join("blobs/sha256").is_dir());
    }

    /// `blobs` or `blobs/sha256` as a symlink (or a file) is refused, for
    /// reading and writing, and nothing is created where it points.
    #[test]
    fn store_directories_that_are_links_are_refused() {
        for link_at in ["blobs", "blobs/sha256"] {
            let dir = tempfile::tempdir().unwrap();
            let canary = tempfile::tempdir().unwrap();
            let root = dir.path().join("layout");
            std::fs::create_dir_all(root.join("blobs")).unwrap();
            let link = root.join(link_at);
            let _ = std::fs::remove_dir(&link);
            std::os::unix::fs::symlink(canary.path(), &link).unwrap();
            let err = BlobStore::open(&root).unwrap_err();
            assert!(matches!(err, StoreError::NotADirectory { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} is a symlink, not a directory: bake does not follow it",
                    link.display()
                )
            );
            // A store opened before the swap refuses to write through it.
            std::fs::remove_file(&link).unwrap();
            let s = BlobStore::open(&root).unwrap();
            std::os::unix::fs::symlink(canary.path(), &link).unwrap();
            let err = s.put_bytes(b"x").unwrap_err();
            assert!(err.to_string().contains("is a symlink, not a directory"), "{err}");
            assert_eq!(std::fs::read_dir(canary.path()).unwrap().count(), 0, "{link_at}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blobs"), b"").unwrap();
        let err = BlobStore::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("is a regular file, not a directory"),
            "{err}"
        );
    }

    #[test]
    fn open_regular_refuses_links_fifos_devices_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"ok").unwrap();
        let (_, meta) = open_regular(&file).unwrap();
        assert_eq!(meta.len(), 2);
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let to_file = dir.path().join("to-file");
        std::os::unix::fs::symlink(&file, &to_file).unwrap();
        for (path, kind) in [
            (fifo, "a fifo"),
            (link, "a symlink"),
            (to_file, "a symlink"),
            (PathBuf::from("/dev/null"), "a device"),
            (dir.path().to_path_buf(), "a directory"),
        ] {
            let err = open_regular(&path).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{} is {kind}, not a regular file", path.display())
            );
        }
        let err = open_regular(&dir.path().join("missing")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(err.to_string().contains("missing"), "{err}");
        // A blob that is a fifo is refused, not waited on.
        let (_d, s) = store();
        let d = Digest::of(b"fifo");
        mkfifo(&s.path(&d));
        assert!(matches!(s.read_verified(&d), Err(StoreError::NotAFile { .. })));
    }

    #[test]
    fn import_between_stores() {
        let (_a, a) = store();
        let (_b, b) = store();
        let d = a.put_bytes(b"shared").unwrap();
        b.import_from(&a, &d).unwrap();
        assert_eq!(b.read_verified(&d).unwrap(), b"shared");
    }

    /// A blob of our own, with the mode a new file gets, is linked; one of
    /// another owner or another mode is copied, so no one else can rewrite
    /// our store's file in place and its mode is the umask's.
    #[test]
    fn only_our_own_blobs_with_our_mode_are_linked() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_a, a) = store();
        let ino = |s: &BlobStore, d: &Digest| std::fs::metadata(s.path(d)).unwrap().ino();
        let ours = a.put_bytes(b"ours").unwrap();
        let (_b, b) = store();
        b.import_from(&a, &ours).unwrap();
        assert_eq!(ino(&a, &ours), ino(&b, &ours), "linked");

        let other_mode = a.put_bytes(b"other mode").unwrap();
        std::fs::set_permissions(
            a.path(&other_mode),
            std::fs::Permissions::from_mode(0o600 ^ 0o004),
        )
        .unwrap();
        b.import_from(&a, &other_mode).unwrap();
        assert_ne!(ino(&a, &other_mode), ino(&b, &other_mode), "copied");
        assert_eq!(b.read_verified(&other_mode).unwrap(), b"other mode");

        // Another owner: only root can make one here.
        if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            let theirs = a.put_bytes(b"theirs").unwrap();
            std::os::unix::fs::lchown(a.path(&theirs), Some(4242), None).unwrap();
            b.import_from(&a, &theirs).unwrap();
            assert_ne!(ino(&a, &theirs), ino(&b, &theirs), "copied");
            assert_eq!(std::fs::metadata(b.path(&theirs)).unwrap().uid(), 0);
        }
    }
}
