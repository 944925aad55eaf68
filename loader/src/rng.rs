//! Reproducible randomness: every draw of a sample comes from a generator seeded by
//! (run seed, epoch, sample position, stream), so a batch is identical whatever the number of
//! workers or the order in which they run, and a resumed run continues the same stream.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Independent random streams of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The n-th view of the sample.
    View(u32),
    /// Which image replaces an unreadable one (n-th attempt).
    Replacement(u32),
    /// Method-level draws of the sample (box selection, paste rectangles, ...).
    Method,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser: spreads nearby inputs over the whole seed space.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator for one (seed, epoch, position, stream).
pub fn sample_rng(seed: u64, epoch: u64, position: u64, stream: Stream) -> ChaCha8Rng {
    let tag = match stream {
        Stream::View(v) => 0x1_0000_0000u64 | v as u64,
        Stream::Replacement(a) => 0x2_0000_0000u64 | a as u64,
        Stream::Method => 0x3_0000_0000u64,
    };
    let mut key = [0u8; 32];
    for (i, part) in [seed, epoch, position, tag].into_iter().enumerate() {
        key[i * 8..i * 8 + 8].copy_from_slice(&mix(part ^ mix(i as u64)).to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The generator of an epoch's permutation.
pub fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&mix(seed).to_le_bytes());
    key[8..16].copy_from_slice(&mix(epoch ^ 0x5EED).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}
