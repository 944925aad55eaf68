//! proto-shm: a named shared-memory segment holding a ring of whole-batch slots, written in place by
//! a producer process (the loader daemon) and read in order by one consumer process (the trainer).
//!
//! Layers, each usable alone (after iceoryx2's split):
//! * [`segment`] — the named file in `/dev/shm`: creation (0600, space reserved up front), mapping,
//!   the header, and liveness through OS-released byte-range locks plus heartbeats;
//! * [`ring`] — the slot state machine (`FREE → WRITING → READY → READING → FREE`) with sequence
//!   numbers and futex waits, exposed as [`Producer`] and [`Consumer`];
//! * [`schema`] — what a batch holds (named tensors with per-sample shape and dtype) and where each
//!   tensor lives inside a slot ([`Layout`]).
//!
//! Guarantees: a consumer only ever sees a batch after every sample of it was written (release/acquire
//! on the slot state), batches arrive in sequence order, a dead peer is reported within
//! [`ShmOptions::poll_interval`] of its death, and no segment outlives both peers unless both were
//! killed — in which case the next producer on that name recognises it as stale and reclaims it.

pub mod error;
pub mod exit;
pub mod ring;
pub mod run;
pub mod sample;
pub mod schema;
pub mod schemas;
pub mod segment;
mod wait;

pub use error::{Role, ShmError};
pub use ring::{Batch, BatchMeta, Consumer, Producer, SampleWriter, SlotWriter};
pub use run::options_for_run;
pub use sample::{SampleBuffers, SampleTensors};
pub use schema::{DType, Layout, Schema, TensorSpec};
pub use segment::{validate_name, ShmOptions};

pub type Result<T, E = ShmError> = std::result::Result<T, E>;
