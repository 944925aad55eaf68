//! The loader: datasets, decoding, augmentation ops, per-method views, the deterministic worker
//! pool and the ring writer. The `loader` binary is a thin daemon over [`daemon::run`].

pub mod decode;
pub mod image;
pub mod ops;
pub mod rng;
