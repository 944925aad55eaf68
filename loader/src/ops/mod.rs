//! Augmentation ops on 8-bit RGB with torchvision-on-PIL semantics (METHODS.md §0). Each op
//! reproduces the Pillow routine that torchvision calls, down to its rounding, so our views match
//! the reference implementations' views pixel for pixel.
//! Random parameters are drawn separately from rendering, so geometry can be tested exactly.

/// Runs a SIMD kernel over the bulk of the data when the CPU has `$feature` (a
/// `is_x86_feature_detected!` name, or a `[list]` of them, all required): `Some` of its result
/// (usually the bytes it did), `None` on other CPUs and architectures, where the kernel is not
/// even compiled. Callers chain tiers (AVX-512, then AVX2) and finish the tail with scalar code.
macro_rules! simd_bulk {
    ([$($feature:tt),+], $kernel:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let done = if $(std::is_x86_feature_detected!($feature))&&+ {
            // SAFETY: the CPU has every one of the kernel's target features (checked just above).
            Some(unsafe { $kernel })
        } else {
            None
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = None;
        done
    }};
    ($feature:tt, $kernel:expr) => {
        simd_bulk!([$feature], $kernel)
    };
}

pub mod blur;
pub mod color;
pub mod color_avx2;
pub mod color_avx512;
pub mod crop;
pub mod flip;
pub mod hue_avx2;
pub mod hue_avx512;
pub mod photometric;
pub mod resize;
pub mod rgb_avx2;
pub mod rgb_avx512;
pub mod transpose;
