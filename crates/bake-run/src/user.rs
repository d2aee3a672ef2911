//! A run step's `user`, resolved against the image's `/etc/passwd` and
//! `/etc/group` (read without following symlinks: the image is not trusted
//! to point at the host's files).

use std::path::Path;

use crate::RunError;

/// Who the commands run as, and their `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Reads `rootfs/etc/<name>` if `etc` is a directory and the file a regular
/// file (not a symlink); `None` otherwise.
fn etc_file(rootfs: &Path, name: &str) -> Result<Option<String>, RunError> {
    let etc = rootfs.join("etc");
    match std::fs::symlink_metadata(&etc) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(None),
    }
    let path = etc.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= 16 << 20 => {}
        _ => return Ok(None),
    }
    let bytes = fs_err::read(&path).map_err(RunError::io(&path))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// `name:x:uid:gid:gecos:home:shell` lines (also `group`'s `name:x:gid:…`).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

/// Resolves `user` (`UID[:GID]`, `NAME[:GROUP]` or a mix) in the image at
/// `rootfs`, as Docker does: a numeric uid needs no passwd entry; without a
/// group the primary group of the passwd entry is used, else 0; `HOME` is
/// the entry's home, else `/root` for uid 0 and `/` for others.
pub fn resolve(rootfs: &Path, user: Option<&str>) -> Result<Identity, RunError> {
    let spec = user.unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = etc_file(rootfs, "passwd")?.unwrap_or_default();
    let entry = records(&passwd).find(|r| {
        r.len() >= 6
            && match user_part.parse::<u32>() {
                Ok(uid) => r[2].parse::<u32>() == Ok(uid),
                Err(_) => r[0] == user_part,
            }
    });
    let uid = match (user_part.parse::<u32>(), &entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(r)) => r[2].parse().map_err(|_| RunError::UnknownUser {
            user: user_part.to_owned(),
        })?,
        (Err(_), None) => {
            return Err(RunError::UnknownUser {
                user: user_part.to_owned(),
            });
        }
    };
    let gid = match group_part {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = etc_file(rootfs, "group")?.unwrap_or_default();
                records(&group)
                    .find(|r| r.len() >= 3 && r[0] == g)
                    .and_then(|r| r[2].parse().ok())
                    .ok_or_else(|| RunError::UnknownGroup { group: g.to_owned() })?
            }
        },
        None => entry.as_ref().and_then(|r| r[3].parse().ok()).unwrap_or(0),
    };
    let home = match &entry {
        Some(r) if !r[5].is_empty() => r[5].to_owned(),
        _ if uid == 0 => "/root".to_owned(),
        _ => "/".to_owned(),
    };
    Ok(Identity { uid, gid, home })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_like_docker() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // No /etc at all: numbers work, names do not.
        assert_eq!(
            resolve(r, None).unwrap(),
            Identity {
                uid: 0,
                gid: 0,
                home: "/root".into()
            }
        );
        assert_eq!(
            resolve(r, Some("1000")).unwrap(),
            Identity {
                uid: 1000,
                gid: 0,
                home: "/".into()
            }
        );
        assert_eq!(
            resolve(r, Some("app")).unwrap_err().to_string(),
            "unknown user `app`: the image has no such entry in /etc/passwd"
        );
        fs_err::create_dir(r.join("etc")).unwrap();
        fs_err::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs_err::write(r.join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let app = Identity {
            uid: 1000,
            gid: 1001,
            home: "/home/app".into(),
        };
        assert_eq!(resolve(r, Some("app")).unwrap(), app);
        assert_eq!(resolve(r, Some("1000")).unwrap(), app);
        assert_eq!(resolve(r, Some("app:staff")).unwrap().gid, 50);
        assert_eq!(resolve(r, Some("app:7")).unwrap().gid, 7);
        assert_eq!(
            resolve(r, Some("app:wheel")).unwrap_err().to_string(),
            "unknown group `wheel`: the image has no such entry in /etc/group"
        );
    }

    #[test]
    fn a_passwd_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        fs_err::create_dir(t.path().join("etc")).unwrap();
        let host = t.path().join("host-passwd");
        fs_err::write(&host, "secret:x:4242:4242::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, t.path().join("etc/passwd")).unwrap();
        assert!(resolve(t.path(), Some("secret")).is_err());
    }
}
