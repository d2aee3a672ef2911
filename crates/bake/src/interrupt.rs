//! SIGINT, SIGTERM and SIGHUP during a build (issue 16.7): the first one
//! raises the build's [`bake_build::Interrupt`], so the build stops where
//! it is and cleans up as a failure does (a `run` step's container killed
//! and deleted, its scratch root removed, temp blobs dropped, no tag set);
//! then `main` exits with 128 + the signal's number (130 for SIGINT, 143
//! for SIGTERM) and one line saying so. A second signal exits at once with
//! that code (what is left then is what `kill -9` leaves: the sandbox's
//! watchdog stops the container, the next build removes the scratch root).
//!
//! `bake build` and `bake check` install the handlers (`check` passes the
//! signal on to its child build as SIGTERM, waits for it, and removes its
//! temporary roots); every other command keeps the default action, which
//! leaves nothing a kill would not.
//!
//! Why `signal-hook` rather than tokio's signals: the build is synchronous
//! and polls a flag; `signal_hook::flag` sets one from an async-signal-safe
//! handler without a thread or a runtime, and its
//! `register_conditional_shutdown` gives the second signal's immediate
//! exit. tokio's would need a runtime running beside the build just to
//! forward the signal into that same flag.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

struct Installed {
    raised: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// How often a registry transfer checks for an interrupt.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Installs the handlers (once) and returns the interrupt they raise.
pub(crate) fn install() -> anyhow::Result<bake_build::Interrupt> {
    if let Some(i) = INSTALLED.get() {
        return Ok(bake_build::Interrupt::from_flag(Arc::clone(&i.raised)));
    }
    let raised = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // In this order, per signal: a second one exits at once; the first
        // records which signal it was, then raises the flag.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&raised))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize)?;
        signal_hook::flag::register(sig, Arc::clone(&raised))?;
    }
    let interrupt = bake_build::Interrupt::from_flag(Arc::clone(&raised));
    let _ = INSTALLED.set(Installed { raised, which });
    Ok(interrupt)
}

/// The interrupt the handlers raise; never raised if they are not installed.
pub(crate) fn current() -> bake_build::Interrupt {
    INSTALLED.get().map_or_else(bake_build::Interrupt::default, |i| {
        bake_build::Interrupt::from_flag(Arc::clone(&i.raised))
    })
}

/// The signal that interrupted this process, if one did.
pub(crate) fn received() -> Option<i32> {
    let i = INSTALLED.get()?;
    if !i.raised.load(Ordering::SeqCst) {
        return None;
    }
    i32::try_from(i.which.load(Ordering::SeqCst))
        .ok()
        .filter(|&s| s != 0)
}

/// How the one line names a signal.
pub(crate) fn name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".to_owned(),
        SIGTERM => "SIGTERM".to_owned(),
        SIGHUP => "SIGHUP".to_owned(),
        n => format!("signal {n}"),
    }
}

/// Runs `fut` on `rt` unless the build is interrupted first (the future
/// is dropped: a push sends its manifest last, so a dropped one leaves no
/// tag on an incomplete image).
pub(crate) fn block_on<T>(
    rt: &tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let interrupt = current();
    rt.block_on(async {
        tokio::select! {
            r = fut => r,
            () = async {
                while !interrupt.is_raised() {
                    tokio::time::sleep(POLL).await;
                }
            } => Err(anyhow::anyhow!(bake_build::BuildError::Interrupted)),
        }
    })
}
