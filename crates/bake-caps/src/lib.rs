//! File capabilities without libcap: the textual form a recipe writes
//! (`cap_net_raw+ep`, as `setcap` takes it) and the value of the
//! `security.capability` extended attribute that the kernel reads.
//!
//! A file's capabilities are three things: a *permitted* set, an
//! *inheritable* set (each a bit per capability, 0 to 63) and one
//! *effective* flag, which, when set, raises every permitted capability the
//! moment the file is executed. [`FileCaps`] holds exactly that, so two
//! spellings of the same capabilities are the same value, and
//! [`FileCaps::to_xattr`] always writes the same 20 bytes for it
//! (`VFS_CAP_REVISION_2`) — on any host, whatever its kernel or libcap
//! version knows.
//!
//! ```
//! use bake_caps::FileCaps;
//!
//! let caps = FileCaps::parse("cap_net_raw+ep").unwrap();
//! assert_eq!(caps, FileCaps::parse("CAP_NET_RAW=pe").unwrap());
//! assert_eq!(caps.to_string(), "cap_net_raw=ep"); // as `getcap` shows it
//! let xattr = caps.to_xattr();
//! assert_eq!(xattr[..8], [0x01, 0, 0, 0x02, 0, 0x20, 0, 0]);
//! assert_eq!(FileCaps::from_xattr(&xattr).unwrap(), caps);
//! ```
//!
//! # The textual form
//!
//! As `cap_from_text(3)` reads it (`cap_text_formats(7)`): clauses separated
//! by white space, applied in order to empty sets; each clause is a
//! comma-separated list of capability names (`cap_net_raw`, any case; the
//! list may be empty before `=`, meaning all) followed by one or more
//! actions, each an operator and flags: `=` clears the listed capabilities
//! from every set and raises the flags, `+` raises them, `-` lowers them;
//! the flags are `e` (effective), `i` (inheritable) and `p` (permitted).
//! A capability may also be given by its number (`13` is `cap_net_raw`;
//! 0 to 63). `all` names every capability this crate knows (0 to [`LAST_CAP`],
//! `cap_chown` to `cap_checkpoint_restore`) — a fixed list, so `all` means
//! the same on every host (libcap asks the running kernel).
//!
//! Because a file has one effective *flag*, not a set, `e` must be given
//! for every permitted and inheritable capability or for none
//! (`cap_net_raw+ep cap_chown+p` cannot be a file's; `setcap` refuses it
//! too). Text that declares no capability at all is refused: leave the
//! capabilities out instead.
//!
//! # The xattr value
//!
//! `struct vfs_cap_data` of `<linux/capability.h>`, little-endian: a
//! `magic_etc` word (the revision in the top byte, bit 0 the effective
//! flag), then (permitted, inheritable) for capabilities 0–31, then for
//! 32–63. [`FileCaps::from_xattr`] reads revision 1 (32 bits), 2 and 3
//! (revision 2 plus the uid of the user namespace's root that the value
//! belongs to); the result is written back as revision 2, so a namespaced
//! value from a rootless build becomes a plain one (as Docker does when it
//! writes a layer).
//!
//! This crate does no I/O and knows nothing of tar or files.

use std::fmt;

/// The name of the extended attribute that holds a file's capabilities.
pub const XATTR: &str = "security.capability";

/// The highest capability number this crate has a name for
/// (`cap_checkpoint_restore`, Linux 5.9).
pub const LAST_CAP: u32 = 40;

/// Capability names by number, without the `cap_` prefix.
const NAMES: [&str; LAST_CAP as usize + 1] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Every capability with a name: bits 0 to [`LAST_CAP`].
pub const ALL: u64 = (1 << (LAST_CAP + 1)) - 1;

const REVISION_MASK: u32 = 0xff00_0000;
const REVISION_1: u32 = 0x0100_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;
const FLAG_EFFECTIVE: u32 = 0x0000_0001;

/// A file's capabilities (see the crate doc). Never all empty when made by
/// [`FileCaps::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileCaps {
    /// Bit `n` is capability `n`.
    pub permitted: u64,
    pub inheritable: u64,
    /// Raise the permitted capabilities when the file is executed.
    pub effective: bool,
}

/// Why a capability text or xattr value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    #[error("unknown capability {name:?} (names are cap_chown … cap_checkpoint_restore, or all)")]
    UnknownName { name: String },
    #[error("{clause:?}: {reason}")]
    Syntax { clause: String, reason: &'static str },
    #[error(
        "a file has one effective flag for all its capabilities: give `e` to every permitted and inheritable capability, or to none"
    )]
    Effective,
    #[error("declares no capability (leave it out instead)")]
    Empty,
    #[error("malformed security.capability value ({len} bytes): {reason}")]
    Malformed { len: usize, reason: &'static str },
}

/// The number of the capability called `name` (`cap_net_raw`, any case).
pub fn number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("cap_")?;
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The name of capability `n` (`cap_net_raw`), if it has one.
pub fn name(n: u32) -> Option<String> {
    NAMES.get(n as usize).map(|s| format!("cap_{s}"))
}

impl FileCaps {
    /// Parses the textual form (see the crate doc).
    pub fn parse(text: &str) -> Result<FileCaps, CapsError> {
        let (mut e, mut i, mut p) = (0u64, 0u64, 0u64);
        for clause in text.split_ascii_whitespace() {
            let syntax = |reason| CapsError::Syntax {
                clause: clause.to_owned(),
                reason,
            };
            let ops = clause.find(['=', '+', '-']).ok_or_else(|| {
                syntax("needs an action: `=`, `+` or `-` followed by flags e, i, p (as in cap_net_raw+ep)")
            })?;
            let (list, actions) = clause.split_at(ops);
            let mut caps = 0u64;
            if list.is_empty() {
                if !actions.starts_with('=') {
                    return Err(syntax("name the capabilities before `+` or `-`"));
                }
                caps = ALL;
            }
            for name in list.split(',').filter(|_| !list.is_empty()) {
                caps |= match name.to_ascii_lowercase().as_str() {
                    "all" => ALL,
                    "" => return Err(syntax("an empty name in the list")),
                    n if n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<u32>() {
                        Ok(k) if k < 64 => 1 << k,
                        _ => return Err(syntax("capability numbers are 0 to 63")),
                    },
                    _ => {
                        1 << number(name).ok_or_else(|| CapsError::UnknownName {
                            name: name.to_owned(),
                        })?
                    }
                };
            }
            let mut rest = actions;
            while let Some(op) = rest.chars().next() {
                let after = &rest[1..];
                let end = after.find(['=', '+', '-']).unwrap_or(after.len());
                let flags = &after[..end];
                rest = &after[end..];
                let (mut fe, mut fi, mut fp) = (false, false, false);
                for f in flags.chars() {
                    match f {
                        'e' => fe = true,
                        'i' => fi = true,
                        'p' => fp = true,
                        _ => {
                            return Err(syntax(
                                "flags are e (effective), i (inheritable) and p (permitted)",
                            ));
                        }
                    }
                }
                if op != '=' && flags.is_empty() {
                    return Err(syntax("`+` and `-` need flags: e, i, p"));
                }
                if op == '=' {
                    e &= !caps;
                    i &= !caps;
                    p &= !caps;
                }
                for (on, set) in [(fe, &mut e), (fi, &mut i), (fp, &mut p)] {
                    if on {
                        if op == '-' {
                            *set &= !caps;
                        } else {
                            *set |= caps;
                        }
                    }
                }
            }
        }
        if e | i | p == 0 {
            return Err(CapsError::Empty);
        }
        if e != 0 && e != (i | p) {
            return Err(CapsError::Effective);
        }
        Ok(FileCaps {
            permitted: p,
            inheritable: i,
            effective: e != 0,
        })
    }

    /// The `security.capability` value: `VFS_CAP_REVISION_2`, 20 bytes.
    pub fn to_xattr(&self) -> [u8; 20] {
        let magic = REVISION_2 | if self.effective { FLAG_EFFECTIVE } else { 0 };
        let words = [
            magic,
            self.permitted as u32,
            self.inheritable as u32,
            (self.permitted >> 32) as u32,
            (self.inheritable >> 32) as u32,
        ];
        let mut out = [0u8; 20];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Reads a `security.capability` value of revision 1, 2 or 3 (the
    /// namespace root's uid of revision 3 is not kept). Any other length,
    /// revision or flag is refused.
    pub fn from_xattr(value: &[u8]) -> Result<FileCaps, CapsError> {
        let malformed = |reason| CapsError::Malformed {
            len: value.len(),
            reason,
        };
        let word = |i: usize| {
            value
                .get(i * 4..i * 4 + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let magic = word(0).ok_or_else(|| malformed("shorter than its header"))?;
        let words = match magic & REVISION_MASK {
            REVISION_1 => 1,
            REVISION_2 | REVISION_3 => 2,
            _ => return Err(malformed("unknown revision")),
        };
        let expected = match magic & REVISION_MASK {
            REVISION_1 => 12,
            REVISION_2 => 20,
            _ => 24,
        };
        if value.len() != expected {
            return Err(malformed("wrong length for its revision"));
        }
        if magic & !REVISION_MASK & !FLAG_EFFECTIVE != 0 {
            return Err(malformed("unknown flags"));
        }
        let (mut permitted, mut inheritable) = (0u64, 0u64);
        for k in 0..words {
            let (p, i) = (word(1 + 2 * k), word(2 + 2 * k));
            let (Some(p), Some(i)) = (p, i) else {
                return Err(malformed("wrong length for its revision"));
            };
            permitted |= u64::from(p) << (32 * k);
            inheritable |= u64::from(i) << (32 * k);
        }
        Ok(FileCaps {
            permitted,
            inheritable,
            effective: magic & FLAG_EFFECTIVE != 0,
        })
    }
}

impl fmt::Display for FileCaps {
    /// The canonical text, which [`FileCaps::parse`] reads back to the same
    /// value: one `=` clause per combination of sets, permitted only, then
    /// inheritable only, then both, names in number order (a capability
    /// without a name by its number); all named capabilities as `=…`
    /// (`=ep`). The flags come in `getcap`'s order: `e`, `i`, `p`
    /// (`cap_net_raw=ep`). No capability at all is `=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, i) = (self.permitted, self.inheritable);
        let classes = [(p & !i, "p"), (i & !p, "i"), (p & i, "ip")];
        let mut first = true;
        for (set, flags) in classes {
            if set == 0 {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if set != ALL {
                let names: Vec<String> = (0..64)
                    .filter(|n| set & (1 << n) != 0)
                    .map(|n| name(n).unwrap_or_else(|| n.to_string()))
                    .collect();
                f.write_str(&names.join(","))?;
            }
            write!(f, "={}{flags}", if self.effective { "e" } else { "" })?;
        }
        if first {
            f.write_str("=")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NET_RAW: u64 = 1 << 13;
    const CHOWN: u64 = 1;

    fn caps(permitted: u64, inheritable: u64, effective: bool) -> FileCaps {
        FileCaps {
            permitted,
            inheritable,
            effective,
        }
    }

    #[test]
    fn spellings_of_the_same_capabilities_are_one_value() {
        let want = caps(NET_RAW, 0, true);
        for text in [
            "cap_net_raw+ep",
            "cap_net_raw=ep",
            "cap_net_raw=pe",
            "CAP_NET_RAW+pe",
            "  cap_net_raw+p  cap_net_raw+e ",
            "cap_net_raw+epi-i",
            "cap_chown+ep cap_chown,cap_net_raw=ep cap_chown=",
        ] {
            assert_eq!(FileCaps::parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            FileCaps::parse("cap_chown+ip cap_net_raw+p").unwrap(),
            caps(NET_RAW | CHOWN, CHOWN, false)
        );
        assert_eq!(FileCaps::parse("=ep").unwrap(), caps(ALL, 0, true));
        assert_eq!(
            FileCaps::parse("all=ep cap_chown-ep").unwrap(),
            caps(ALL & !CHOWN, 0, true)
        );
    }

    #[test]
    fn bad_text_is_refused_saying_why() {
        let err = |t: &str| FileCaps::parse(t).unwrap_err().to_string();
        assert!(err("cap_net_rawr+ep").contains("unknown capability \"cap_net_rawr\""));
        assert!(err("net_raw+ep").contains("unknown capability"));
        assert!(err("cap_net_raw").contains("needs an action"));
        assert!(err("cap_net_raw+").contains("need flags"));
        assert!(err("cap_net_raw+ex").contains("flags are e"));
        assert!(err("+ep").contains("name the capabilities"));
        assert!(err("cap_chown,,cap_net_raw+p").contains("empty name"));
        assert!(err("cap_net_raw+ep cap_chown+p").contains("one effective flag"));
        assert!(err("cap_net_raw+e").contains("one effective flag"));
        assert!(err("").contains("no capability"));
        assert!(err("cap_net_raw+p-p").contains("no capability"));
        assert!(err("=").contains("no capability"));
        // Control characters are escaped, not echoed.
        assert!(
            err("cap_\x1b[31m+p").contains("\\u{1b}"),
            "{}",
            err("cap_\x1b[31m+p")
        );
    }

    /// The bytes `setcap` (libcap 2.66) wrote for the same text on Linux 6.
    #[test]
    fn xattr_bytes_are_what_setcap_writes() {
        let hex = |c: FileCaps| {
            c.to_xattr()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let parsed = |t: &str| FileCaps::parse(t).unwrap();
        assert_eq!(
            hex(parsed("cap_net_raw+ep")),
            "0100000200200000000000000000000000000000"
        );
        assert_eq!(
            hex(parsed("cap_net_raw+eip")),
            "0100000200200000002000000000000000000000"
        );
        assert_eq!(
            hex(parsed("cap_net_raw+p cap_chown+ip")),
            "0000000201200000010000000000000000000000"
        );
        assert_eq!(hex(parsed("=ep")), "01000002ffffffff00000000ff01000000000000");
        assert_eq!(
            hex(parsed("cap_net_admin=ep")),
            "0100000200100000000000000000000000000000"
        );
    }

    #[test]
    fn xattr_values_of_every_revision_are_read_and_bad_ones_refused() {
        let c = caps(NET_RAW | (1 << 38), CHOWN, true);
        assert_eq!(FileCaps::from_xattr(&c.to_xattr()).unwrap(), c);
        // Revision 1: 32-bit sets.
        let v1 = [1, 0, 0, 1, 0, 0x20, 0, 0, 1, 0, 0, 0];
        assert_eq!(FileCaps::from_xattr(&v1).unwrap(), caps(NET_RAW, CHOWN, true));
        // Revision 3: revision 2 and a root uid, which is not kept.
        let mut v3 = c.to_xattr().to_vec();
        v3[3] = 3;
        v3.extend_from_slice(&100_000u32.to_le_bytes());
        assert_eq!(FileCaps::from_xattr(&v3).unwrap(), c);
        assert_eq!(FileCaps::from_xattr(&v3).unwrap().to_xattr(), c.to_xattr());
        let bad = |v: &[u8]| FileCaps::from_xattr(v).unwrap_err().to_string();
        assert!(bad(&[1, 0]).contains("shorter than its header"));
        assert!(bad(&[0, 0, 0, 4, 0, 0, 0, 0]).contains("unknown revision"));
        assert!(bad(&c.to_xattr()[..12]).contains("wrong length"));
        assert!(bad(&v3[..20]).contains("wrong length"));
        let mut flags = c.to_xattr();
        flags[0] = 2;
        assert!(bad(&flags).contains("unknown flags"));
    }

    #[test]
    fn the_canonical_text_reads_back_and_matches_getcap() {
        for (text, shown) in [
            ("cap_net_raw+ep", "cap_net_raw=ep"),
            ("cap_net_raw+eip", "cap_net_raw=eip"),
            ("cap_net_raw,cap_chown+p", "cap_chown,cap_net_raw=p"),
            ("cap_net_raw+p cap_chown+ip", "cap_net_raw=p cap_chown=ip"),
            ("cap_sys_admin+i", "cap_sys_admin=i"),
            ("all=ep", "=ep"),
        ] {
            let c = FileCaps::parse(text).unwrap();
            assert_eq!(c.to_string(), shown, "{text}");
            assert_eq!(FileCaps::parse(shown).unwrap(), c);
        }
        // Bits without a name (from an archive) are shown by number.
        assert_eq!(caps(1 << 50 | NET_RAW, 0, false).to_string(), "cap_net_raw,50=p");
        assert_eq!(
            FileCaps::parse("cap_net_raw,50=p").unwrap(),
            caps(1 << 50 | NET_RAW, 0, false)
        );
        assert_eq!(FileCaps::parse("13+ep").unwrap(), caps(NET_RAW, 0, true));
        assert!(
            FileCaps::parse("64+p")
                .unwrap_err()
                .to_string()
                .contains("0 to 63")
        );
        assert_eq!(caps(0, 0, false).to_string(), "=");
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("cap_net_raw"), Some(13));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(LAST_CAP));
        assert_eq!(number("net_raw"), None);
        assert_eq!(name(13).as_deref(), Some("cap_net_raw"));
        assert_eq!(name(LAST_CAP + 1), None);
    }
}
