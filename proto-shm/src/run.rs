//! The one place that turns a run config into shared-memory options, so the loader, the trainer
//! and `launch` look for a run's segment in the same directory.

use config::RunConfig;

use crate::ShmOptions;

/// The options for `run`'s ring: its segment directory is `loader.shm_dir` when set, else the
/// default (`$PROTO_SHM_DIR`, else `/dev/shm`). Timeouts stay at their defaults for callers to
/// adjust.
pub fn options_for_run(run: &RunConfig) -> ShmOptions {
    let mut opts = ShmOptions {
        stall_warning: std::time::Duration::from_secs(run.loader.stall_warning_s),
        ..ShmOptions::default()
    };
    if let Some(dir) = &run.loader.shm_dir {
        opts.dir = dir.clone();
    }
    opts
}
