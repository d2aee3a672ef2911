//! Pinned, parallel, deterministic compression of the layer stream, and
//! format detection for reading.
//!
//! The uncompressed tar stream is cut into fixed [`CHUNK`]-sized chunks (the
//! last one shorter). Chunk boundaries depend only on the byte offset, never
//! on write sizes or on the number of threads, and each chunk is compressed
//! by a pure function of (its bytes, the 32 KiB before it, whether it is the
//! last), so the output is the same whether chunks are compressed on one
//! thread or many:
//!
//! - **gzip** (pigz-style): one gzip member with a fixed header. Each chunk is
//!   raw deflate from a fresh zlib-rs compressor, primed with the previous
//!   chunk's last 32 KiB as a dictionary; every chunk but the last ends with a
//!   sync flush (byte-aligned, no final block), the last with the final
//!   block, so the concatenation is one valid deflate stream. The CRC-32 of
//!   each chunk is combined in order; the trailer holds it and the size.
//! - **zstd**: every chunk is an independent single-threaded frame (content
//!   size and checksum in its header/trailer); concatenated frames are a
//!   valid zstd stream.
//!
//! Workers run on a small pool of OS threads; the writer keeps at most two
//! chunks per worker in flight, so memory does not grow with the layer.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use crate::{Compression, LayerError};

/// Uncompressed bytes per chunk. Part of the output format: changing it
/// changes every compressed digest. (Exported as `COMPRESSION_CHUNK`, so
/// `bake diff` can say which chunk two compressed layers first differ in.)
pub const CHUNK: usize = 1 << 20;

/// The deflate window: how much of the previous chunk primes the next one.
const WINDOW: usize = 32 * 1024;

/// Kinds of recycled buffers ([`Compressor::free`]).
const INPUT: usize = 0;
const OUTPUT: usize = 1;
const DICT: usize = 2;

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// A stable identifier of the exact scheme, level and library, for cache
    /// keys and the output-format version: `none`,
    /// `gzip-6/zlib-rs/chunked-1MiB`, `zstd-3/libzstd-1.5.7/chunked-1MiB`. It
    /// changes when the bytes could change.
    pub fn id(&self) -> String {
        let chunk = CHUNK >> 20;
        match self {
            Compression::None => "none".to_owned(),
            Compression::Gzip { level } => format!("gzip-{level}/zlib-rs/chunked-{chunk}MiB"),
            Compression::Zstd { level } => format!(
                "zstd-{level}/libzstd-{}/chunked-{chunk}MiB",
                zstd::zstd_safe::version_string()
            ),
        }
    }

    /// Checks the level against the range the recipe language allows.
    pub(crate) fn validate(&self) -> Result<(), LayerError> {
        match *self {
            Compression::None => Ok(()),
            Compression::Gzip { level } if (1..=9).contains(&level) => Ok(()),
            Compression::Gzip { level } => Err(LayerError::Level {
                algorithm: "gzip",
                level: i64::from(level),
                range: "1 to 9",
            }),
            Compression::Zstd { level } if (1..=19).contains(&level) => Ok(()),
            Compression::Zstd { level } => Err(LayerError::Level {
                algorithm: "zstd",
                level: i64::from(level),
                range: "1 to 19",
            }),
        }
    }
}

/// One chunk to compress.
struct Job {
    seq: u64,
    data: Vec<u8>,
    /// The last [`WINDOW`] bytes before this chunk (gzip only; empty for the
    /// first chunk).
    dict: Vec<u8>,
    last: bool,
    /// An empty buffer to compress into (recycled, so memory stays flat).
    out: Vec<u8>,
}

/// A compressed chunk.
struct Done {
    seq: u64,
    /// The input and dictionary buffers, handed back for reuse.
    data: Vec<u8>,
    dict: Vec<u8>,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
}

/// A worker: compresses one chunk at a time, each with a compressor made
/// for that chunk alone. Nothing is kept from one chunk to the next, because
/// a reused compressor is not as good as new: zlib-rs after `reset()` keeps
/// part of its match state (its hash chains and window), and at levels 1 to
/// 6 a chunk's bytes then depended on what that compressor had compressed
/// before, so a layer's digest depended on which worker got which chunk
/// (issue #16). A fresh compressor per chunk makes each chunk's bytes a pure
/// function of (chunk, dictionary, is-last, level); its cost (allocating and
/// zeroing ~ 300 KiB of zlib state, or zstd's tables, per 1 MiB chunk) is
/// measured in BENCHMARKS.md.
struct Worker {
    compression: Compression,
}

impl Worker {
    fn new(compression: Compression) -> Worker {
        Worker { compression }
    }

    fn run(&mut self, job: Job) -> Done {
        let mut crc = crc32fast::Hasher::new();
        let mut out = job.out;
        let result = match self.compression {
            Compression::None => {
                out.extend_from_slice(&job.data);
                Ok(())
            }
            Compression::Gzip { level } => {
                crc.update(&job.data);
                deflate_chunk(level, &job.data, &job.dict, job.last, &mut out)
            }
            Compression::Zstd { level } => zstd_chunk(level, &job.data, &mut out),
        };
        Done {
            seq: job.seq,
            data: job.data,
            dict: job.dict,
            out: result.map(|()| out),
            crc,
        }
    }
}

/// One zstd frame of `data` into `out`, from a context made for it alone
/// (zstd documents context reuse as a speed optimisation only; a fresh
/// context rules out any dependence on earlier frames by construction).
fn zstd_chunk(level: i32, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    use zstd::zstd_safe::CParameter;
    let mut z = zstd::bulk::Compressor::new(level)?;
    // Single-threaded always: zstd's multi-threaded mode gives other bytes.
    // Checksum on; content size on (it is known).
    z.set_parameter(CParameter::NbWorkers(0))?;
    z.set_parameter(CParameter::ChecksumFlag(true))?;
    z.set_parameter(CParameter::ContentSizeFlag(true))?;
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    z.compress_to_buffer(data, out)?;
    Ok(())
}

/// Raw deflate of one chunk, appended to `out`, from a compressor made for
/// this chunk alone (see [`Worker`]: a reset one is not the same), primed
/// with `dict`. Non-final chunks end with a sync flush: byte-aligned, no
/// final block, so the next chunk's deflate data can follow directly.
///
/// The output space offered to each deflate call is fixed too (first room
/// for the chunk plus its worst-case growth, then 64 KiB at a time), never
/// the spare capacity of the recycled buffer: where zlib runs out of output
/// space can change its bytes (a sync flush that ends exactly at the end of
/// the space is repeated), so that must not depend on earlier chunks either.
fn deflate_chunk(level: u32, data: &[u8], dict: &[u8], last: bool, out: &mut Vec<u8>) -> io::Result<()> {
    use flate2::{FlushCompress, Status};
    let deflate_err = |e: flate2::CompressError| io::Error::other(format!("deflate failed: {e}"));
    let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(deflate_err)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut room = data.len() + data.len() / 64 + 1024;
    loop {
        let consumed = usize::try_from(c.total_in())
            .unwrap_or(usize::MAX)
            .min(data.len());
        let start = out.len();
        out.resize(start + room, 0);
        let before = c.total_out();
        let status = c.compress(&data[consumed..], &mut out[start..], flush);
        let wrote = usize::try_from(c.total_out() - before)
            .unwrap_or(usize::MAX)
            .min(room);
        out.truncate(start + wrote);
        let status = status.map_err(deflate_err)?;
        let all_in = c.total_in() == data.len() as u64;
        match status {
            Status::StreamEnd => return Ok(()),
            // A sync flush is complete once all input is in and the output
            // space was not filled (zlib's rule for Z_SYNC_FLUSH).
            Status::Ok | Status::BufError if !last && all_in && wrote < room => return Ok(()),
            Status::Ok | Status::BufError => room = 64 * 1024,
        }
    }
}

/// Worker threads fed through a shared queue.
struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize, compression: Compression) -> io::Result<Pool> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("bake-compress-{i}"))
                .spawn(move || {
                    let mut worker = Worker::new(compression);
                    loop {
                        // The lock is held only while waiting for a job.
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if done.send(worker.run(job)).is_err() {
                            return;
                        }
                    }
                })?;
            handles.push(handle);
        }
        Ok(Pool {
            jobs: Some(job_tx),
            done: done_rx,
            handles,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue stops the workers once their current chunk is done.
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The compressing end of the pipeline: a [`Write`] that cuts what it is
/// given into chunks, compresses them on `threads` workers and writes the
/// results, in order, to `out`.
pub(crate) struct Compressor<W: Write> {
    out: W,
    compression: Compression,
    buf: Vec<u8>,
    /// The last [`WINDOW`] bytes of the previous chunk (gzip).
    tail: Vec<u8>,
    pool: Option<Pool>,
    /// Used when there is no pool.
    inline: Worker,
    max_in_flight: usize,
    next_seq: u64,
    next_out: u64,
    ready: BTreeMap<u64, Done>,
    /// Buffers handed back by workers, reused so memory stays flat: input
    /// chunks, compressed chunks, dictionaries.
    free: [Vec<Vec<u8>>; 3],
    crc: crc32fast::Hasher,
    total: u64,
}

/// Compresses the tar stream `r` as it is (its bytes are not re-tarred)
/// into `out` with the same pinned, chunked compressor as every layer bake
/// writes, and returns `out`: the output is a function of the bytes of `r`
/// and `compression` only (not of the thread count), so a layer that a
/// docker-archive holds uncompressed gets the same compressed digest on
/// every build. Its diffID stays the sha256 of `r`.
pub fn compress_tar<R: Read, W: Write>(mut r: R, compression: Compression, out: W) -> io::Result<W> {
    compression
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut c = Compressor::new(out, compression)?;
    io::copy(&mut r, &mut c)?;
    c.finish()
}

/// Worker threads when the caller does not say: one per core the process may
/// run on, at most 8 (more buys nothing on the few-core hosts this
/// targets and costs memory: two chunks in flight per worker).
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

impl<W: Write> Compressor<W> {
    /// A compressor with [`default_threads`] workers.
    pub(crate) fn new(out: W, compression: Compression) -> io::Result<Compressor<W>> {
        Compressor::with_threads(out, compression, default_threads())
    }

    /// A compressor using `threads` worker threads (0 or 1: compress on the
    /// calling thread). The output bytes do not depend on `threads`.
    pub(crate) fn with_threads(
        out: W,
        compression: Compression,
        threads: usize,
    ) -> io::Result<Compressor<W>> {
        let pool = match compression {
            Compression::None => None,
            _ if threads <= 1 => None,
            _ => Some(Pool::new(threads, compression)?),
        };
        let mut c = Compressor {
            out,
            compression,
            buf: Vec::with_capacity(CHUNK),
            tail: Vec::new(),
            pool,
            inline: Worker::new(compression),
            max_in_flight: 2 * threads.max(1),
            next_seq: 0,
            next_out: 0,
            ready: BTreeMap::new(),
            free: Default::default(),
            crc: crc32fast::Hasher::new(),
            total: 0,
        };
        if let Compression::Gzip { level } = compression {
            c.out.write_all(&gzip_header(level))?;
        }
        Ok(c)
    }

    /// Hands the buffered chunk to a worker (or compresses it here).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self.take(INPUT).unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let data = std::mem::replace(&mut self.buf, fresh);
        if let Compression::None = self.compression {
            // Nothing to compress: pass the bytes on in the same fixed pieces.
            self.out.write_all(&data)?;
            self.recycle(INPUT, data);
            return Ok(());
        }
        let dict = match self.compression {
            Compression::Gzip { .. } => {
                let mut next = self.take(DICT).unwrap_or_default();
                next.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
                std::mem::replace(&mut self.tail, next)
            }
            _ => Vec::new(),
        };
        let job = Job {
            seq: self.next_seq,
            data,
            dict,
            last,
            out: self.take(OUTPUT).unwrap_or_default(),
        };
        self.next_seq += 1;
        match &self.pool {
            Some(pool) => {
                let sent = pool.jobs.as_ref().map(|tx| tx.send(job).is_ok());
                if sent != Some(true) {
                    return Err(worker_gone());
                }
                while self.next_seq - self.next_out > self.max_in_flight as u64 {
                    self.receive_one()?;
                }
            }
            None => {
                let done = self.inline.run(job);
                self.ready.insert(done.seq, done);
                self.write_ready()?;
            }
        }
        Ok(())
    }

    /// Waits for one compressed chunk and writes whatever is now in order.
    fn receive_one(&mut self) -> io::Result<()> {
        let pool = self.pool.as_ref().ok_or_else(worker_gone)?;
        let done = pool.done.recv().map_err(|_| worker_gone())?;
        self.ready.insert(done.seq, done);
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(done) = self.ready.remove(&self.next_out) {
            let out = done.out?;
            self.out.write_all(&out)?;
            self.crc.combine(&done.crc);
            self.recycle(INPUT, done.data);
            self.recycle(OUTPUT, out);
            self.recycle(DICT, done.dict);
            self.next_out += 1;
        }
        Ok(())
    }

    fn take(&mut self, kind: usize) -> Option<Vec<u8>> {
        self.free[kind].pop()
    }

    fn recycle(&mut self, kind: usize, mut buf: Vec<u8>) {
        if self.free[kind].len() <= self.max_in_flight && buf.capacity() > 0 {
            buf.clear();
            self.free[kind].push(buf);
        }
    }

    /// Compresses what is buffered as the last chunk, ends the stream and
    /// returns `out`.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        // The last chunk is sent even when empty (an empty layer): gzip needs
        // a final block, zstd at least one frame.
        if !self.buf.is_empty() || self.next_seq == 0 {
            self.dispatch(true)?;
        }
        while self.next_out < self.next_seq {
            self.receive_one()?;
        }
        if let Compression::Gzip { .. } = self.compression {
            let crc = std::mem::take(&mut self.crc).finalize();
            self.out.write_all(&crc.to_le_bytes())?;
            // ISIZE: the size modulo 2^32, as RFC 1952 says.
            self.out.write_all(&(self.total as u32).to_le_bytes())?;
        }
        let Compressor { mut out, pool, .. } = self;
        drop(pool);
        out.flush()?;
        Ok(out)
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a compression worker stopped unexpectedly")
}

/// The pinned gzip header: no name, comment or extra field, mtime 0, XFL
/// from the level as zlib sets it, OS byte 255 ("unknown").
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9.. => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sent only once more data arrives, so the last
        // chunk is known to be last when `finish` sends it.
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.total += n as u64;
        Ok(n)
    }

    /// Does not flush the compressor: chunk boundaries are fixed by offset.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the first bytes of a stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Plain,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

/// The magic of a zstd skippable frame: 0x184D2A50 to 0x184D2A5F, little-endian.
pub(crate) fn is_zstd_skippable(head: &[u8]) -> bool {
    matches!(head, [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..])
}

/// The compression the first bytes of a stream say it has, by name:
/// `gzip`, `zstd` (a skippable frame first included), `xz`, `bzip2` or
/// `none`. The one place magic bytes are read (bake-diff names formats
/// with it).
pub fn compression_name(head: &[u8]) -> &'static str {
    match sniff(head) {
        Format::Plain => "none",
        Format::Gzip => "gzip",
        Format::Zstd => "zstd",
        Format::Xz => "xz",
        Format::Bzip2 => "bzip2",
    }
}

fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || is_zstd_skippable(head) {
        // A zstd stream may open with a skippable frame (pzstd writes one);
        // the decoder skips it.
        Format::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Format::Xz
    } else if head.starts_with(b"BZh") {
        Format::Bzip2
    } else {
        Format::Plain
    }
}

/// Detects the compression of `r` by its magic bytes and returns a reader of
/// the decompressed stream. gzip streams may have several members, zstd and
/// xz several frames/streams, as their command-line tools accept.
pub(crate) fn decompress<'r, R: Read + 'r>(r: R) -> io::Result<Box<dyn Read + 'r>> {
    let (format, whole) = sniff_reader(r)?;
    decompress_format(format, whole)
}

/// A reader whose first bytes were read to sniff its format, then given back.
pub(crate) type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `r` and says what they are; the reader returned
/// yields the whole stream, those bytes included.
pub(crate) fn sniff_reader<R: Read>(mut r: R) -> io::Result<(Format, Sniffed<R>)> {
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head[..got].to_vec();
    let format = sniff(&head);
    Ok((format, io::Cursor::new(head).chain(r)))
}

/// A reader of `whole` decompressed as `format` says.
pub(crate) fn decompress_format<'r, R: Read + 'r>(
    format: Format,
    whole: R,
) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match format {
        Format::Plain => Box::new(whole),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Format::Zstd => Box::new(zstd::Decoder::new(whole)?),
        Format::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        Format::Bzip2 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bzip2-compressed archives are not supported (use gzip, zstd or xz)",
            ));
        }
    })
}

/// How many uncompressed bytes the first bytes of a compressed layer
/// decode to: `prefix` gives the start of a gzip, zstd or plain stream (cut
/// anywhere; the cut is not an error here, nor is anything after a stream
/// error). With bake's chunked output, `n / COMPRESSION_CHUNK` of the
/// result is the chunk that the byte after the prefix belongs to (a cut in
/// the few bytes that end a chunk, its sync flush or frame checksum, counts
/// as the next): a deflate decoder emits every symbol before the cut, a
/// zstd decoder every block, and each chunk starts a frame. `bake diff` uses it to name the chunk
/// where two compressions of the same tar first differ.
pub fn decoded_prefix_len<R: Read>(prefix: R) -> u64 {
    let Ok(mut r) = decompress(prefix) else {
        return 0;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 3 },
    ];

    fn compress(data: &[u8], c: Compression, threads: usize, piece: usize) -> Vec<u8> {
        let mut w = Compressor::with_threads(Vec::new(), c, threads).unwrap();
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
            w.flush().unwrap();
        }
        w.finish().unwrap()
    }

    /// Compressible but not trivially so: text-like runs from a small
    /// vocabulary, with pseudo-random bytes mixed in, so matches cross
    /// chunk boundaries and the dictionary matters.
    fn sample(len: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"layer ",
            b"digest ",
            b"sha256 ",
            b"tar ",
            b"bake ",
            b"oci\n",
            b"0123456789",
            b"chunk ",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 == 0 {
                v.extend_from_slice(&x.to_le_bytes());
            } else {
                v.extend_from_slice(words[(x >> 32) as usize % words.len()]);
            }
        }
        v.truncate(len);
        v
    }

    fn gunzip_single_member(gz: &[u8]) -> Vec<u8> {
        // A single-member decoder: proves the output is one gzip member.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut back).unwrap();
        back
    }

    /// A tar compressed by [`compress_tar`] has the bytes of the same layer
    /// written compressed: one compressor, one output format (over several
    /// chunks, so chunking and priming are the same too).
    #[test]
    fn compress_tar_gives_the_bytes_write_layer_gives() {
        let sources = [crate::Source::Inline {
            path: "/big".into(),
            content: sample(3 * CHUNK + 12_345),
            mode: 0o644,
            owner: crate::Owner::default(),
            capabilities: None,
        }];
        let opts = |compression| crate::LayerOptions {
            epoch: 1_700_000_000,
            compression,
            tmp_dir: std::env::temp_dir(),
            below_links: Default::default(),
        };
        let (tar, _) = crate::write_layer(&sources, &opts(Compression::None), Vec::new()).unwrap();
        for c in [Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }] {
            let (written, _) = crate::write_layer(&sources, &opts(c), Vec::new()).unwrap();
            let compressed = compress_tar(&tar[..], c, Vec::new()).unwrap();
            assert!(
                compressed == written,
                "{c:?}: compress_tar differs from write_layer"
            );
            assert_eq!(compress_tar(&tar[..], c, Vec::new()).unwrap(), compressed);
        }
        assert!(compress_tar(&tar[..], Compression::Gzip { level: 0 }, Vec::new()).is_err());
    }

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes() {
        for len in [
            0,
            1,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            2 * CHUNK + 12345,
        ] {
            let data = sample(len);
            for c in CODECS {
                let one = compress(&data, c, 1, data.len());
                for threads in [2, 4] {
                    assert_eq!(
                        one,
                        compress(&data, c, threads, data.len()),
                        "{c:?} len {len} threads {threads}"
                    );
                }
                assert_eq!(one, compress(&data, c, 2, 4099), "{c:?} len {len}");
                assert_eq!(one, compress(&data, c, 4, 512), "{c:?} len {len}");
                let mut back = Vec::new();
                decompress(&one[..]).unwrap().read_to_end(&mut back).unwrap();
                assert!(back == data, "{c:?} len {len}: round trip differs");
                match c {
                    Compression::Gzip { .. } => assert!(gunzip_single_member(&one) == data),
                    Compression::Zstd { .. } => assert!(zstd::decode_all(&one[..]).unwrap() == data),
                    Compression::None => assert!(one == data),
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_writes_give_the_same_bytes() {
        let data = sample(CHUNK + 3000);
        for c in CODECS {
            assert_eq!(
                compress(&data, c, 1, data.len()),
                compress(&data, c, 3, 1),
                "{c:?}"
            );
        }
    }

    #[test]
    fn chunk_boundaries_are_fixed_by_offset() {
        // zstd: one frame per started chunk, an empty stream is one frame.
        for (len, frames) in [(0, 1), (1, 1), (CHUNK, 1), (CHUNK + 1, 2), (3 * CHUNK, 3)] {
            let zst = compress(&sample(len), Compression::Zstd { level: 3 }, 2, 7777);
            let mut count = 0;
            let mut rest = &zst[..];
            while !rest.is_empty() {
                let size = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
                assert!(size > 0);
                rest = &rest[size..];
                count += 1;
            }
            assert_eq!(count, frames, "zstd frames for {len} bytes");
        }
        // gzip: every non-final chunk ends with a sync flush marker.
        let data = sample(2 * CHUNK + 1);
        let gz = compress(&data, Compression::Gzip { level: 6 }, 2, 100_000);
        let markers = gz.windows(5).filter(|w| *w == [0, 0, 0, 0xff, 0xff]).count();
        assert!(
            markers >= 2,
            "expected sync flush markers between chunks, found {markers}"
        );
    }

    #[test]
    fn gzip_member_is_pinned_and_trailer_correct() {
        let data = sample(CHUNK + 10);
        let gz = compress(&data, Compression::Gzip { level: 6 }, 2, 65536);
        assert_eq!(gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let n = gz.len();
        assert_eq!(gz[n - 8..n - 4], crc32fast::hash(&data).to_le_bytes());
        assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes());
        // The empty stream: header, one final empty block, zero CRC and size.
        let empty = compress(&[], Compression::Gzip { level: 6 }, 4, 1);
        assert_eq!(empty[10..], [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_previous_chunk_primes_the_next() {
        // Incompressible 16 KiB blocks, repeated: a chunk compressed alone
        // stores its first block as literals; primed with the previous
        // chunk's tail, that block is a match too.
        let mut x: u64 = 1;
        let block: Vec<u8> = (0..WINDOW / 2)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let mut data = Vec::new();
        while data.len() < 2 * CHUNK {
            data.extend_from_slice(&block);
        }
        let gz = compress(&data, Compression::Gzip { level: 6 }, 2, data.len());
        let (mut alone, mut primed) = (Vec::new(), Vec::new());
        deflate_chunk(6, &data[CHUNK..], &[], true, &mut alone).unwrap();
        deflate_chunk(6, &data[CHUNK..], &data[CHUNK - WINDOW..CHUNK], true, &mut primed).unwrap();
        assert!(primed.len() < alone.len(), "{} !< {}", primed.len(), alone.len());
        assert!(gunzip_single_member(&gz) == data);
    }

    #[test]
    fn external_tools_accept_the_output() {
        let have = |tool: &str| {
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let data = sample(2 * CHUNK + 99);
        let dir = tempfile::tempdir().unwrap();
        for (c, tool, name) in [
            (Compression::Gzip { level: 6 }, "gzip", "x.gz"),
            (Compression::Zstd { level: 3 }, "zstd", "x.zst"),
        ] {
            if !have(tool) {
                eprintln!("{tool} not installed: skipping its check");
                continue;
            }
            let path = dir.path().join(name);
            std::fs::write(&path, compress(&data, c, 2, 4096)).unwrap();
            let t = std::process::Command::new(tool)
                .arg("-t")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                t.status.success(),
                "{tool} -t: {}",
                String::from_utf8_lossy(&t.stderr)
            );
            let d = std::process::Command::new(tool)
                .arg("-dc")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                d.status.success() && d.stdout == data,
                "{tool} -dc gives other bytes"
            );
        }
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Format::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0"), Format::Xz);
        assert_eq!(sniff(b"BZh9"), Format::Bzip2);
        assert_eq!(sniff(b"usr/"), Format::Plain);
        assert_eq!(sniff(b""), Format::Plain);
    }

    #[test]
    fn levels_are_checked() {
        assert!(Compression::Gzip { level: 0 }.validate().is_err());
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 20 }.validate().is_err());
        assert!(Compression::Zstd { level: -1 }.validate().is_err());
        assert!(Compression::Zstd { level: 19 }.validate().is_ok());
        assert!(Compression::Gzip { level: 9 }.validate().is_ok());
    }

    /// splitmix64: a seeded generator, so the varied data below is the same
    /// on every machine.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Data shaped like a real layer, built from `seed`: segments of up to
    /// 96 KiB of incompressible bytes (like compressed files or machine
    /// code), source-like text, structured binary records, and repeats of
    /// earlier stretches near and far, so chunks differ in how they
    /// compress and matches cross chunk boundaries.
    fn varied(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&[u8]; 20] = [
            b"the ",
            b"layer ",
            b"def ",
            b"return ",
            b"self",
            b"(",
            b")",
            b":\n    ",
            b"import ",
            b"os",
            b".path",
            b"=",
            b" ",
            b"\n",
            b"if ",
            b"None",
            b"0x",
            b"config",
            b"_",
            b"#include <stdio.h>\n",
        ];
        let mut r = Rng(seed);
        let mut v = Vec::with_capacity(len + 100 * 1024);
        while v.len() < len {
            let seg = 1 + r.below(96 * 1024);
            let end = v.len() + seg;
            match r.below(4) {
                0 => {
                    while v.len() < end {
                        v.extend_from_slice(&r.next().to_le_bytes());
                    }
                }
                1 => {
                    while v.len() < end {
                        v.extend_from_slice(WORDS[r.below(WORDS.len())]);
                    }
                }
                2 => {
                    let mut k = r.next() as u32;
                    let step = r.below(16) as u32;
                    while v.len() < end {
                        v.extend_from_slice(&k.to_le_bytes());
                        v.extend_from_slice(&(r.below(4) as u16).to_be_bytes());
                        v.extend_from_slice(&[0, 0x7f]);
                        k = k.wrapping_add(step);
                    }
                }
                _ if v.len() > 1024 => {
                    let from = r.below(v.len());
                    let n = seg.min(v.len() - from);
                    v.extend_from_within(from..from + n);
                }
                _ => {}
            }
        }
        v.truncate(len);
        v
    }

    /// The jobs the writer would make of `data`: fixed chunks, each with its
    /// dictionary (gzip) and the last flagged.
    fn jobs(data: &[u8], c: Compression) -> Vec<Job> {
        let n = data.len().div_ceil(CHUNK).max(1);
        (0..n)
            .map(|i| {
                let start = i * CHUNK;
                let end = (start + CHUNK).min(data.len());
                let dict = match c {
                    Compression::Gzip { .. } if i > 0 => data[start - WINDOW..start].to_vec(),
                    _ => Vec::new(),
                };
                Job {
                    seq: i as u64,
                    data: data[start..end].to_vec(),
                    dict,
                    last: i + 1 == n,
                    out: Vec::new(),
                }
            })
            .collect()
    }

    /// Compresses `data` chunk by chunk on one worker, in `order`, after
    /// warming that worker up on `warm` (as if it had compressed another
    /// layer before), and assembles the stream as the writer would.
    fn compress_in_order(data: &[u8], c: Compression, order: &[usize], warm: &[u8]) -> Vec<u8> {
        let mut worker = Worker::new(c);
        for job in jobs(warm, c) {
            worker.run(job).out.unwrap();
        }
        let mut jobs: Vec<Option<Job>> = jobs(data, c).into_iter().map(Some).collect();
        let mut done: BTreeMap<usize, Done> = BTreeMap::new();
        for &i in order {
            done.insert(i, worker.run(jobs[i].take().unwrap()));
        }
        let mut out = Vec::new();
        let mut crc = crc32fast::Hasher::new();
        if let Compression::Gzip { level } = c {
            out.extend_from_slice(&gzip_header(level));
        }
        for d in done.into_values() {
            out.extend_from_slice(&d.out.unwrap());
            crc.combine(&d.crc);
        }
        if let Compression::Gzip { .. } = c {
            out.extend_from_slice(&crc.finalize().to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        out
    }

    /// Issue #16: a chunk's bytes must be a pure function of (chunk,
    /// dictionary, is-last, level), whatever the compressor compressed
    /// before. A worker reusing one zlib-rs compressor after `reset()` gave
    /// other bytes for some chunks at levels 1 to 6 depending on its
    /// history, so a layer's digest depended on which worker got which
    /// chunk. Checked on varied data at every gzip level and a spread of
    /// zstd levels (fast, dfast, the row-hash lazy levels, the optimal
    /// parsers): one worker handed the chunks in a shuffled order after
    /// compressing unrelated data must give the bytes of the in-order
    /// stream, and so must 2 and 8 threads. The slow levels run on a part of
    /// the data, and the thread counts on a few levels, to keep the test
    /// near 15 s unoptimised.
    #[test]
    fn chunk_bytes_do_not_depend_on_the_compressor_history() {
        let data = varied(12 * CHUNK + 4321, 16);
        let warm = varied(3 * CHUNK, 7);
        let mut r = Rng(5);
        let mut shuffled: Vec<usize> = (0..data.len().div_ceil(CHUNK)).collect();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, r.below(i + 1));
        }
        let gzip = (1..=9).map(|level| Compression::Gzip { level });
        let zstd = [1, 3, 5, 7, 12, 19].map(|level| Compression::Zstd { level });
        let mut failures = Vec::new();
        for c in gzip.chain(zstd) {
            let (slow, threaded) = match c {
                Compression::Gzip { level } => (level >= 7, [1, 6, 9].contains(&level)),
                Compression::Zstd { level } => (level >= 12, level == 3 || level == 12),
                Compression::None => (false, false),
            };
            let data = if slow { &data[..4 * CHUNK + 99] } else { &data[..] };
            let chunks = data.len().div_ceil(CHUNK);
            let order: Vec<usize> = shuffled.iter().copied().filter(|&i| i < chunks).collect();
            let reference = compress(data, c, 1, data.len());
            let mut back = Vec::new();
            decompress(&reference[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{c:?}: round trip differs");
            if compress_in_order(data, c, &order, &warm) != reference {
                failures.push(format!(
                    "{c:?}: chunks compressed shuffled after other data give other bytes"
                ));
            }
            for threads in [2, 8].into_iter().filter(|_| threaded) {
                if compress(data, c, threads, 1 << 16) != reference {
                    failures.push(format!("{c:?}: {threads} threads give other bytes than 1"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Throughput of the pipeline on 256 MiB of varied data, for
    /// BENCHMARKS.md (no timing assertion): `cargo test --release -p
    /// bake-layer --lib compress_throughput -- --ignored --nocapture`, with
    /// `BAKE_BENCH_CODEC` = gzip-N or zstd-N (default gzip-6) and
    /// `BAKE_BENCH_THREADS` (default 2).
    #[test]
    #[ignore = "a benchmark: run in release by hand"]
    fn compress_throughput() {
        let codec = std::env::var("BAKE_BENCH_CODEC").unwrap_or_else(|_| "gzip-6".into());
        let threads: usize = std::env::var("BAKE_BENCH_THREADS").map_or(2, |t| t.parse().unwrap());
        let (name, level) = codec.split_once('-').unwrap();
        let c = match name {
            "gzip" => Compression::Gzip {
                level: level.parse().unwrap(),
            },
            _ => Compression::Zstd {
                level: level.parse().unwrap(),
            },
        };
        let data = varied(256 << 20, 16);
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            size = compress(&data, c, threads, 1 << 16).len();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        // What a fresh compressor per chunk costs: making (and dropping) one,
        // primed as a chunk's would be, without compressing.
        let t = std::time::Instant::now();
        for _ in 0..256 {
            let mut d = flate2::Compress::new(flate2::Compression::new(6), false);
            d.set_dictionary(&data[..WINDOW]).unwrap();
            let mut z = zstd::bulk::Compressor::new(3).unwrap();
            z.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .unwrap();
        }
        eprintln!(
            "a fresh deflate + zstd compressor: {:.1} µs per chunk",
            t.elapsed().as_secs_f64() * 1e6 / 256.0
        );
        let mbs = |t: f64| data.len() as f64 / t / 1e6;
        eprintln!(
            "{codec} {threads} threads: median {:.3} s = {:.1} MB/s (runs {:?}), {size} bytes out",
            times[1],
            mbs(times[1]),
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_prefix_decodes_to_the_start_of_its_chunk() {
        let data = varied(5 * CHUNK + 777, 3);
        for c in [Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }] {
            let all = compress(&data, c, 1, data.len());
            // Where each chunk's compressed bytes start: after the header
            // and the chunks before it.
            let mut start = if let Compression::Gzip { .. } = c { 10 } else { 0 };
            let mut worker = Worker::new(c);
            for (k, job) in jobs(&data, c).into_iter().enumerate() {
                if k > 0 {
                    // Just inside chunk k's bytes, and before the sync flush or
                    // checksum that ends chunk k - 1.
                    let got = decoded_prefix_len(&all[..start + 1]);
                    assert_eq!(got as usize / CHUNK, k, "{c:?}: into chunk {k}: {got} bytes");
                    let got = decoded_prefix_len(&all[..start - 8]);
                    assert_eq!(
                        got as usize / CHUNK,
                        k - 1,
                        "{c:?}: before chunk {k}: {got} bytes"
                    );
                }
                start += worker.run(job).out.unwrap().len();
            }
            assert_eq!(decoded_prefix_len(&all[..]), data.len() as u64);
            assert_eq!(decoded_prefix_len(&all[..5]), 0);
        }
    }
}
