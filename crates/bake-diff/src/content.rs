//! What differs inside a changed file, for a person to act on: a short
//! unified diff for text, the first differing byte and the bytes around it
//! for anything else, the header fields of gzip members (the usual
//! non-reproducible ones: mtime, name, OS), and both sizes.

use crate::layers::sniff;
use crate::report::{Change, ContentDiff};

/// Files larger than this (on either side) are not read for a diff.
pub(crate) const MAX_FILE: u64 = 1 << 20;
/// Changed files explained per layer: each one reads both layers again.
pub(crate) const MAX_PER_LAYER: usize = 4;
/// Lines of unified diff shown (the rest are counted).
const MAX_DIFF_LINES: usize = 40;
/// Bytes shown on each side of a binary difference.
const WINDOW: usize = 16;

/// What differs between the two contents of one file.
pub(crate) fn explain(a: &[u8], b: &[u8]) -> ContentDiff {
    let mut out = ContentDiff {
        kind: "binary".into(),
        sizes: Change::new(Some(a.len() as u64), Some(b.len() as u64)),
        diff: Vec::new(),
        more_lines: 0,
        first_difference: None,
        window_a: None,
        window_b: None,
        gzip: None,
    };
    if let (Some(ta), Some(tb)) = (as_text(a), as_text(b)) {
        out.kind = "text".into();
        let diff = similar::TextDiff::from_lines(ta, tb);
        let unified = diff.unified_diff().context_radius(3).header("a", "b").to_string();
        let mut lines: Vec<String> = unified.lines().map(printable).collect();
        if lines.len() > MAX_DIFF_LINES {
            out.more_lines = lines.len() - MAX_DIFF_LINES;
            lines.truncate(MAX_DIFF_LINES);
        }
        out.diff = lines;
        return out;
    }
    let first = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    out.first_difference = Some(first as u64);
    let start = first - first % WINDOW;
    out.window_a = Some(hex_window(a, start));
    out.window_b = Some(hex_window(b, start));
    let (ga, gb) = (sniff(a).gzip, sniff(b).gzip);
    if ga.is_some() && gb.is_some() {
        out.gzip = Some(Change::new(ga, gb));
    }
    out
}

/// `data` as text: UTF-8 without NUL bytes.
fn as_text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok().filter(|s| !s.contains('\0'))
}

/// `OFFSET: xx xx …` for `WINDOW` bytes of `data` from `start` (fewer at
/// the end; `(end of file)` past it).
fn hex_window(data: &[u8], start: usize) -> String {
    let Some(bytes) = data.get(start..) else {
        return format!("{start:08x}: (end of file)");
    };
    let bytes = &bytes[..bytes.len().min(WINDOW)];
    if bytes.is_empty() {
        return format!("{start:08x}: (end of file)");
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let ascii: String = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{start:08x}: {}  |{ascii}|", hex.join(" "))
}

/// A diff line with control characters escaped (file content is a
/// stranger's: it must not drive the terminal).
fn printable(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_a_unified_diff() {
        let a = "one\ntwo\nthree\nfour\n";
        let b = "one\ntwo\n3\nfour\n";
        let d = explain(a.as_bytes(), b.as_bytes());
        assert_eq!(d.kind, "text");
        let text = d.diff.join("\n");
        assert!(
            text.contains("-three") && text.contains("+3") && text.contains(" two"),
            "{text}"
        );
        assert_eq!(d.more_lines, 0);
        assert_eq!(d.sizes.a, Some(19));
    }

    #[test]
    fn long_diffs_are_cut_and_counted_and_escapes_are_escaped() {
        let a: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..200).map(|i| format!("LINE {i}\x1b[31m\n")).collect();
        let d = explain(a.as_bytes(), b.as_bytes());
        assert_eq!(d.diff.len(), MAX_DIFF_LINES);
        assert!(d.more_lines > 300, "{}", d.more_lines);
        assert!(d.diff.iter().all(|l| !l.contains('\x1b')), "{:?}", d.diff);
    }

    #[test]
    fn binaries_get_the_first_difference_and_gzip_headers_their_fields() {
        let mut a = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        a.extend_from_slice(&[7u8; 40]);
        let mut b = a.clone();
        b[4] = 0x10; // MTIME
        b[9] = 3; // OS
        b[30] = 0;
        let d = explain(&a, &b);
        assert_eq!(d.kind, "binary");
        assert_eq!(d.first_difference, Some(4));
        assert!(
            d.window_a
                .as_deref()
                .unwrap()
                .starts_with("00000000: 1f 8b 08 00 00"),
            "{d:?}"
        );
        assert!(
            d.window_b
                .as_deref()
                .unwrap()
                .starts_with("00000000: 1f 8b 08 00 10"),
            "{d:?}"
        );
        let g = d.gzip.unwrap();
        assert_eq!((g.a.unwrap().mtime, g.b.as_ref().unwrap().mtime), (0, 16));
        assert_eq!(g.b.unwrap().os, 3);
        // One side a prefix of the other: the difference is where it ends.
        let d = explain(&[0, 1, 2, 0xff], &[0, 1, 2, 0xff, 9]);
        assert_eq!(d.first_difference, Some(4));
        assert!(d.window_a.unwrap().contains("ff"));
    }
}
