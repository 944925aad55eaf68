//! The loader daemon: from a run config to a served ring. Creates the segment, runs the worker
//! pool over the requested range of the stream, ends the ring cleanly (or with the reason it
//! stopped), and prints a summary. SIGINT/SIGTERM stop it: the trainer is told why, the segment
//! is removed, and the exit code says which signal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use config::RunConfig;
use proto_shm::{Producer, ShmOptions};

use crate::pipeline::{run_pool, PoolOptions, Stats, Stopped, StreamPlan, StreamRange};
use crate::source::Dataset;

#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Run config (RON).
    #[arg(long)]
    pub config: PathBuf,
    /// Shared-memory segment name (default: from the config, else `<run name>-<pid>`).
    #[arg(long)]
    pub shm_name: Option<String>,
    /// Number of epochs (default: the trainer's).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Resume the stream at this epoch and batch.
    #[arg(long, default_value_t = 0)]
    pub start_epoch: u64,
    #[arg(long, default_value_t = 0)]
    pub start_batch: u64,
    /// Stop after this many batches.
    #[arg(long)]
    pub max_batches: Option<u64>,
    /// Worker threads (default: the config's).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Decode full-resolution JPEGs only (no DCT-domain downscaling).
    #[arg(long)]
    pub no_dct_scaling: bool,
    /// Decode whole JPEGs, not only the rectangle the views read (same samples, slower).
    #[arg(long)]
    pub no_partial_decode: bool,
    /// Seconds to wait for a trainer to attach.
    #[arg(long, default_value_t = 120)]
    pub attach_timeout_s: u64,
    /// Data-parallel shard this loader serves (default: the config's `loader.rank`).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Ranks in the run (default: the config's `loader.world_size`).
    #[arg(long)]
    pub world_size: Option<usize>,
}

/// How the daemon ended.
#[derive(Debug)]
pub enum Outcome {
    Finished(Stats),
    Signalled(i32, Stats),
}

pub fn run(args: &DaemonArgs) -> Result<Outcome> {
    let mut run = RunConfig::from_file(&args.config)?;
    // Command-line values go through the config's own checks.
    if let Some(w) = args.workers {
        run.loader.workers = w;
    }
    if let Some(e) = args.epochs {
        run.trainer.epochs = e as usize;
    }
    if let Some(r) = args.rank {
        run.loader.rank = r;
    }
    if let Some(w) = args.world_size {
        run.loader.world_size = w;
    }
    run.check_overrides("loader command line")?;
    let dataset = Arc::new(Dataset::open(&run.dataset)?);
    let views = crate::views::for_run(&run)?;
    let l = &run.loader;
    let plan = StreamPlan {
        seed: run.seed,
        rank: l.rank,
        world_size: l.world_size,
        batch_size: l.batch_size,
        dataset_len: dataset.len(),
    };
    if plan.batches_per_epoch() == 0 {
        anyhow::bail!(
            "dataset {} has {} images: not enough for one batch of {} per rank (world size {})",
            run.dataset.root.display(),
            dataset.len(),
            l.batch_size,
            l.world_size
        );
    }
    let epochs = run.trainer.epochs as u64;
    let range = StreamRange {
        start_epoch: args.start_epoch,
        start_batch: args.start_batch,
        end_epoch: epochs,
        max_batches: args.max_batches,
    };
    let total = {
        let all = (epochs.saturating_sub(args.start_epoch)) * plan.batches_per_epoch();
        let all = all.saturating_sub(args.start_batch);
        args.max_batches.map_or(all, |m| m.min(all))
    };

    // Signals set `stop`; blocked ring waits see it through `cancel`.
    let stop = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let name = args
        .shm_name
        .clone()
        .or_else(|| l.shm_name.clone())
        .unwrap_or_else(|| format!("{}-{}", run.name, std::process::id()));
    let opts = ShmOptions {
        attach_timeout: Duration::from_secs(args.attach_timeout_s),
        cancel: Some(stop.clone()),
        ..proto_shm::options_for_run(&run)
    };
    let schema = views.schema(l.batch_size);
    let producer =
        Producer::create(&name, &schema, l.ring_slots, &opts).context("creating the batch ring")?;
    producer.set_stream_info(plan.batches_per_epoch(), total);
    tracing::info!(
        segment = %producer.path().display(),
        images = dataset.len(),
        cached_index = dataset.from_cache,
        batches = total,
        method = run.method.name(),
        "loader ready"
    );
    // One machine-readable line for the launcher and tests.
    println!("loader ready segment={} pid={}", name, std::process::id());

    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} loader {pos}/{len} batches {per_sec} eta {eta}",
            )
            .unwrap(),
        );
        b
    });
    let last_log = std::sync::Mutex::new(Instant::now());
    let on_batch = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        } else {
            let mut t = last_log.lock().unwrap();
            if t.elapsed() > Duration::from_secs(10) {
                *t = Instant::now();
                tracing::info!("{n}/{total} batches");
            }
        }
    };
    let pool = PoolOptions {
        workers: l.workers,
        max_decoded_pixels: l.max_decoded_pixels,
        dct_scaling: !args.no_dct_scaling,
        partial_decode: !args.no_partial_decode,
    };
    let (stats, stopped) = run_pool(
        &producer,
        views.as_ref(),
        dataset,
        plan,
        range,
        &pool,
        &stop,
        &on_batch,
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let sig = signal.load(Ordering::SeqCst) as i32;
    match stopped {
        None => {
            producer.finish().context("ending the stream")?;
            Ok(Outcome::Finished(stats))
        }
        Some(Stopped::Requested) if sig != 0 => {
            let what = if sig == signal_hook::consts::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            producer.fail(&format!("loader stopped by {what}"));
            Ok(Outcome::Signalled(sig, stats))
        }
        Some(s) => {
            let msg = s.to_string();
            producer.fail(&msg);
            Err(crate::pipeline::anyhow_from_stop(s))
        }
    }
}

/// The end-of-run summary, a few lines for people.
pub fn summary(stats: &Stats) -> String {
    let mut s = format!(
        "loader summary: {} batches, {} samples in {:.1} s ({:.1} samples/s)",
        stats.batches,
        stats.samples,
        stats.seconds,
        stats.samples_per_s()
    );
    let skipped: u64 = stats.skipped.values().sum();
    if skipped == 0 {
        s.push_str("; no image skipped");
    } else {
        let parts: Vec<String> = stats
            .skipped
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        s.push_str(&format!("; skipped {skipped} ({})", parts.join(", ")));
    }
    s
}
