//! Exit codes shared by every binary of a loader/trainer pair (and `launch`, which reads them).

/// Done.
pub const OK: u8 = 0;
/// An error, reported on stderr as one `<binary>: error: …` line.
pub const FAILED: u8 = 1;
/// The peer on the other end of the ring went away (died, or ended the stream with an error):
/// the side exiting with this code did not cause the failure.
pub const PEER_GONE: u8 = 3;

/// The conventional code of a process stopped by `signal` (130 for SIGINT, 143 for SIGTERM).
pub fn signalled(signal: i32) -> u8 {
    128u8.wrapping_add(signal as u8)
}

/// [`PEER_GONE`] when any error of the chain is a ring error blaming the peer, else [`FAILED`].
pub fn code_for<'a>(chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>) -> u8 {
    let peer_gone = chain.into_iter().any(|c| {
        c.downcast_ref::<crate::ShmError>()
            .is_some_and(|s| s.is_peer_gone())
    });
    if peer_gone {
        PEER_GONE
    } else {
        FAILED
    }
}
