//! The report: what differs between two images, as data.
//!
//! Every type serialises with camelCase keys in declaration order, every
//! key always present (`null` or `[]` when there is nothing to say), maps
//! sorted: the `--json` shape is stable and byte-for-byte the same for the
//! same two images.

use bake_digest::Digest;
use bake_layer::EntryKind;
use serde::Serialize;
use serde_json::Value;

/// How two images differ, top-down.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    /// Nothing differs: the manifests are the same (or, when one side is a
    /// docker-archive, which has no manifest, the config and every layer
    /// are).
    pub identical: bool,
    pub a: ImageSummary,
    pub b: ImageSummary,
    pub manifest: ManifestDiff,
    pub config: ConfigDiff,
    /// One per layer position, for the longer of the two layer lists.
    pub layers: Vec<LayerDiff>,
}

/// Which image a side of the report is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The image as the caller named it.
    pub name: String,
    /// The platform manifest's digest; `None` for a docker-archive.
    pub manifest: Option<Digest>,
    pub config: Digest,
    pub platform: String,
    pub layers: usize,
}

/// A value on each side; `None` where that side has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    pub a: Option<T>,
    pub b: Option<T>,
}

impl<T: PartialEq> Change<T> {
    pub(crate) fn new(a: Option<T>, b: Option<T>) -> Change<T> {
        Change { a, b }
    }

    /// Whether the two sides differ.
    pub fn differs(&self) -> bool {
        self.a != self.b
    }
}

/// One named field whose value differs (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field: a JSON path in the manifest or config (`created`,
    /// `config.Cmd`), or for a layer entry one of `type`, `content`, `size`,
    /// `mode`, `uid`, `gid`, `uname`, `gname`, `mtime`, `linkTarget`,
    /// `device`, `format`, `name`, `xattr:NAME`, `pax:KEY`.
    pub field: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

/// One key of a map (annotations, labels, environment…) that was added,
/// removed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    pub key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// The manifests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDiff {
    /// Both sides have a manifest and it is the same one.
    pub identical: bool,
    /// `mediaType` as written in each manifest.
    pub media_type: Option<Change<Value>>,
    /// The config digests, when they differ.
    pub config: Option<Change<Digest>>,
    /// The layer counts, when they differ.
    pub layer_count: Option<Change<usize>>,
    pub annotations: Vec<KeyChange>,
    /// Any other field (`schemaVersion`, `subject`, `artifactType`, the
    /// config descriptor's `mediaType` or annotations…).
    pub other: Vec<FieldChange>,
    /// Why some differences cannot be named (a side with no manifest,
    /// bytes that differ only in encoding).
    pub notes: Vec<String>,
}

/// The configs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDiff {
    /// Same config digest.
    pub identical: bool,
    /// Whole-value changes, in a fixed order: `created`, `author`,
    /// `architecture`, `os`, `variant`, `os.version`, `os.features`, then
    /// `config.Entrypoint`, `config.Cmd`, `config.User`,
    /// `config.WorkingDir`, `config.StopSignal`, other `config.*` fields
    /// and other top-level fields by name (`config.Env` appears here only
    /// when the variables are the same but in another order).
    pub fields: Vec<FieldChange>,
    /// `config.Env`, per variable.
    pub env: Vec<KeyChange>,
    /// `config.Labels`, per key.
    pub labels: Vec<KeyChange>,
    /// `config.ExposedPorts`, per port (values are the JSON, normally `{}`).
    pub exposed_ports: Vec<KeyChange>,
    /// `config.Volumes`, per path.
    pub volumes: Vec<KeyChange>,
    pub history: Vec<HistoryChange>,
    /// `rootfs.diff_ids`, per position.
    pub diff_ids: Vec<IndexChange>,
    pub notes: Vec<String>,
}

/// One `history` entry (0-based, as in the JSON array) that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryChange {
    pub index: usize,
    /// `created`, `created_by`, `author`, `comment`, `empty_layer`…; every
    /// field of the entry when only one side has it.
    pub fields: Vec<FieldChange>,
}

/// One position of a list (0-based) that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexChange {
    pub index: usize,
    pub a: Option<Digest>,
    pub b: Option<Digest>,
}

/// How the two layers at one position compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LayerStatus {
    /// Same digest: the same bytes.
    Identical,
    /// Same diffID, other digest: the same tar, compressed differently.
    CompressionOnly,
    /// Other diffID: the tars differ; `entries` says how.
    ContentDiffers,
    /// Only image A has a layer here.
    OnlyInA,
    /// Only image B has a layer here.
    OnlyInB,
}

/// The layers at one position (paired by index).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerDiff {
    /// 1-based, like `bake build`'s output.
    pub layer: usize,
    pub status: LayerStatus,
    /// The `created_by` of the history entry that made the layer (B's,
    /// else A's), when the history has one per layer.
    pub created_by: Option<String>,
    pub digest: Change<Digest>,
    pub diff_id: Change<Digest>,
    pub media_type: Change<String>,
    pub size: Change<u64>,
    /// The layer descriptors' annotations.
    pub annotations: Vec<KeyChange>,
    /// For [`LayerStatus::CompressionOnly`]: what the compressed streams'
    /// headers say.
    pub compression: Option<Change<CompressionInfo>>,
    /// For [`LayerStatus::CompressionOnly`]: where the compressed bytes
    /// first differ.
    pub first_difference: Option<CompressedDifference>,
    /// Counts of the entry changes (when the entries were read).
    pub summary: Option<EntryCounts>,
    /// The entries both layers have are in another order.
    pub order: Option<OrderChange>,
    /// Every entry added, removed or changed, sorted by path.
    pub entries: Vec<EntryChange>,
    pub notes: Vec<String>,
}

/// Where two compressions of the same tar first differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompressedDifference {
    /// Offset of the first differing compressed byte (the shorter blob's
    /// size when one is a prefix of the other).
    pub offset: u64,
    /// How many uncompressed bytes A's stream decodes to before that byte.
    pub uncompressed_offset: u64,
    /// The chunk of bake's chunked compression (`uncompressedOffset` / 1
    /// MiB) that byte belongs to.
    pub chunk: u64,
}

/// What a compressed layer's first bytes say about how it was compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompressionInfo {
    /// `gzip`, `zstd`, `xz`, or `none` (a plain tar).
    pub format: String,
    /// The gzip header, for gzip.
    pub gzip: Option<GzipHeader>,
}

/// The fixed part of a gzip header (RFC 1952), which a reproducible
/// compressor pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GzipHeader {
    /// MTIME (0: none).
    pub mtime: u32,
    /// XFL: 2 for the slowest, best compression, 4 for the fastest.
    pub xfl: u8,
    /// OS (255: unknown, 3: Unix).
    pub os: u8,
    /// FLG bits (FTEXT 1, FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16).
    pub flags: u8,
    /// FNAME, when present.
    pub name: Option<String>,
}

/// How many entries were added, removed and changed, and how often each
/// field changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryCounts {
    pub entries: Change<usize>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Field name (as in [`FieldChange::field`]) → entries where it changed.
    pub fields: std::collections::BTreeMap<String, usize>,
}

/// The first place where the entries both layers have come in another
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderChange {
    /// Position among the entries both layers have (0-based).
    pub position: usize,
    /// The entry at that position in A and in B.
    pub a: String,
    pub b: String,
    /// Both layers have exactly the same entries.
    pub same_entries: bool,
    /// Whether each layer's entries are sorted by name (bytewise), as bake
    /// writes them.
    pub a_sorted: bool,
    pub b_sorted: bool,
}

/// Whether an entry was added, removed or changed (B relative to A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryChangeKind {
    Added,
    Removed,
    Changed,
}

/// What an OCI whiteout entry (`.wh.NAME`) does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Whiteout {
    /// `DIR/.wh.NAME`: deletes `DIR/NAME` from the layers below.
    Deletes(String),
    /// `DIR/.wh..wh..opq`: hides everything the layers below have in `DIR/`.
    Opaque(String),
}

/// One layer entry that was added, removed or changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryChange {
    /// The entry's name as stored (B's when both have it), directories
    /// ending with `/`. Entries are paired by name with any leading `./`
    /// or `/` and trailing `/` ignored (a difference there is the field
    /// `name`).
    pub path: String,
    /// 0, or n for the (n+1)th entry of the same name in one layer.
    pub occurrence: usize,
    pub change: EntryChangeKind,
    /// Set when the entry is a whiteout.
    pub whiteout: Option<Whiteout>,
    pub a: Option<EntryInfo>,
    pub b: Option<EntryInfo>,
    /// For a changed entry, what changed.
    pub fields: Vec<FieldChange>,
    /// For a regular file whose content changed (on both sides at most
    /// 1 MiB, the first few per layer): what differs inside it.
    pub content: Option<ContentDiff>,
}

/// What differs inside a changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentDiff {
    /// `text` (both sides UTF-8 without NUL) or `binary`.
    pub kind: String,
    /// The sizes of both sides.
    pub sizes: Change<u64>,
    /// For text: a unified diff (`---`/`+++` header, `@@` hunks, `-`/`+`/` `
    /// lines), at most 40 lines, control characters escaped.
    pub diff: Vec<String>,
    /// Lines of the diff left out.
    pub more_lines: usize,
    /// For binaries: the offset of the first differing byte (or where the
    /// shorter side ends)…
    pub first_difference: Option<u64>,
    /// …and 16 bytes of each side from the 16-byte boundary before it, in
    /// hex and ASCII.
    pub window_a: Option<String>,
    pub window_b: Option<String>,
    /// Both sides are gzip: their headers' fields.
    pub gzip: Option<Change<GzipHeader>>,
}

/// The main facts about one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub sha256: Option<Digest>,
    pub link_target: Option<String>,
}
