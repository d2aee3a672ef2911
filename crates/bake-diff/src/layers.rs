//! Pairing layers by position and explaining each pair.

use std::io::{self, Read};

use bake_digest::Digest;
use bake_image::Descriptor;
use bake_layer::EntrySummary;
use serde_json::Value;

use crate::compare::{key_changes, value_text};
use crate::report::{Change, CompressedDifference, CompressionInfo, GzipHeader, LayerDiff, LayerStatus};
use crate::{DiffError, Image, entries};

/// How many leading bytes of a compressed layer are read for its header.
const HEADER_BYTES: u64 = 1024;

pub(crate) fn layers(a: &Image, b: &Image) -> Result<Vec<LayerDiff>, DiffError> {
    let (ba, bb) = (a.base(), b.base());
    let (names_a, names_b) = (
        layer_history(&ba.config_json, ba.layers.len()),
        layer_history(&bb.config_json, bb.layers.len()),
    );
    let mut out = Vec::new();
    for i in 0..ba.layers.len().max(bb.layers.len()) {
        let (la, lb) = (ba.layers.get(i), bb.layers.get(i));
        let (da, db) = (ba.diff_ids.get(i), bb.diff_ids.get(i));
        let status = match (la, lb) {
            (Some(x), Some(y)) if x.digest == y.digest => LayerStatus::Identical,
            (Some(_), Some(_)) if da == db => LayerStatus::CompressionOnly,
            (Some(_), Some(_)) => LayerStatus::ContentDiffers,
            (Some(_), None) => LayerStatus::OnlyInA,
            (None, _) => LayerStatus::OnlyInB,
        };
        let created_by = names_b.get(i).or(names_a.get(i)).cloned().flatten();
        let mut d = LayerDiff {
            layer: i + 1,
            status,
            created_by,
            digest: Change::new(la.map(|l| l.digest.clone()), lb.map(|l| l.digest.clone())),
            diff_id: Change::new(da.cloned(), db.cloned()),
            media_type: Change::new(la.map(|l| l.media_type.clone()), lb.map(|l| l.media_type.clone())),
            size: Change::new(la.map(|l| l.size), lb.map(|l| l.size)),
            annotations: key_changes(
                &la.map(|l| l.annotations.clone()).unwrap_or_default(),
                &lb.map(|l| l.annotations.clone()).unwrap_or_default(),
            ),
            compression: None,
            first_difference: None,
            summary: None,
            order: None,
            entries: Vec::new(),
            notes: Vec::new(),
        };
        match (status, la, lb) {
            (LayerStatus::CompressionOnly, Some(x), Some(y)) => {
                d.compression = Some(Change::new(
                    Some(compression_info(a, i, x)?),
                    Some(compression_info(b, i, y)?),
                ));
                d.first_difference = first_difference((a, x), (b, y), i)?;
            }
            (LayerStatus::ContentDiffers, Some(x), Some(y)) => {
                let ea = read_entries(a, i, x)?;
                let eb = read_entries(b, i, y)?;
                entries::compare(&ea, &eb, &mut d);
                explain_contents(a, b, x, y, &mut d);
                if d.entries.is_empty() && d.order.is_none() {
                    d.notes.push(
                        "the entries and their headers are the same, in the same order: the tars differ \
                         elsewhere (PAX global headers, padding, or end-of-archive blocks)"
                            .into(),
                    );
                }
            }
            (LayerStatus::OnlyInA, Some(x), None) => entries::compare(&read_entries(a, i, x)?, &[], &mut d),
            (LayerStatus::OnlyInB, None, Some(y)) => entries::compare(&[], &read_entries(b, i, y)?, &mut d),
            _ => {}
        }
        if matches!(
            status,
            LayerStatus::ContentDiffers | LayerStatus::OnlyInA | LayerStatus::OnlyInB
        ) {
            moved(&mut d, i, da, &bb.diff_ids, "a", "b");
            moved(&mut d, i, db, &ba.diff_ids, "b", "a");
        }
        out.push(d);
    }
    Ok(out)
}

/// Notes that the layer at `i` on one side has the same content as a layer
/// at another position on the other side (a layer inserted or removed).
fn moved(d: &mut LayerDiff, i: usize, diff_id: Option<&Digest>, other: &[Digest], this: &str, that: &str) {
    let Some(diff_id) = diff_id else { return };
    if let Some(j) = other.iter().position(|o| o == diff_id) {
        if j != i {
            d.notes.push(format!(
                "{this}'s layer {} has the same content (diffID) as {that}'s layer {}",
                i + 1,
                j + 1
            ));
        }
    }
}

/// The `created_by` of the history entry that made each layer, when the
/// history has exactly one non-empty entry per layer.
fn layer_history(config: &Value, layers: usize) -> Vec<Option<String>> {
    let entries: Vec<&Value> = config
        .get("history")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .filter(|e| e.get("empty_layer").and_then(Value::as_bool) != Some(true))
                .collect()
        })
        .unwrap_or_default();
    if entries.len() != layers {
        return Vec::new();
    }
    entries
        .into_iter()
        .map(|e| e.get("created_by").map(value_text))
        .collect()
}

/// The entries of layer `i` of `image`, streamed from its store; the rest
/// of the blob is read too, so a blob that does not match its digest is an
/// error rather than a silently wrong answer.
/// Says what differs inside the first few changed regular files of a
/// layer pair (small enough to read: see `content`). A file that cannot be
/// read back is left unexplained: the entry change is still reported.
fn explain_contents(a: &Image, b: &Image, x: &Descriptor, y: &Descriptor, d: &mut LayerDiff) {
    use bake_layer::{EntryKind, FileEffect};
    let (pa, pb) = (a.store().path(&x.digest), b.store().path(&y.digest));
    let mut explained = 0;
    for e in &mut d.entries {
        if explained == crate::content::MAX_PER_LAYER {
            break;
        }
        let (Some(ia), Some(ib)) = (&e.a, &e.b) else {
            continue;
        };
        let small =
            |i: &crate::report::EntryInfo| i.kind == EntryKind::File && i.size <= crate::content::MAX_FILE;
        if !e.fields.iter().any(|f| f.field == "content") || !small(ia) || !small(ib) {
            continue;
        }
        let path = format!("/{}", e.path.trim_start_matches("./").trim_start_matches('/'));
        let read = |layer: &std::path::Path, image: &Image| match bake_layer::file_in_layer(
            layer,
            &path,
            crate::content::MAX_FILE,
            image.limits(),
        ) {
            Ok(FileEffect::File(bytes)) => Some(bytes),
            _ => None,
        };
        if let (Some(ca), Some(cb)) = (read(&pa, a), read(&pb, b)) {
            e.content = Some(crate::content::explain(&ca, &cb));
            explained += 1;
        }
    }
}

fn read_entries(image: &Image, i: usize, desc: &Descriptor) -> Result<Vec<EntrySummary>, DiffError> {
    let mut r = image
        .store()
        .open_verified(&desc.digest)
        .map_err(|source| DiffError::Blob {
            image: image.name().to_owned(),
            layer: i + 1,
            digest: desc.digest.clone(),
            source: Box::new(source),
        })?;
    let entries = bake_layer::read_layer_entries_with_limits(&mut r, image.limits()).map_err(|source| {
        DiffError::Layer {
            image: image.name().to_owned(),
            layer: i + 1,
            digest: desc.digest.clone(),
            source: Box::new(source),
        }
    })?;
    io::copy(&mut r, &mut io::sink()).map_err(|source| DiffError::LayerIo {
        image: image.name().to_owned(),
        layer: i + 1,
        digest: desc.digest.clone(),
        source: Box::new(source),
    })?;
    Ok(entries)
}

/// Where the compressed blobs of layer `i` first differ: read side by side
/// up to the first differing byte, then A's stream decoded up to there to
/// find the uncompressed offset and chunk.
fn first_difference(
    (a, x): (&Image, &Descriptor),
    (b, y): (&Image, &Descriptor),
    i: usize,
) -> Result<Option<CompressedDifference>, DiffError> {
    let open = |image: &Image, desc: &Descriptor| {
        image
            .store()
            .open_verified(&desc.digest)
            .map_err(|source| DiffError::Blob {
                image: image.name().to_owned(),
                layer: i + 1,
                digest: desc.digest.clone(),
                source: Box::new(source),
            })
    };
    let io_err = |image: &Image, desc: &Descriptor| {
        let (name, digest) = (image.name().to_owned(), desc.digest.clone());
        move |source: io::Error| DiffError::LayerIo {
            image: name,
            layer: i + 1,
            digest,
            source: Box::new(source),
        }
    };
    let (mut ra, mut rb) = (open(a, x)?, open(b, y)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut ra, &mut ba).map_err(io_err(a, x))?;
        let nb = read_full(&mut rb, &mut bb).map_err(io_err(b, y))?;
        let same = ba[..na.min(nb)]
            .iter()
            .zip(&bb[..na.min(nb)])
            .take_while(|(p, q)| p == q)
            .count();
        offset += same as u64;
        if same < na.min(nb) || na != nb {
            break;
        }
        if na == 0 {
            // The same bytes: not a compression difference after all.
            return Ok(None);
        }
    }
    let uncompressed_offset = bake_layer::decoded_prefix_len(open(a, x)?.take(offset));
    Ok(Some(CompressedDifference {
        offset,
        uncompressed_offset,
        chunk: uncompressed_offset / bake_layer::COMPRESSION_CHUNK as u64,
    }))
}

/// Reads until `buf` is full or the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the first bytes of layer `i`'s blob say about its compression.
fn compression_info(image: &Image, i: usize, desc: &Descriptor) -> Result<CompressionInfo, DiffError> {
    let blob_err = |source| DiffError::Blob {
        image: image.name().to_owned(),
        layer: i + 1,
        digest: desc.digest.clone(),
        source: Box::new(source),
    };
    let mut head = Vec::new();
    image
        .store()
        .open_verified(&desc.digest)
        .map_err(blob_err)?
        .take(HEADER_BYTES)
        .read_to_end(&mut head)
        .map_err(|source| DiffError::LayerIo {
            image: image.name().to_owned(),
            layer: i + 1,
            digest: desc.digest.clone(),
            source: Box::new(source),
        })?;
    Ok(sniff(&head))
}

/// The compression format by magic bytes, and the gzip header's fields.
pub(crate) fn sniff(head: &[u8]) -> CompressionInfo {
    let format = |f: &str| CompressionInfo {
        format: f.to_owned(),
        gzip: None,
    };
    let name = bake_layer::compression_name(head);
    if name != "gzip" {
        return format(name);
    }
    let Some(fixed) = head.get(..10) else {
        return format("gzip");
    };
    let flags = fixed[3];
    let mut name = None;
    if flags & 0x08 != 0 {
        let mut at = 10;
        if flags & 0x04 != 0 {
            // FEXTRA: XLEN (little-endian) bytes follow.
            at = head
                .get(10..12)
                .map_or(usize::MAX, |x| 12 + usize::from(u16::from_le_bytes([x[0], x[1]])));
        }
        if let Some(rest) = head.get(at..) {
            if let Some(end) = rest.iter().position(|&c| c == 0) {
                name = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    CompressionInfo {
        format: "gzip".into(),
        gzip: Some(GzipHeader {
            mtime: u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            xfl: fixed[8],
            os: fixed[9],
            flags,
            name,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats_and_gzip_headers() {
        assert_eq!(sniff(&[0u8; 512]).format, "none");
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 1]).format, "zstd");
        assert_eq!(sniff(b"\xfd7zXZ\x00..").format, "xz");
        // A skippable frame first (what pzstd writes) is zstd too.
        assert_eq!(sniff(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]).format, "zstd");
        let mut gz = vec![0x1f, 0x8b, 8, 0x08, 0x10, 0, 0, 0, 2, 3];
        gz.extend_from_slice(b"layer.tar\0rest");
        let info = sniff(&gz);
        assert_eq!(
            info.gzip,
            Some(GzipHeader {
                mtime: 16,
                xfl: 2,
                os: 3,
                flags: 8,
                name: Some("layer.tar".into())
            })
        );
        // FEXTRA before FNAME; a truncated header is still gzip.
        let gz = [0x1f, 0x8b, 8, 0x0c, 0, 0, 0, 0, 0, 255, 2, 0, 9, 9, b'n', 0];
        assert_eq!(sniff(&gz).gzip.unwrap().name.as_deref(), Some("n"));
        assert_eq!(sniff(&[0x1f, 0x8b, 8]).gzip, None);
    }
}
