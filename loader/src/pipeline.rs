//! The stream of batches: which image goes to which (epoch, batch, sample), and the worker pool
//! that fills ring slots in place.
//!
//! Each epoch is a seeded permutation of the dataset; rank r of a world of W takes positions
//! r, r + W, r + 2W, … (DistributedSampler's interleaving), and every rank gets the same number of
//! full batches (floor(len / W) / batch). A sample's content depends only on (seed, epoch,
//! position, dataset), never on which worker builds it or when — so batches are byte-identical for
//! any worker count, and starting at (epoch, batch) resumes the exact stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::anyhow;
use proto_shm::{BatchMeta, Producer, SlotWriter};
use rand::seq::SliceRandom;

use crate::rng::epoch_rng;
use crate::source::Dataset;
use crate::views::Views;
use crate::worker::{ImageIo, SampleInfo, SkipLog};

/// The deterministic order of samples.
#[derive(Debug, Clone, Copy)]
pub struct StreamPlan {
    pub seed: u64,
    pub rank: usize,
    pub world_size: usize,
    pub batch_size: usize,
    pub dataset_len: usize,
}

impl StreamPlan {
    pub fn batches_per_epoch(&self) -> u64 {
        ((self.dataset_len / self.world_size) / self.batch_size) as u64
    }

    /// The epoch's permutation of dataset indices.
    pub fn permutation(&self, epoch: u64) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..self.dataset_len as u32).collect();
        perm.shuffle(&mut epoch_rng(self.seed, epoch));
        perm
    }

    pub fn sample(&self, perm: &[u32], epoch: u64, batch: u64, i: usize) -> SampleInfo {
        let in_shard = batch as usize * self.batch_size + i;
        let position = in_shard * self.world_size + self.rank;
        SampleInfo {
            seed: self.seed,
            epoch,
            position: position as u64,
            index: perm[position] as usize,
            dataset_len: self.dataset_len,
        }
    }
}

/// Where the stream starts and stops.
#[derive(Debug, Clone, Copy)]
pub struct StreamRange {
    pub start_epoch: u64,
    pub start_batch: u64,
    /// Exclusive.
    pub end_epoch: u64,
    /// Stop after this many batches in total (None: run to `end_epoch`).
    pub max_batches: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub workers: usize,
    pub max_decoded_pixels: u64,
    pub dct_scaling: bool,
    /// Decode only the part of each JPEG the views read (`ImageIo::partial_decode`).
    pub partial_decode: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub batches: u64,
    pub samples: u64,
    pub skipped: std::collections::BTreeMap<crate::decode::SkipKind, u64>,
    pub seconds: f64,
}

impl Stats {
    pub fn samples_per_s(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }
}

struct Job {
    slot: SlotWriter,
    sample: usize,
    info: SampleInfo,
}

/// The text of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Test hook: `DENSEPRE_TEST_WORKER_PANIC_AT=<position>` panics the worker building that stream
/// position, so the tests can check what a real bug would do (read once; unset costs nothing).
fn test_hook_panic(info: &SampleInfo) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("DENSEPRE_TEST_WORKER_PANIC_AT")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(info.position) {
        panic!("test hook: DENSEPRE_TEST_WORKER_PANIC_AT={}", info.position);
    }
}

/// How the stream ended when it did not run to completion.
#[derive(Debug)]
pub enum Stopped {
    /// `stop` was raised (a signal).
    Requested,
    /// A worker or the ring failed.
    Failed(anyhow::Error),
}

/// Fills the ring with the batches of `range`. Returns the stats, or why it stopped early; the
/// caller then ends the ring (`finish` or `fail`).
#[allow(clippy::too_many_arguments)]
pub fn run_pool(
    producer: &Producer,
    views: &dyn Views,
    dataset: Arc<Dataset>,
    plan: StreamPlan,
    range: StreamRange,
    opts: &PoolOptions,
    stop: &AtomicBool,
    on_batch: &(dyn Fn(u64) + Sync),
) -> (Stats, Option<Stopped>) {
    let skips = Arc::new(SkipLog::default());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let samples = AtomicU64::new(0);
    let start = Instant::now();
    let bpe = plan.batches_per_epoch();
    let mut batches = 0u64;
    let fail = |e: anyhow::Error| {
        let mut f = failure.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
        stop.store(true, Ordering::SeqCst);
    };
    let (tx, rx) = crossbeam::channel::bounded::<Job>(opts.workers * 4);
    std::thread::scope(|scope| {
        for w in 0..opts.workers {
            let rx = rx.clone();
            let mut io = ImageIo::new(
                dataset.clone(),
                skips.clone(),
                opts.max_decoded_pixels,
                opts.dct_scaling,
            );
            io.partial_decode = opts.partial_decode;
            let (fail, samples) = (&fail, &samples);
            let dataset = dataset.clone();
            std::thread::Builder::new()
                .name(format!("loader-worker-{w}"))
                .spawn_scoped(scope, move || {
                    for job in rx.iter() {
                        if stop.load(Ordering::Relaxed) {
                            continue; // drain quickly: this batch will not be published
                        }
                        // A panic here would kill this worker silently while the batch it
                        // held never completes: the trainer would wait on it, the main thread
                        // on a slot, forever. Caught, it fails the stream like any error.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            test_hook_panic(&job.info);
                            job.slot
                                .sample(job.sample)
                                .map_err(anyhow::Error::from)
                                .and_then(|mut out| {
                                    views.build(&job.info, &mut io, &mut out)?;
                                    out.commit()?;
                                    Ok(())
                                })
                        }))
                        .unwrap_or_else(|payload| {
                            Err(anyhow::anyhow!(
                                "worker {w} panicked: {}",
                                panic_message(&*payload)
                            ))
                        });
                        match r {
                            Ok(()) => {
                                samples.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => fail(e.context(format!(
                                "building epoch {} position {} (image {})",
                                job.info.epoch,
                                job.info.position,
                                dataset.path_of(job.info.index).display()
                            ))),
                        }
                    }
                })
                .expect("spawn worker");
        }
        drop(rx);
        'epochs: for epoch in range.start_epoch..range.end_epoch {
            let perm = plan.permutation(epoch);
            let first = if epoch == range.start_epoch {
                range.start_batch
            } else {
                0
            };
            for batch in first..bpe {
                if stop.load(Ordering::SeqCst) || range.max_batches.is_some_and(|m| batches >= m) {
                    break 'epochs;
                }
                let slot = match producer.claim(BatchMeta {
                    epoch,
                    index_in_epoch: batch,
                }) {
                    Ok(s) => s,
                    Err(proto_shm::ShmError::Cancelled { .. }) => break 'epochs,
                    Err(e) => {
                        fail(e.into());
                        break 'epochs;
                    }
                };
                for i in 0..plan.batch_size {
                    let info = plan.sample(&perm, epoch, batch, i);
                    if tx
                        .send(Job {
                            slot: slot.clone(),
                            sample: i,
                            info,
                        })
                        .is_err()
                    {
                        break 'epochs;
                    }
                }
                batches += 1;
                on_batch(batches);
            }
        }
        drop(tx);
    });
    let stats = Stats {
        batches,
        samples: samples.load(Ordering::Relaxed),
        skipped: skips.counts(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let stopped = match failure.into_inner().unwrap() {
        Some(e) => Some(Stopped::Failed(e)),
        None if stop.load(Ordering::SeqCst) => Some(Stopped::Requested),
        None => None,
    };
    (stats, stopped)
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Requested => f.write_str("stop requested"),
            Stopped::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

pub fn anyhow_from_stop(s: Stopped) -> anyhow::Error {
    match s {
        Stopped::Requested => anyhow!("stop requested"),
        Stopped::Failed(e) => e,
    }
}
