//! The bytes of normalised ustar headers, with a PAX extended header only
//! when a field does not fit or a regular file has capabilities.

use tar::{EntryType, Header};

pub(crate) const BLOCK: usize = 512;

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
const LINK_LEN: usize = 100;
/// Largest value of the 12-byte octal fields (size, mtime): 11 digits.
const MAX_OCTAL_11: u64 = 0o77_777_777_777;
/// Largest value of the 8-byte octal fields (uid, gid): 7 digits.
const MAX_OCTAL_7: u64 = 0o7_777_777;

/// The name the PAX extended header itself carries (as Python's tarfile);
/// fixed, so it never depends on the process (GNU tar puts its pid there).
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// The PAX record key of a file's capabilities, as GNU tar, Go's
/// archive/tar and umoci write and read it.
pub(crate) const CAPS_KEY: &str = "SCHILY.xattr.security.capability";

/// Metadata of one entry as it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// File capabilities; written for regular files only.
    pub caps: Option<bake_caps::FileCaps>,
}

/// The ustar `prefix` and `name` fields for `name`, if it fits in them.
/// The split is at the first `/` that makes both parts fit.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME_LEN {
        return Some((&[], name));
    }
    name.iter().enumerate().find_map(|(i, &b)| {
        let rest = &name[i + 1..];
        (b == b'/' && i <= PREFIX_LEN && !rest.is_empty() && rest.len() <= NAME_LEN)
            .then(|| (&name[..i], rest))
    })
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts the whole
/// record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn put(h: &mut Header, offset: usize, len: usize, value: &[u8]) {
    let n = value.len().min(len);
    h.as_mut_bytes()[offset..offset + n].copy_from_slice(&value[..n]);
}

/// A ustar header with all the fixed fields normalised: magic `ustar\0`,
/// version `00`, empty uname/gname, device numbers 0.
fn base_header(kind: EntryType, meta: Meta, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(meta.mode);
    h.set_uid(meta.uid);
    h.set_gid(meta.gid);
    h.set_mtime(meta.mtime);
    h.set_size(size);
    put(&mut h, 329, 8, b"0000000\0"); // devmajor
    put(&mut h, 337, 8, b"0000000\0"); // devminor
    h
}

/// The header block(s) for one entry: a PAX `x` header and its records when
/// some field needs them, then the ustar header. `name` is the final tar
/// name (`usr/bin/x`, `usr/bin/`); `link` the symlink or hardlink target.
pub(crate) fn header_bytes(
    name: &str,
    kind: EntryType,
    meta: Meta,
    size: u64,
    link: Option<&str>,
) -> Vec<u8> {
    let name_b = name.as_bytes();
    let split = split_ustar(name_b);
    let link_b = link.map(str::as_bytes).unwrap_or_default();

    // Deterministic PAX records, always in this order, only those needed.
    let mut records = Vec::new();
    if split.is_none() {
        pax_record(&mut records, "path", name_b);
    }
    if link_b.len() > LINK_LEN {
        pax_record(&mut records, "linkpath", link_b);
    }
    let big_size = size > MAX_OCTAL_11;
    if big_size {
        pax_record(&mut records, "size", size.to_string().as_bytes());
    }
    let big_uid = meta.uid > MAX_OCTAL_7;
    if big_uid {
        pax_record(&mut records, "uid", meta.uid.to_string().as_bytes());
    }
    let big_gid = meta.gid > MAX_OCTAL_7;
    if big_gid {
        pax_record(&mut records, "gid", meta.gid.to_string().as_bytes());
    }
    let big_mtime = meta.mtime > MAX_OCTAL_11;
    if big_mtime {
        pax_record(&mut records, "mtime", meta.mtime.to_string().as_bytes());
    }
    if let (Some(caps), EntryType::Regular) = (meta.caps, kind) {
        pax_record(&mut records, CAPS_KEY, &caps.to_xattr());
    }

    let mut out = Vec::with_capacity(BLOCK * 2);
    if !records.is_empty() {
        let pax_meta = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            caps: None,
        };
        let mut ph = base_header(EntryType::XHeader, pax_meta, records.len() as u64);
        put(&mut ph, 0, NAME_LEN, PAX_NAME);
        ph.set_cksum();
        out.extend_from_slice(ph.as_bytes());
        out.extend_from_slice(&records);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }

    // Fields carried by PAX hold 0 (numbers) or a truncation (names) in the
    // ustar header, as Go's archive/tar writes them.
    let fixed = Meta {
        mode: meta.mode,
        uid: if big_uid { 0 } else { meta.uid },
        gid: if big_gid { 0 } else { meta.gid },
        mtime: if big_mtime { 0 } else { meta.mtime },
        caps: None,
    };
    let mut h = base_header(kind, fixed, if big_size { 0 } else { size });
    match split {
        Some((prefix, rest)) => {
            put(&mut h, 0, NAME_LEN, rest);
            put(&mut h, 345, PREFIX_LEN, prefix);
        }
        None => put(&mut h, 0, NAME_LEN, name_b),
    }
    put(&mut h, 157, LINK_LEN, link_b);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: Meta = Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        caps: None,
    };

    fn pax_of(bytes: &[u8]) -> Option<&[u8]> {
        let h = &bytes[..BLOCK];
        (h[156] == b'x').then(|| {
            let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
            &bytes[BLOCK..BLOCK + size]
        })
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        // 1 + 4 + 1 + 93 + 1 = 100 bytes without the length: "103 " makes 103.
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'a'; 93]);
        assert_eq!(v.len(), 103);
        assert!(v.starts_with(b"103 path="));
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'a'; 92]);
        assert_eq!(v.len(), 102);
        assert!(v.starts_with(b"102 path="));
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'a'; 90]);
        assert_eq!(v.len(), 99);
        assert!(v.starts_with(b"99 path="));
    }

    #[test]
    fn short_fields_need_no_pax() {
        let b = header_bytes("usr/bin/x", EntryType::Regular, META, 5, None);
        assert_eq!(b.len(), BLOCK);
        let long_split = format!("{}/{}", "d".repeat(150), "f".repeat(99));
        let b = header_bytes(&long_split, EntryType::Regular, META, 5, None);
        assert_eq!(b.len(), BLOCK, "a path that fits prefix+name needs no PAX");
        assert_eq!(&b[345..495], "d".repeat(150).as_bytes());
    }

    #[test]
    fn big_fields_go_to_pax() {
        let long = "x".repeat(300);
        let b = header_bytes(&long, EntryType::Symlink, META, 0, Some(&"t".repeat(101)));
        let pax = pax_of(&b).unwrap();
        let text = std::str::from_utf8(pax).unwrap();
        assert!(text.starts_with("310 path=xxx"), "{text}");
        assert!(text.contains(" linkpath=ttt"), "{text}");

        let meta = Meta {
            uid: 3_000_000,
            gid: 5,
            ..META
        };
        let b = header_bytes("f", EntryType::Regular, meta, 9 << 30, None);
        let pax = pax_of(&b).unwrap();
        assert_eq!(pax, b"19 size=9663676416\n15 uid=3000000\n");
        let ustar = &b[b.len() - BLOCK..];
        assert_eq!(&ustar[124..136], b"00000000000\0", "size held by PAX");
        assert_eq!(&ustar[108..116], b"0000000\0", "uid held by PAX");
        assert_eq!(&ustar[116..124], b"0000005\0");
    }

    #[test]
    fn capabilities_are_a_pax_xattr_record_of_regular_files_only() {
        let caps = bake_caps::FileCaps::parse("cap_net_raw+ep").unwrap();
        let meta = Meta {
            caps: Some(caps),
            uid: 3_000_000,
            ..META
        };
        let b = header_bytes("usr/bin/ping", EntryType::Regular, meta, 5, None);
        let mut want = b"15 uid=3000000\n".to_vec();
        want.extend_from_slice(b"57 SCHILY.xattr.security.capability=");
        want.extend_from_slice(&caps.to_xattr());
        want.push(b'\n');
        assert_eq!(pax_of(&b).unwrap(), want, "uid first, the xattr last");
        // The tar crate (as every reader) finds the value.
        let mut whole = b.clone();
        whole.resize(b.len() + 3 * BLOCK, 0);
        let mut a = tar::Archive::new(&whole[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_owned(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(exts[1], (CAPS_KEY.to_owned(), caps.to_xattr().to_vec()));
        assert_eq!(e.path().unwrap().to_str(), Some("usr/bin/ping"));
        for kind in [EntryType::Directory, EntryType::Symlink, EntryType::Link] {
            let meta = Meta {
                caps: Some(caps),
                ..META
            };
            let b = header_bytes("x", kind, meta, 0, Some("y"));
            assert_eq!(b.len(), BLOCK, "{kind:?} carries no capabilities");
        }
    }

    #[test]
    fn fixed_fields_are_normalised() {
        let b = header_bytes("a/", EntryType::Directory, META, 0, None);
        assert_eq!(&b[0..3], b"a/\0");
        assert_eq!(&b[100..108], b"0000644\0");
        assert_eq!(b[156], b'5');
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert!(b[265..329].iter().all(|&c| c == 0), "uname/gname empty");
        assert_eq!(&b[329..345], b"0000000\x000000000\0");
    }
}
