//! Debian binary packages: the `ar` container, the control archive, and
//! dpkg's database (`/var/lib/dpkg/status`, `info/<package>.list`).
//!
//! A `.deb` comes from a stranger, so nothing in it is trusted: the file must
//! hash to the pinned digest, every `ar` header is checked (magic, decimal
//! size, terminator, member order), the control archive is read with a size
//! limit, package names are checked before they become file names, and the
//! data archive goes through the same checks as `unpack`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bake_digest::{Digest, HashingReader};

use crate::layer::{Content, Entry, Kind, Layer, io_err, owner_meta};
use crate::limits::{ReadLimits, TarGuard};
use crate::paths::normalise_archive;
use crate::{LayerError, Owner};

/// The most bytes a control member (`control`, `md5sums`, `conffiles`) may
/// have once decompressed, and the most the control archive may have.
const CONTROL_LIMIT: u64 = 16 << 20;
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER: usize = 60;

/// A status paragraph's identity: (package, architecture).
type Key = (String, String);

/// What the `Deb` sources of one layer add to dpkg's database.
#[derive(Debug, Default)]
pub(crate) struct Dpkg {
    /// The status file below this layer, and the index of its source.
    pub(crate) below: Option<(usize, Vec<u8>)>,
    /// (package, architecture) → what to record; a later package with the
    /// same key replaces an earlier one.
    packages: BTreeMap<Key, Package>,
}

#[derive(Debug)]
struct Package {
    index: usize,
    /// The status paragraph, lines without their `\n`.
    paragraph: Vec<String>,
    /// `<package>` or `<package>:<arch>`: the stem of the `info/` files.
    info_stem: String,
    /// Paths for `info/<stem>.list`, one per line.
    list: Vec<String>,
    md5sums: Option<Vec<u8>>,
}

/// One `ar` member header.
#[derive(Debug)]
struct Member {
    name: String,
    size: u64,
}

fn bad(index: usize, path: &Path, reason: impl Into<String>) -> LayerError {
    LayerError::BadDeb {
        index,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads exactly `buf.len()` bytes, or returns `Ok(false)` at a clean end of
/// file before the first byte.
fn read_exact_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated ar header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Parses the next `ar` member header; `None` at the end of the archive.
fn next_member<R: Read>(r: &mut R) -> Result<Option<Member>, String> {
    let mut h = [0u8; AR_HEADER];
    match read_exact_or_eof(r, &mut h) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(format!("cannot read an ar header: {e}")),
    }
    if &h[58..60] != b"`\n" {
        return Err("an ar member header is corrupt (bad terminator)".to_owned());
    }
    let field = |range: std::ops::Range<usize>| -> Result<&str, String> {
        std::str::from_utf8(&h[range])
            .map(str::trim_end)
            .map_err(|_| "an ar member header is not ASCII".to_owned())
    };
    let raw_name = field(0..16)?;
    // GNU ar ends names with "/"; dpkg writes them space-padded.
    let name = raw_name.strip_suffix('/').unwrap_or(raw_name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) || name.contains('/') {
        return Err(format!("invalid ar member name {raw_name:?}"));
    }
    let size_text = field(48..58)?;
    if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("ar member {name:?} has an invalid size {size_text:?}"));
    }
    let size = size_text
        .parse::<u64>()
        .map_err(|_| format!("ar member {name:?} has an invalid size {size_text:?}"))?;
    Ok(Some(Member {
        name: name.to_owned(),
        size,
    }))
}

/// Reads and discards `n` bytes; fails if the file ends first.
fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied == n {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is truncated",
        ))
    }
}

/// The compression suffix of `control.tar*` / `data.tar*` if `name` is one
/// of them with a supported suffix.
fn tar_member<'n>(name: &'n str, stem: &str) -> Option<Result<&'n str, String>> {
    let suffix = name.strip_prefix(stem)?;
    Some(match suffix {
        "" | ".gz" | ".xz" | ".zst" => Ok(suffix),
        other => Err(format!(
            "{name}: unsupported compression {other:?} (expected none, .gz, .xz or .zst)"
        )),
    })
}

/// The files of a control archive this crate uses.
#[derive(Debug, Default)]
struct ControlFiles {
    control: Option<Vec<u8>>,
    md5sums: Option<Vec<u8>>,
    conffiles: Option<Vec<u8>>,
}

fn read_control_tar<R: Read>(reader: R, limits: ReadLimits) -> Result<ControlFiles, String> {
    let reader = crate::compress::decompress(reader)
        .map_err(|e| format!("control archive: {}", crate::limits::scrub(e)))?;
    let limits = ReadLimits {
        max_tar_bytes: limits.max_tar_bytes.min(CONTROL_LIMIT * 4),
        ..limits
    };
    let mut archive = tar::Archive::new(TarGuard::new(reader, limits));
    let mut files = ControlFiles::default();
    let entries = archive
        .entries()
        .map_err(|e| format!("control archive: {}", crate::limits::scrub(e)))?;
    for item in entries {
        let mut item = item.map_err(|e| format!("control archive: {}", crate::limits::scrub(e)))?;
        let name = String::from_utf8_lossy(&item.path_bytes()).into_owned();
        let Ok(rel) = normalise_archive(&name) else {
            return Err(format!("control archive: invalid entry name {name:?}"));
        };
        let slot = match rel.as_str() {
            "control" => &mut files.control,
            "md5sums" => &mut files.md5sums,
            "conffiles" => &mut files.conffiles,
            _ => continue,
        };
        if !item.header().entry_type().is_file() {
            return Err(format!("control archive: {rel} is not a regular file"));
        }
        if item.size() > CONTROL_LIMIT {
            return Err(format!(
                "control archive: {rel} is larger than {CONTROL_LIMIT} bytes"
            ));
        }
        let mut bytes = Vec::new();
        item.read_to_end(&mut bytes)
            .map_err(|e| format!("control archive: {rel}: {e}"))?;
        *slot = Some(bytes);
    }
    Ok(files)
}

/// A control paragraph: fields in order, each the lines it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paragraph {
    fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    /// As written (field names compare case-insensitively).
    name: String,
    /// The first line's value, trimmed.
    value: String,
    /// The whole field as written: `Name: value` and continuation lines.
    lines: Vec<String>,
}

impl Paragraph {
    /// Parses the first paragraph of a control file (deb822): `Name: value`
    /// lines, continuation lines starting with a space or tab, ending at the
    /// first blank (or whitespace-only) line.
    pub(crate) fn parse(text: &str) -> Result<Paragraph, String> {
        let mut fields: Vec<Field> = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with([' ', '\t']) {
                match fields.last_mut() {
                    Some(f) => f.lines.push(line.trim_end().to_owned()),
                    None => return Err("a continuation line comes before any field".to_owned()),
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("line {line:?} is not `Field: value`"));
            };
            let name_ok = !name.is_empty()
                && !name.starts_with(['#', '-'])
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !name_ok {
                return Err(format!("invalid field name {name:?}"));
            }
            if fields.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
                return Err(format!("field {name:?} appears twice"));
            }
            fields.push(Field {
                name: name.to_owned(),
                value: value.trim().to_owned(),
                lines: vec![line.trim_end().to_owned()],
            });
        }
        if fields.is_empty() {
            return Err("the control file is empty".to_owned());
        }
        Ok(Paragraph { fields })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_str())
    }
}

/// Debian policy 5.6.1: at least two of `[a-z0-9+.-]`, starting alphanumeric.
fn package_name_ok(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 256
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'.' | b'-'))
}

fn architecture_ok(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= 64
        && arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `Version`: non-empty, no whitespace or control characters.
fn version_ok(version: &str) -> bool {
    !version.is_empty() && version.len() <= 256 && version.chars().all(|c| c.is_ascii_graphic())
}

/// `md5sums` lines are `<md5>  <path without leading />`.
fn md5_of(md5sums: &[u8], path: &str) -> Option<String> {
    let want = path.trim_start_matches('/');
    std::str::from_utf8(md5sums).ok()?.lines().find_map(|line| {
        let (sum, file) = line.split_once(char::is_whitespace)?;
        let ok = sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit());
        (ok && file.trim_start().trim_start_matches("./") == want).then(|| sum.to_ascii_lowercase())
    })
}

/// The status paragraph of an installed package: the control paragraph with
/// `Status: install ok installed` after `Package` (a `Status` the control
/// file has is dropped), and `Conffiles` (before `Description`, else last)
/// when the package has conffiles.
pub(crate) fn status_paragraph(control: &Paragraph, conffiles: &[(String, Option<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut conffiles_done = conffiles.is_empty();
    let conffile_lines = || {
        let mut lines = vec!["Conffiles:".to_owned()];
        for (path, md5) in conffiles {
            lines.push(format!(" {path} {}", md5.as_deref().unwrap_or("newconffile")));
        }
        lines
    };
    for field in &control.fields {
        if field.name.eq_ignore_ascii_case("Status") || field.name.eq_ignore_ascii_case("Conffiles") {
            continue;
        }
        if !conffiles_done && field.name.eq_ignore_ascii_case("Description") {
            out.extend(conffile_lines());
            conffiles_done = true;
        }
        out.extend(field.lines.iter().cloned());
        if field.name.eq_ignore_ascii_case("Package") {
            out.push("Status: install ok installed".to_owned());
        }
    }
    if !conffiles_done {
        out.extend(conffile_lines());
    }
    out
}

/// The paragraphs of a status file as raw lines, each with its
/// (package, architecture) key; paragraphs without `Package` are dropped.
fn status_paragraphs(status: &[u8]) -> Vec<(Key, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut flush = |lines: &mut Vec<Vec<u8>>| {
        if lines.is_empty() {
            return;
        }
        let field = |name: &str| {
            lines.iter().find_map(|l| {
                let (n, v) = l.split_at(l.iter().position(|&b| b == b':')?);
                n.eq_ignore_ascii_case(name.as_bytes())
                    .then(|| String::from_utf8_lossy(&v[1..]).trim().to_owned())
            })
        };
        if let Some(package) = field("Package") {
            let arch = field("Architecture").unwrap_or_default();
            out.push(((package, arch), std::mem::take(lines)));
        }
        lines.clear();
    };
    for line in status.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            flush(&mut current);
        } else {
            current.push(line.to_vec());
        }
    }
    flush(&mut current);
    out
}

/// The merged status file: `below`'s paragraphs, replaced by `ours` where
/// the (package, architecture) is the same, sorted by that key; each
/// paragraph is followed by a blank line, as dpkg writes it.
pub(crate) fn merged_status(below: Option<&[u8]>, ours: &[(Key, Vec<String>)]) -> Vec<u8> {
    let mut all: BTreeMap<Key, Vec<Vec<u8>>> = BTreeMap::new();
    if let Some(below) = below {
        for (key, lines) in status_paragraphs(below) {
            all.insert(key, lines);
        }
    }
    for (key, lines) in ours {
        all.insert(key.clone(), lines.iter().map(|l| l.as_bytes().to_vec()).collect());
    }
    let mut out = Vec::new();
    for lines in all.values() {
        for line in lines {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

impl<'a> Layer<'a> {
    pub(crate) fn add_deb(&mut self, index: usize, src: &Path, expected: &Digest) -> Result<(), LayerError> {
        // First the whole file against the pin, so a wrong file is reported
        // as such rather than as whatever parse error it would cause.
        let mut file = crate::open_input(src).map_err(io_err(index, src))?;
        let mut hashing = HashingReader::new(&mut file);
        io::copy(&mut hashing, &mut io::sink()).map_err(io_err(index, src))?;
        let (_, actual, _) = hashing.finish();
        if &actual != expected {
            return Err(LayerError::DebDigest {
                index,
                path: src.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }

        // Then parse it, hashing again, so a file swapped meanwhile fails.
        let file = crate::open_input(src).map_err(io_err(index, src))?;
        let mut r = HashingReader::new(io::BufReader::new(file));
        let package = self.parse_deb(index, src, &mut r)?;
        io::copy(&mut r, &mut io::sink()).map_err(io_err(index, src))?;
        let (_, again, _) = r.finish();
        if &again != expected {
            return Err(LayerError::Changed {
                index,
                path: src.to_owned(),
            });
        }
        let key = (package.package.clone(), package.architecture.clone());
        self.dpkg.packages.insert(key, package.into_package());
        Ok(())
    }

    fn parse_deb<R: Read>(&mut self, index: usize, src: &Path, r: &mut R) -> Result<Parsed, LayerError> {
        let io_bad =
            |what: &str, e: io::Error| bad(index, src, format!("{what}: {}", crate::limits::scrub(e)));
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|e| io_bad("cannot read the ar magic", e))?;
        if &magic != AR_MAGIC {
            return Err(bad(index, src, "not an ar archive (bad magic)"));
        }

        let mut seen_binary = false;
        let mut control: Option<ControlFiles> = None;
        loop {
            let member = next_member(r).map_err(|reason| bad(index, src, reason))?;
            let Some(member) = member else {
                return Err(bad(
                    index,
                    src,
                    match (seen_binary, control.is_some()) {
                        (false, _) => "the debian-binary member is missing",
                        (true, false) => "the control.tar member is missing",
                        (true, true) => "the data.tar member is missing",
                    },
                ));
            };
            let pad = member.size % 2;
            if !seen_binary {
                if member.name != "debian-binary" {
                    return Err(bad(
                        index,
                        src,
                        format!("the first member is {:?}, not debian-binary", member.name),
                    ));
                }
                if member.size > 64 {
                    return Err(bad(index, src, "debian-binary is too large"));
                }
                let mut version = Vec::new();
                r.take(member.size)
                    .read_to_end(&mut version)
                    .map_err(|e| io_bad("debian-binary", e))?;
                if !version.starts_with(b"2.") {
                    return Err(bad(
                        index,
                        src,
                        format!(
                            "unsupported package format {:?} (expected 2.x)",
                            String::from_utf8_lossy(&version).trim()
                        ),
                    ));
                }
                skip(r, pad).map_err(|e| io_bad("debian-binary", e))?;
                seen_binary = true;
                continue;
            }
            if member.name.starts_with('_') {
                skip(r, member.size + pad).map_err(|e| io_bad(&member.name, e))?;
                continue;
            }
            if let Some(suffix) = tar_member(&member.name, "control.tar") {
                suffix.map_err(|reason| bad(index, src, reason))?;
                if control.is_some() {
                    return Err(bad(index, src, "two control.tar members"));
                }
                if member.size > CONTROL_LIMIT {
                    return Err(bad(index, src, "the control archive is too large"));
                }
                let mut bytes = Vec::new();
                r.take(member.size)
                    .read_to_end(&mut bytes)
                    .map_err(|e| io_bad(&member.name, e))?;
                if bytes.len() as u64 != member.size {
                    return Err(bad(index, src, format!("{} is truncated", member.name)));
                }
                control = Some(
                    read_control_tar(&bytes[..], self.limits).map_err(|reason| bad(index, src, reason))?,
                );
                skip(r, pad).map_err(|e| io_bad(&member.name, e))?;
                continue;
            }
            if let Some(suffix) = tar_member(&member.name, "data.tar") {
                suffix.map_err(|reason| bad(index, src, reason))?;
                let Some(control) = control.take() else {
                    return Err(bad(index, src, "data.tar comes before control.tar"));
                };
                let parsed = Parsed::from_control(index, src, control)?;
                let archive = PathBuf::from(format!("{} ({})", src.display(), member.name));
                let mut data = r.take(member.size);
                let reader =
                    crate::compress::decompress(&mut data).map_err(|source| LayerError::Archive {
                        index,
                        archive: archive.clone(),
                        entry: None,
                        source,
                    })?;
                let mut names = Vec::new();
                self.add_tar(index, &archive, reader, "", Some(&mut names))?;
                // Whatever follows the tar's end-of-archive blocks in the member.
                io::copy(&mut data, &mut io::sink()).map_err(|e| io_bad(&member.name, e))?;
                if data.limit() != 0 {
                    return Err(bad(index, src, format!("{} is truncated", member.name)));
                }
                skip(r, pad).map_err(|e| io_bad(&member.name, e))?;
                return Ok(parsed.with_names(names));
            }
            return Err(bad(
                index,
                src,
                format!(
                    "unexpected member {:?} (expected control.tar and data.tar)",
                    member.name
                ),
            ));
        }
    }

    /// Writes dpkg's database for the packages of this layer, if any.
    pub(crate) fn finish_dpkg(&mut self) -> Result<(), LayerError> {
        if self.dpkg.packages.is_empty() {
            return Ok(());
        }
        let packages = std::mem::take(&mut self.dpkg.packages);
        let ours: Vec<(Key, Vec<String>)> = packages
            .iter()
            .map(|(key, p)| (key.clone(), p.paragraph.clone()))
            .collect();
        let below = self.dpkg.below.as_ref().map(|(_, s)| s.as_slice());
        let status = merged_status(below, &ours);
        let last_index = packages.values().map(|p| p.index).max().unwrap_or(0);
        let meta = owner_meta(0o644, Owner::default(), self.epoch);
        let file = |content: Vec<u8>, index: usize| Entry {
            kind: Kind::File {
                size: content.len() as u64,
                content: Content::Owned(content),
                group: None,
            },
            meta,
            index,
        };
        self.insert(
            last_index,
            "var/lib/dpkg/status".to_owned(),
            file(status, last_index),
        )?;
        for p in packages.into_values() {
            let mut list = String::new();
            for path in &p.list {
                list.push_str(path);
                list.push('\n');
            }
            let stem = &p.info_stem;
            self.insert(
                p.index,
                format!("var/lib/dpkg/info/{stem}.list"),
                file(list.into_bytes(), p.index),
            )?;
            if let Some(md5sums) = p.md5sums {
                self.insert(
                    p.index,
                    format!("var/lib/dpkg/info/{stem}.md5sums"),
                    file(md5sums, p.index),
                )?;
            }
        }
        Ok(())
    }
}

/// A package's control data, checked, before its paths are known.
struct Parsed {
    index: usize,
    package: String,
    architecture: String,
    paragraph: Vec<String>,
    info_stem: String,
    md5sums: Option<Vec<u8>>,
    names: Vec<String>,
}

impl Parsed {
    fn from_control(index: usize, src: &Path, files: ControlFiles) -> Result<Parsed, LayerError> {
        let Some(control) = files.control else {
            return Err(bad(index, src, "the control archive has no control file"));
        };
        let text =
            String::from_utf8(control).map_err(|_| bad(index, src, "the control file is not valid UTF-8"))?;
        let para =
            Paragraph::parse(&text).map_err(|reason| bad(index, src, format!("control file: {reason}")))?;
        let package = para.get("Package").unwrap_or_default().to_owned();
        if !package_name_ok(&package) {
            return Err(bad(index, src, format!("invalid package name {package:?}")));
        }
        let architecture = para.get("Architecture").unwrap_or_default().to_owned();
        if !architecture_ok(&architecture) {
            return Err(bad(
                index,
                src,
                format!("package {package}: invalid architecture {architecture:?}"),
            ));
        }
        let version = para.get("Version").unwrap_or_default();
        if !version_ok(version) {
            return Err(bad(
                index,
                src,
                format!("package {package}: invalid version {version:?}"),
            ));
        }
        let same = para
            .get("Multi-Arch")
            .is_some_and(|m| m.eq_ignore_ascii_case("same"));
        let info_stem = if same {
            format!("{package}:{architecture}")
        } else {
            package.clone()
        };

        let mut conffiles = Vec::new();
        if let Some(bytes) = &files.conffiles {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                bad(
                    index,
                    src,
                    format!("package {package}: conffiles is not valid UTF-8"),
                )
            })?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                // `remove-on-upgrade /etc/x` and similar flags precede the path.
                let path = line.rsplit(' ').next().unwrap_or(line);
                if !path.starts_with('/') || path.contains(char::is_control) {
                    return Err(bad(
                        index,
                        src,
                        format!("package {package}: invalid conffile {line:?}"),
                    ));
                }
                let md5 = files.md5sums.as_deref().and_then(|m| md5_of(m, path));
                conffiles.push((path.to_owned(), md5));
            }
        }
        Ok(Parsed {
            index,
            paragraph: status_paragraph(&para, &conffiles),
            package,
            architecture,
            info_stem,
            md5sums: files.md5sums,
            names: Vec::new(),
        })
    }

    fn with_names(mut self, names: Vec<String>) -> Parsed {
        self.names = names;
        self
    }

    fn into_package(self) -> Package {
        // dpkg's .list: "/." for the root, then "/path" for every entry, in
        // archive order, each once.
        let mut seen = std::collections::BTreeSet::new();
        let mut list = Vec::new();
        for name in self.names {
            let line = if name.is_empty() {
                "/.".to_owned()
            } else {
                format!("/{name}")
            };
            if seen.insert(line.clone()) {
                list.push(line);
            }
        }
        Package {
            index: self.index,
            paragraph: self.paragraph,
            info_stem: self.info_stem,
            list,
            md5sums: self.md5sums,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_paragraphs_keep_continuations_and_stop_at_a_blank_line() {
        let p = Paragraph::parse(
            "Package: hello\nVersion: 1.0-1\nDescription: greet\n the world\n .\n  indented\n\nPackage: other\n",
        )
        .unwrap();
        assert_eq!(p.get("package"), Some("hello"));
        assert_eq!(p.get("Description"), Some("greet"));
        assert_eq!(p.fields.len(), 3);
        assert_eq!(
            p.fields[2].lines,
            ["Description: greet", " the world", " .", "  indented"]
        );
        for bad in [
            " starts with space\n",
            "NoColon\n",
            "A: 1\na: 2\n",
            "",
            "\n\n",
            "#x: 1\n",
        ] {
            assert!(Paragraph::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_inserts_status_after_package_and_conffiles_before_description() {
        let p = Paragraph::parse(
            "Package: tool\nStatus: purge ok not-installed\nVersion: 2\nArchitecture: amd64\nDescription: d\n more\n",
        )
        .unwrap();
        let conffiles = [
            (
                "/etc/tool.conf".to_owned(),
                Some("0123456789abcdef0123456789abcdef".to_owned()),
            ),
            ("/etc/other".to_owned(), None),
        ];
        assert_eq!(
            status_paragraph(&p, &conffiles).join("\n"),
            "Package: tool\nStatus: install ok installed\nVersion: 2\nArchitecture: amd64\n\
             Conffiles:\n /etc/tool.conf 0123456789abcdef0123456789abcdef\n /etc/other newconffile\n\
             Description: d\n more"
        );
        let no_desc = Paragraph::parse("Package: x1\nVersion: 1\n").unwrap();
        assert_eq!(
            status_paragraph(&no_desc, &[]).join("\n"),
            "Package: x1\nStatus: install ok installed\nVersion: 1"
        );
    }

    #[test]
    fn merged_status_is_sorted_and_ours_replace_below() {
        let below = b"Package: zlib1g\nArchitecture: amd64\nVersion: 1\n\nPackage: base-files\nArchitecture: amd64\nVersion: 12\n\n\
Package: busybox-static\nArchitecture: amd64\nVersion: old\n\n";
        let ours = vec![
            (
                ("busybox-static".to_owned(), "amd64".to_owned()),
                vec!["Package: busybox-static".to_owned(), "Version: new".to_owned()],
            ),
            (
                ("apt".to_owned(), "amd64".to_owned()),
                vec!["Package: apt".to_owned()],
            ),
        ];
        let got = String::from_utf8(merged_status(Some(below), &ours)).unwrap();
        assert_eq!(
            got,
            "Package: apt\n\nPackage: base-files\nArchitecture: amd64\nVersion: 12\n\n\
             Package: busybox-static\nVersion: new\n\nPackage: zlib1g\nArchitecture: amd64\nVersion: 1\n\n"
        );
        assert_eq!(merged_status(None, &[]), b"");
    }

    #[test]
    fn names_and_md5sums() {
        for good in [
            "busybox-static",
            "ca-certificates",
            "libc6",
            "g++",
            "0ad",
            "python3.11",
        ] {
            assert!(package_name_ok(good), "{good}");
        }
        for bad in ["", "a", "Busybox", "../x", "a/b", "-x", "a b", "a:b", "a\nb"] {
            assert!(!package_name_ok(bad), "{bad:?}");
        }
        assert!(architecture_ok("amd64") && architecture_ok("all") && !architecture_ok("amd/64"));
        let sums =
            b"0123456789abcdef0123456789abcdef  etc/x.conf\nffffffffffffffffffffffffffffffff  usr/bin/x\n";
        assert_eq!(
            md5_of(sums, "/etc/x.conf").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(md5_of(sums, "/etc/y"), None);
    }

    #[test]
    fn ar_headers_are_checked() {
        let header = |name: &str, size: &str, end: &[u8]| {
            let mut h = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}", 0, 0, 0, "100644").into_bytes();
            h.extend_from_slice(end);
            h
        };
        let m = next_member(&mut &header("debian-binary/", "4", b"`\n")[..])
            .unwrap()
            .unwrap();
        assert_eq!((m.name.as_str(), m.size), ("debian-binary", 4));
        assert!(next_member(&mut &b""[..]).unwrap().is_none());
        assert!(
            next_member(&mut &header("x", "4", b"xx")[..]).is_err(),
            "bad terminator"
        );
        assert!(
            next_member(&mut &header("x", "-4", b"`\n")[..]).is_err(),
            "negative size"
        );
        assert!(
            next_member(&mut &header("x", "", b"`\n")[..]).is_err(),
            "empty size"
        );
        assert!(
            next_member(&mut &header("a/b", "1", b"`\n")[..]).is_err(),
            "slash in name"
        );
        assert!(
            next_member(&mut &header("x", "1", b"`\n")[..30]).is_err(),
            "truncated"
        );
        assert_eq!(tar_member("data.tar.xz", "data.tar"), Some(Ok(".xz")));
        assert!(matches!(tar_member("data.tar.bz2", "data.tar"), Some(Err(_))));
        assert_eq!(tar_member("control.tar", "data.tar"), None);
    }
}
