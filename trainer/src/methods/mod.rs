//! One module per method: what is particular to it (heads, momentum twins, queues, its loss);
//! everything common (optimiser, schedule, checkpoints, logging) lives in `train`.

pub mod cp2;
pub mod densecl;
pub mod mocov2;
pub mod soco;

use std::collections::BTreeMap;

/// Named scalar loss terms of a step, for the metrics log.
pub type LossTerms = BTreeMap<&'static str, f64>;
