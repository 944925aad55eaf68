//! The trainer: burn models, methods, losses, optimisers, checkpoints and evaluation, fed from the
//! shared-memory ring. Backend-agnostic: burn 0.22 picks the backend from the device at run time.

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod dist;
pub mod ema;
pub mod eval;
pub mod loss;
pub mod method;
pub mod methods;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod pretrained;
pub mod queue;
pub mod record;
pub mod rotation_sheet;
pub mod shuffle_bn;
pub mod train;
pub mod weights;
