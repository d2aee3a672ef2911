//! Small, well-formed inputs for tests: a plain tar of regular files and a
//! `.deb` made from one, byte for byte the same on every run (fixed owner,
//! mode and mtime). Hostile variants live in bake-layer's corpus generator.

/// An uncompressed tar of regular files (`path`, `content`): ustar headers,
/// mode 0644, owner 0:0, mtime 1600000000, in the order given.
pub fn plain_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data)
            .expect("appending to a tar in memory cannot fail for valid names");
    }
    b.into_inner().expect("finishing a tar in memory cannot fail")
}

/// A well-formed `.deb` of `package` (version 1.0, architecture all) whose
/// data archive holds `files`: `debian-binary`, then an uncompressed
/// `control.tar` and `data.tar`, as `ar` members the way dpkg writes them.
pub fn deb(package: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let control = format!("Package: {package}\nVersion: 1.0\nArchitecture: all\nDescription: test package\n");
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", plain_tar(&[("./control", control.as_bytes())])),
        ("data.tar", plain_tar(files)),
    ] {
        let size = data.len();
        let header = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, "100644");
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        if size % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deb_is_an_ar_archive_with_three_members() {
        let d = deb("x", &[("./usr/bin/x", b"hi\n")]);
        assert!(d.starts_with(b"!<arch>\ndebian-binary   "));
        let text = String::from_utf8_lossy(&d);
        assert!(text.contains("control.tar     "));
        assert!(text.contains("data.tar        "));
        assert!(text.contains("Package: x\n"));
        assert_eq!(deb("x", &[("./usr/bin/x", b"hi\n")]), d, "deterministic");
    }

    #[test]
    fn the_tar_reads_back() {
        let t = plain_tar(&[("a", b"one"), ("b/c", b"")]);
        let mut archive = tar::Archive::new(&t[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a", "b/c"]);
    }
}
