//! The hostile archives of `testdata/hostile/`, made byte by byte (the tar
//! crate's builder refuses most of them). `hostile.rs` checks that the
//! checked-in files are exactly these bytes; `BAKE_REGENERATE_HOSTILE=1`
//! rewrites them.

use std::io::Write;

/// The name used by every entry that tries to land outside its root: tests
/// look for it everywhere it could have escaped to.
pub const ESCAPE: &str = "bake-hostile-escape";

/// The host directory the checked-in `dpkg-*-symlink.tar` base layers
/// point into (absolute, or by enough `..`). No test creates it: tests that
/// need a host canary make the same layers pointing at a directory of their
/// own ([`dpkg_status_symlink`], [`dpkg_dir_symlink`]).
pub const CANARY_DIR: &str = "/nonexistent/bake-hostile-canary";

/// A base layer whose `var/lib/dpkg/status` links to `canary/status`.
pub fn dpkg_status_symlink(canary: &str) -> Vec<u8> {
    Tar::default()
        .dir("var/")
        .dir("var/lib/")
        .dir("var/lib/dpkg/")
        .symlink("var/lib/dpkg/status", &format!("{canary}/status"))
        .end()
}

/// A base layer whose `var/lib/dpkg` leads to `canary` by `..`s.
pub fn dpkg_dir_symlink(canary: &str) -> Vec<u8> {
    Tar::default()
        .dir("var/")
        .dir("var/lib/")
        .symlink("var/lib/dpkg", &format!("../../../../../../../../../..{canary}"))
        .end()
}

/// A ustar header block with raw `name` and `link` bytes (no validation),
/// `size` in octal unless it does not fit (then base-256), and a correct
/// checksum.
pub fn header(name: &[u8], kind: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    header_with(name, kind, mode, size, link, |_| {})
}

/// [`header`], with `more` applied to the header before its checksum.
pub fn header_with(
    name: &[u8],
    kind: u8,
    mode: u32,
    size: u64,
    link: &[u8],
    more: impl FnOnce(&mut tar::Header),
) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    more(&mut h);
    h.set_cksum();
    *h.as_bytes()
}

/// A device node header.
fn device(name: &[u8], kind: u8, major: u32, minor: u32) -> [u8; 512] {
    header_with(name, kind, 0o600, 0, b"", |h| {
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
    })
}

/// A GNU-format header (for long-name records and sparse files).
pub fn gnu_header(name: &[u8], kind: u8, size: u64) -> [u8; 512] {
    gnu_header_with(name, kind, size, |_| {})
}

/// [`gnu_header`], with `more` applied to the GNU fields before the checksum.
pub fn gnu_header_with(
    name: &[u8],
    kind: u8,
    size: u64,
    more: impl FnOnce(&mut tar::GnuHeader),
) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    if let Some(gnu) = h.as_gnu_mut() {
        more(gnu);
    }
    h.set_cksum();
    *h.as_bytes()
}

/// `data` padded with zeros to a multiple of 512 bytes.
pub fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

/// An archive being assembled.
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    pub fn raw(mut self, bytes: &[u8]) -> Tar {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn file(self, name: &str, mode: u32, content: &[u8]) -> Tar {
        self.raw(&header(name.as_bytes(), b'0', mode, content.len() as u64, b""))
            .raw(&padded(content))
    }
    pub fn dir(self, name: &str) -> Tar {
        self.raw(&header(name.as_bytes(), b'5', 0o755, 0, b""))
    }
    pub fn symlink(self, name: &str, target: &str) -> Tar {
        self.raw(&header(name.as_bytes(), b'2', 0o777, 0, target.as_bytes()))
    }
    pub fn hardlink(self, name: &str, target: &str) -> Tar {
        self.raw(&header(name.as_bytes(), b'1', 0o644, 0, target.as_bytes()))
    }
    /// A PAX extended header with these records, for the next entry.
    pub fn pax(self, records: &[(&str, &str)]) -> Tar {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}={v}\n");
            // The length prefix counts itself.
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        self.raw(&header(b"PaxHeaders/entry", b'x', 0o644, body.len() as u64, b""))
            .raw(&padded(&body))
    }
    /// The two zero blocks that end an archive.
    pub fn end(self) -> Vec<u8> {
        self.raw(&[0u8; 1024]).0
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(9));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 19).unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An `ar` member header as dpkg writes it.
fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8], claimed: Option<usize>) {
    let size = claimed.unwrap_or(data.len());
    let h = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, "100644");
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// A `.deb` with this control paragraph and this (already compressed as
/// its name says) data member.
pub fn deb(control: &str, data_name: &str, data: &[u8]) -> Vec<u8> {
    let control_tar = Tar::default().file("./control", 0o644, control.as_bytes()).end();
    let mut out = b"!<arch>\n".to_vec();
    ar_member(&mut out, "debian-binary", b"2.0\n", None);
    ar_member(&mut out, "control.tar.gz", &gzip(&control_tar), None);
    ar_member(&mut out, data_name, data, None);
    out
}

const CONTROL: &str = "Package: hostile\nVersion: 1.0\nArchitecture: amd64\nDescription: a hostile package\n";

/// 16 MiB of zeros in one file: about 16 KiB gzip-compressed.
fn bomb_tar() -> Vec<u8> {
    let zeros = vec![0u8; 16 << 20];
    Tar::default().file("zeros", 0o644, &zeros).end()
}

/// A small ordinary archive, the victim of the compression faults below.
fn plain() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..2000 {
        writeln!(text, "line {i} of an ordinary file").unwrap();
    }
    Tar::default().dir("etc/").file("etc/motd", 0o644, &text).end()
}

/// Flips one byte in the middle of `data`.
fn flip_middle(mut data: Vec<u8>) -> Vec<u8> {
    let i = data.len() / 2;
    data[i] ^= 0x55;
    data
}

/// Every file of `testdata/hostile/`, by name.
pub fn files() -> Vec<(&'static str, Vec<u8>)> {
    let esc = ESCAPE;
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();

    // --- path escapes ---
    v.push((
        "dotdot.tar",
        Tar::default().file(&format!("../{esc}"), 0o644, b"pwned\n").end(),
    ));
    v.push((
        "dotdot-nested.tar",
        Tar::default()
            .file(&format!("a/../../{esc}"), 0o644, b"pwned\n")
            .end(),
    ));
    v.push((
        "absolute.tar",
        Tar::default()
            .file(&format!("/tmp/{esc}"), 0o644, b"pwned\n")
            .end(),
    ));
    v.push((
        "symlink-escape.tar",
        Tar::default()
            .symlink("link", "/tmp")
            .file(&format!("link/{esc}"), 0o644, b"pwned\n")
            .end(),
    ));
    v.push((
        "symlink-escape-relative.tar",
        Tar::default()
            .symlink("link", "../../../../../../../../../../tmp")
            .file(&format!("link/{esc}"), 0o644, b"pwned\n")
            .end(),
    ));
    v.push((
        "symlink-dir-escape.tar",
        // A directory entry through the symlink, then a file in it.
        Tar::default()
            .symlink("link", "/tmp")
            .dir(&format!("link/{esc}/"))
            .file(&format!("link/{esc}/f"), 0o644, b"pwned\n")
            .end(),
    ));
    v.push((
        "hardlink-escape.tar",
        Tar::default().hardlink("h", "../../../../etc/passwd").end(),
    ));
    v.push((
        "hardlink-absolute.tar",
        Tar::default().hardlink("h", "/etc/passwd").end(),
    ));
    v.push((
        "hardlink-through-symlink.tar",
        Tar::default()
            .symlink("s", "/etc")
            .hardlink("h", "s/passwd")
            .end(),
    ));
    v.push((
        "whiteout-escape.tar",
        Tar::default()
            .file(".wh..", 0o644, b"")
            .file(&format!("../.wh.{esc}"), 0o644, b"")
            .end(),
    ));

    // --- special files ---
    v.push((
        "device-char.tar",
        Tar::default().raw(&device(b"dev/mem", b'3', 1, 1)).end(),
    ));
    v.push((
        "device-block.tar",
        Tar::default().raw(&device(b"dev/sda", b'4', 8, 0)).end(),
    ));
    v.push((
        "fifo.tar",
        Tar::default()
            .raw(&header(b"run/fifo", b'6', 0o600, 0, b""))
            .end(),
    ));
    v.push((
        "setuid.tar",
        Tar::default()
            .file("bin/su", 0o4755, b"#!/bin/sh\n")
            .file("bin/wall", 0o2755, b"#!/bin/sh\n")
            .dir("tmp/")
            .end(),
    ));
    v.push((
        "sparse.tar",
        Tar::default()
            .raw(&gnu_header_with(b"sparse", b'S', 0, |g| g.set_real_size(0)))
            .end(),
    ));
    v.push(("sparse-extended.tar", {
        // 512 bytes stored, 1024 real: a hole, then the data, described in
        // an extension block after the header.
        let h = gnu_header_with(b"sparse", b'S', 512, |g| {
            g.set_real_size(1024);
            g.set_is_extended(true);
        });
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.sparse_mut()[0].set_offset(512);
        ext.sparse_mut()[0].set_length(512);
        Tar::default()
            .raw(&h)
            .raw(ext.as_bytes())
            .raw(&[b'S'; 512])
            .file("after", 0o644, b"after the sparse file\n")
            .end()
    }));
    v.push((
        "non-utf8.tar",
        Tar::default()
            .raw(&header(b"caf\xe9", b'0', 0o644, 1, b""))
            .raw(&padded(b"x"))
            .end(),
    ));

    // --- duplicates ---
    v.push((
        "duplicate.tar",
        Tar::default()
            .file("etc/conf", 0o644, b"first\n")
            .file("etc/conf", 0o600, b"second\n")
            .dir("x/")
            .file("x/child", 0o644, b"gone\n")
            .file("x", 0o644, b"file replaces dir\n")
            .end(),
    ));

    // --- base layers under provisioners (dpkg's database through a link) ---
    v.push(("dpkg-status-symlink.tar", dpkg_status_symlink(CANARY_DIR)));
    v.push(("dpkg-dir-symlink.tar", dpkg_dir_symlink(CANARY_DIR)));

    // --- absurd sizes ---
    v.push((
        "size-beyond-stream.tar",
        // The header says 1 GiB; the stream ends after 512 bytes of it.
        Tar::default()
            .raw(&header(b"big", b'0', 0o644, 1 << 30, b""))
            .raw(&[b'A'; 512])
            .0,
    ));
    v.push((
        "size-base256-huge.tar",
        // A base-256 size of 2^63 - 1: no sane reader may allocate it.
        Tar::default()
            .raw(&header(b"huge", b'0', 0o644, (1 << 63) - 1, b""))
            .raw(&[b'A'; 512])
            .0,
    ));
    v.push((
        "pax-size-huge.tar",
        Tar::default()
            .pax(&[("size", "4611686018427387904")])
            .raw(&header(b"f", b'0', 0o644, 0, b""))
            .raw(&[b'A'; 512])
            .0,
    ));
    v.push((
        "pax-record-huge.tar",
        // A PAX extended header claiming 16 GiB of records.
        Tar::default()
            .raw(&header(b"PaxHeaders/f", b'x', 0o644, 16 << 30, b""))
            .raw(&[b'9'; 512])
            .0,
    ));
    v.push((
        "pax-global-huge.tar",
        Tar::default()
            .raw(&header(b"GlobalHead", b'g', 0o644, 16 << 30, b""))
            .raw(&[b'9'; 512])
            .0,
    ));
    v.push((
        "gnu-longname-huge.tar",
        Tar::default()
            .raw(&gnu_header(b"././@LongLink", b'L', 1 << 30))
            .raw(&[b'n'; 512])
            .0,
    ));
    v.push((
        "gnu-longlink-huge.tar",
        Tar::default()
            .raw(&gnu_header(b"././@LongLink", b'K', 1 << 30))
            .raw(&[b'n'; 512])
            .0,
    ));
    v.push((
        "pax-malformed.tar",
        Tar::default()
            .raw(&header(b"PaxHeaders/f", b'x', 0o644, 10, b""))
            .raw(&padded(b"9999 x=y\n\n"))
            .file("f", 0o644, b"x")
            .end(),
    ));

    // --- compression ---
    v.push(("bomb.tar.gz", gzip(&bomb_tar())));
    v.push(("bomb.tar.zst", zstd(&bomb_tar())));
    v.push(("bomb.tar.xz", xz(&bomb_tar())));
    let gz = gzip(&plain());
    v.push(("truncated.tar.gz", gz[..gz.len() / 2].to_vec()));
    v.push(("truncated-trailer.tar.gz", gz[..gz.len() - 4].to_vec()));
    v.push(("corrupt.tar.gz", flip_middle(gz.clone())));
    v.push(("corrupt-crc.tar.gz", {
        let mut g = gz.clone();
        let n = g.len();
        g[n - 8] ^= 0xff;
        g
    }));
    let zst = zstd(&plain());
    v.push(("truncated.tar.zst", zst[..zst.len() / 2].to_vec()));
    v.push(("truncated-checksum.tar.zst", zst[..zst.len() - 2].to_vec()));
    v.push(("corrupt.tar.zst", flip_middle(zst)));
    let x = xz(&plain());
    v.push(("truncated.tar.xz", x[..x.len() / 2].to_vec()));
    v.push(("corrupt.tar.xz", flip_middle(x)));
    v.push(("bzip2.tar.bz2", b"BZh91AY&SY not really bzip2".to_vec()));
    v.push((
        "garbage.tar",
        (0..1500u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ));

    // --- Debian packages ---
    v.push((
        "deb-dotdot.deb",
        deb(
            CONTROL,
            "data.tar",
            &Tar::default()
                .file(&format!("./../../{esc}"), 0o644, b"pwned\n")
                .end(),
        ),
    ));
    v.push((
        "deb-symlink-escape.deb",
        deb(
            CONTROL,
            "data.tar",
            &Tar::default()
                .dir("./usr/")
                .symlink("./usr/link", "/tmp")
                .file(&format!("./usr/link/{esc}"), 0o644, b"pwned\n")
                .end(),
        ),
    ));
    v.push((
        "deb-device.deb",
        deb(
            CONTROL,
            "data.tar",
            &Tar::default().raw(&device(b"./dev/mem", b'3', 1, 1)).end(),
        ),
    ));
    v.push(("deb-bomb.deb", deb(CONTROL, "data.tar.gz", &gzip(&bomb_tar()))));
    v.push((
        "deb-bad-name.deb",
        deb(
            "Package: ../../etc\nVersion: 1\nArchitecture: amd64\n",
            "data.tar",
            &Tar::default().end(),
        ),
    ));
    v.push(("deb-member-size-huge.deb", {
        let mut out = b"!<arch>\n".to_vec();
        ar_member(&mut out, "debian-binary", b"2.0\n", None);
        ar_member(&mut out, "control.tar.gz", b"", Some(999_999_999));
        out
    }));
    v.push(("deb-pax-huge.deb", {
        let data = Tar::default()
            .raw(&header(b"PaxHeaders/f", b'x', 0o644, 16 << 30, b""))
            .raw(&[b'9'; 512])
            .0;
        deb(CONTROL, "data.tar", &data)
    }));

    // --- docker-archive bases ---
    let layer = Tar::default().file("hello", 0o644, b"hello\n").end();
    let layer_hex = hex(&layer);
    let config = |diff: &str| {
        format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
        )
    };
    v.push((
        "docker-pax-bomb.tar",
        Tar::default()
            .raw(&header(b"PaxHeaders/manifest.json", b'x', 0o644, 16 << 30, b""))
            .raw(&[b'9'; 512])
            .0,
    ));
    v.push((
        "docker-layer-escape.tar",
        Tar::default()
            .file(
                "manifest.json",
                0o644,
                br#"[{"Config":"config.json","RepoTags":["x:1"],"Layers":["../../../../etc/passwd"]}]"#,
            )
            .file("config.json", 0o644, config(&layer_hex).as_bytes())
            .end(),
    ));
    v.push((
        "docker-symlink-loop.tar",
        Tar::default()
            .file(
                "manifest.json",
                0o644,
                br#"[{"Config":"a.json","RepoTags":["x:1"],"Layers":[]}]"#,
            )
            .symlink("a.json", "b.json")
            .symlink("b.json", "a.json")
            .end(),
    ));
    v.push(("docker-layer-digest-mismatch.tar", {
        let other = "0".repeat(64);
        let manifest =
            format!(r#"[{{"Config":"config.json","RepoTags":["x:1"],"Layers":["blobs/sha256/{other}"]}}]"#);
        Tar::default()
            .file("manifest.json", 0o644, manifest.as_bytes())
            .file("config.json", 0o644, config(&other).as_bytes())
            .file(&format!("blobs/sha256/{other}"), 0o644, &layer)
            .end()
    }));
    v.push((
        "docker-diffid-mismatch.tar",
        Tar::default()
            .file(
                "manifest.json",
                0o644,
                br#"[{"Config":"config.json","RepoTags":["x:1"],"Layers":["layer.tar"]}]"#,
            )
            .file("config.json", 0o644, config(&"1".repeat(64)).as_bytes())
            .file("layer.tar", 0o644, &layer)
            .end(),
    ));
    v.push((
        "docker-manifest-malformed.tar",
        Tar::default()
            .file("manifest.json", 0o644, b"[{\"Config\": ")
            .end(),
    ));
    v.push((
        "docker-config-truncated.tar",
        Tar::default()
            .file(
                "manifest.json",
                0o644,
                br#"[{"Config":"config.json","RepoTags":["x:1"],"Layers":[]}]"#,
            )
            .raw(&header(b"config.json", b'0', 0o644, 1 << 30, b""))
            .raw(&[b'{'; 512])
            .0,
    ));
    v
}

/// The hex sha256 of `data`.
fn hex(data: &[u8]) -> String {
    bake_digest::Digest::of(data).hex().to_owned()
}
