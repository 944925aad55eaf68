//! The loader daemon: datasets, decoding, augmentation, per-method views, the worker pool and the
//! ring writer. Built up by the loader issue; for now the crate only fixes its place in the workspace.
