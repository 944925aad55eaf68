//! The loader: datasets, decoding, augmentation ops, per-method views, the deterministic worker
//! pool and the ring writer. The `loader` binary is a thin daemon over [`daemon::run`].

pub mod augment;
pub mod daemon;
pub mod decode;
pub mod image;
pub mod jpeg_region;
pub mod ops;
pub mod pipeline;
pub mod proposals;
pub mod rng;
pub mod segsource;
pub mod source;
pub mod views;
pub mod worker;
