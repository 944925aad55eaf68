//! Augmentation ops on 8-bit RGB with torchvision-on-PIL semantics (METHODS.md §0). Each op
//! reproduces the Pillow routine that torchvision calls, down to its rounding, so our views match
//! the reference implementations' views pixel for pixel (within ±1–2 where float order differs).
//! Random parameters are drawn separately from rendering, so geometry can be tested exactly.

pub mod blur;
pub mod color;
pub mod color_avx2;
pub mod color_avx512;
pub mod crop;
pub mod flip;
pub mod hue_avx2;
pub mod hue_avx512;
pub mod resize;
pub mod rgb_avx2;
pub mod transpose;
