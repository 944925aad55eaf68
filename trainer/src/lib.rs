//! The trainer: burn models, methods, losses, optimisers, checkpoints and evaluation, fed from the
//! shared-memory ring. Built up by the trainer issue; for now the crate only fixes its place.
