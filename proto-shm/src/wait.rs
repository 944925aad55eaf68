//! Blocking waits on a 32-bit word in shared memory (Linux futex, process-shared), so an idle side
//! sleeps in the kernel instead of spinning.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::thread::futex;

/// Sleeps until `word` is woken or no longer equals `seen`, or `timeout` passes. Spurious returns are
/// fine: callers re-check their condition in a loop.
pub(crate) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // Not FUTEX_PRIVATE: the word lives in a mapping shared with another process.
    let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&ts));
}

pub(crate) fn wake_all(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}
