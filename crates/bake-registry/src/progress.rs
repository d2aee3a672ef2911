//! Progress reporting: callbacks per blob, so the CLI can draw bars. Nothing
//! here draws anything.

use std::time::Duration;

use bake_digest::Digest;

/// Which way a blob moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// Why a blob was not transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The registry already has it in the target repository.
    Exists,
    /// The registry linked it from another repository (cross-repo mount).
    Mounted,
    /// The local store already has it.
    Cached,
}

/// Receives progress events. Every method has a no-op default; calls may
/// come from several blobs interleaved (transfers run concurrently), always
/// from the caller's task, never from another thread.
pub trait Progress: Send + Sync {
    /// A transfer of `size` bytes starts (again, after a retry).
    fn start(&self, _digest: &Digest, _size: u64, _direction: Direction) {}
    /// `done` bytes of the current attempt have moved.
    fn bytes(&self, _digest: &Digest, _done: u64) {}
    /// The blob is transferred and verified.
    fn done(&self, _digest: &Digest) {}
    /// The blob needed no transfer.
    fn skipped(&self, _digest: &Digest, _size: u64, _reason: Skip) {}
    /// `what` failed with `reason` and is tried again after `delay`.
    fn retrying(&self, _what: &str, _attempt: u32, _delay: Duration, _reason: &str) {}
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
