//! The training loop shared by every method: batches from the ring, the method's loss, one
//! optimiser step, schedules, metrics, atomic checkpoints and exact resume.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use config::{MethodConfig, RunConfig, Schedule};
use proto_shm::ShmOptions;

use crate::checkpoint::{self, TrainState};
use crate::data::{RingBatches, StepBatch};
use crate::methods::{cp2, densecl, mocov2, soco, LossTerms};
use crate::metrics::{plot_losses, MetricsLog, StepRecord};
use crate::nn::resnet::Depth;
use crate::optim::{self, schedule};
use crate::queue::Queue;

/// A method with its trained module and its untrained state. (One lives per run: the size
/// difference between variants does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Method {
    MocoV2 {
        query: mocov2::Encoder,
        state: mocov2::MocoV2,
    },
    DenseCl {
        query: densecl::Encoder,
        state: densecl::DenseCl,
    },
    Soco {
        online: soco::Online,
        state: soco::Soco,
    },
    Cp2 {
        query: cp2::Segmentor,
        state: cp2::Cp2,
    },
}

/// Where a step sits in the run, for schedules that depend on it.
#[derive(Debug, Clone, Copy)]
pub struct StepCtx {
    pub step: usize,
    pub total: usize,
    pub seed: u64,
}

pub(crate) fn record_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    Ok(m.clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_vec())
}

fn load_module<M: Module>(m: M, bytes: &[u8]) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m.load_record(record))
}

/// [`load_module`] for records from elsewhere (another run, another architecture): a record that
/// does not fit the module is an error, not a panic.
pub(crate) fn load_module_lenient<M: Module>(m: M, bytes: &[u8]) -> Result<M> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load_module(m, bytes)));
    std::panic::set_hook(hook);
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bail!("the record does not match the model: {msg}")
        }
    }
}

fn queue_bytes(q: &Queue) -> Result<Vec<u8>> {
    let v = q
        .keys
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn load_queue(q: &mut Queue, bytes: &[u8], (ptr, filled): (usize, usize)) {
    let [len, dim] = q.keys.dims();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    q.keys = Tensor::<2>::from_data(TensorData::new(v, [len, dim]), &q.keys.device());
    q.ptr = ptr;
    q.filled = filled;
}

impl Method {
    pub fn new(run: &RunConfig, device: &Device) -> Result<Method> {
        let depth = Depth::from(run.trainer.arch);
        Ok(match &run.method {
            MethodConfig::MocoV2(cfg) => {
                let query = mocov2::Encoder::new(depth, cfg, device);
                let state = mocov2::MocoV2::new(cfg, depth, &query, device);
                Method::MocoV2 { query, state }
            }
            MethodConfig::DenseCl(cfg) => {
                let query = densecl::Encoder::new(depth, cfg, device);
                let state = densecl::DenseCl::new(cfg, depth, &query, device);
                Method::DenseCl { query, state }
            }
            MethodConfig::Soco(cfg) => {
                let online = soco::Online::new(depth, cfg, device);
                let state = soco::Soco::new(cfg, depth, &online, device);
                Method::Soco { online, state }
            }
            MethodConfig::Cp2(cfg) => {
                let mut query = cp2::Segmentor::new(depth, cfg, device);
                if let Some(path) = &cfg.init_from {
                    let (q, report) = cp2::init_backbone(query, path, depth, device)?;
                    query = q;
                    let total = cp2::param_tensors(&query);
                    tracing::info!(
                        "Quick Tuning: loaded {} of {} tensors (the whole backbone) from {}; initialised fresh: {}",
                        report.loaded,
                        total,
                        path.display(),
                        report.fresh.join(", ")
                    );
                    println!(
                        "quick tuning: {} backbone tensors loaded (weights and BN statistics) from {}, {} fresh ({})",
                        report.loaded,
                        path.display(),
                        total - report.loaded,
                        report.fresh.join(", ")
                    );
                }
                let state = cp2::Cp2::new(cfg, depth, &query, device);
                Method::Cp2 { query, state }
            }
            other => bail!("the trainer does not train {} yet", other.name()),
        })
    }

    /// Loss for one batch, forward and backward, then one optimiser step.
    fn step(
        &mut self,
        optim: &mut ModuleOptimizer,
        lr: f64,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> (f64, LossTerms) {
        let (x0, x1) = (batch.views[0].clone(), batch.views[1].clone());
        let (step, seed) = (ctx.step, ctx.seed);
        macro_rules! train_step {
            ($query:expr, $loss:expr) => {{
                let (loss, terms) = $loss;
                let value = loss.clone().into_scalar::<f32>() as f64;
                let grads = GradientsParams::from_grads(loss.backward(), &$query);
                // The optimiser takes the module by value and no clone of it may stay behind:
                // parameters with no other owner are updated in place by libtorch (R-50: −8 ms
                // and −60 MiB per step, BENCHMARKS.md). A panic inside the step aborts.
                replace_with::replace_with_or_abort(&mut $query, |q| optim.step(lr, q, grads));
                (value, terms)
            }};
        }
        match self {
            Method::MocoV2 { query, state } => train_step!(*query, state.loss(query, x0, x1, seed)),
            Method::DenseCl { query, state } => {
                train_step!(*query, state.loss(query, x0, x1, step, seed))
            }
            Method::Soco { online, state } => {
                train_step!(*online, state.loss(online, batch, ctx.step, ctx.total))
            }
            Method::Cp2 { query, state } => train_step!(*query, state.loss(query, batch, seed)),
        }
    }

    fn momentum(&self) -> f64 {
        match self {
            Method::MocoV2 { state, .. } => state.cfg.momentum as f64,
            Method::DenseCl { state, .. } => state.cfg.moco.momentum as f64,
            Method::Soco { state, .. } => state.last_momentum,
            Method::Cp2 { state, .. } => state.cfg.momentum as f64,
        }
    }

    fn queues(&self) -> Vec<(&'static str, &Queue)> {
        match self {
            Method::MocoV2 { state, .. } => vec![("queue", &state.queue)],
            Method::DenseCl { state, .. } => {
                vec![("queue", &state.queue), ("dense_queue", &state.dense_queue)]
            }
            Method::Soco { .. } => vec![],
            Method::Cp2 { state, .. } => vec![("queue", &state.queue)],
        }
    }

    fn blobs(&self, optim: &ModuleOptimizer) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut b = match self {
            Method::MocoV2 { query, state } => vec![
                ("query", record_bytes(query)?),
                ("key", record_bytes(&state.key)?),
            ],
            Method::DenseCl { query, state } => vec![
                ("query", record_bytes(query)?),
                ("key", record_bytes(&state.key)?),
            ],
            Method::Soco { online, state } => vec![
                ("query", record_bytes(online)?),
                ("key", record_bytes(&state.target)?),
            ],
            Method::Cp2 { query, state } => vec![
                ("query", record_bytes(query)?),
                ("key", record_bytes(&state.key)?),
            ],
        };
        b.push((
            "optim",
            optim
                .into_bytes()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_vec(),
        ));
        for (name, q) in self.queues() {
            b.push((name, queue_bytes(q)?));
        }
        Ok(b)
    }

    fn restore(&mut self, ck: &checkpoint::Checkpoint) -> Result<()> {
        match self {
            Method::MocoV2 { query, state } => {
                *query = load_module(query.clone(), ck.blob("query")?)?;
                state.key = load_module(state.key.clone(), ck.blob("key")?)?.no_grad();
                load_queue(
                    &mut state.queue,
                    ck.blob("queue")?,
                    ck.state.queues["queue"],
                );
            }
            Method::DenseCl { query, state } => {
                *query = load_module(query.clone(), ck.blob("query")?)?;
                state.key = load_module(state.key.clone(), ck.blob("key")?)?.no_grad();
                load_queue(
                    &mut state.queue,
                    ck.blob("queue")?,
                    ck.state.queues["queue"],
                );
                load_queue(
                    &mut state.dense_queue,
                    ck.blob("dense_queue")?,
                    ck.state.queues["dense_queue"],
                );
            }
            Method::Soco { online, state } => {
                *online = load_module(online.clone(), ck.blob("query")?)?;
                state.target = load_module(state.target.clone(), ck.blob("key")?)?.no_grad();
            }
            Method::Cp2 { query, state } => {
                *query = load_module(query.clone(), ck.blob("query")?)?;
                state.key = load_module(state.key.clone(), ck.blob("key")?)?.no_grad();
                load_queue(
                    &mut state.queue,
                    ck.blob("queue")?,
                    ck.state.queues["queue"],
                );
            }
        }
        Ok(())
    }

    /// The trained backbone's parameters as a record (for export and evaluation).
    pub fn backbone_record(&self) -> Result<Vec<u8>> {
        match self {
            Method::MocoV2 { query, .. } => record_bytes(&query.backbone),
            Method::DenseCl { query, .. } => record_bytes(&query.backbone),
            Method::Soco { online, .. } => record_bytes(&online.net.backbone),
            Method::Cp2 { query, .. } => record_bytes(&query.backbone),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Run config (RON).
    #[arg(long)]
    pub config: PathBuf,
    /// Shared-memory segment of the loader.
    #[arg(long)]
    pub shm_name: String,
    /// Resume from this checkpoint (the loader must start at its data cursor).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Output folder (default: the config's).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Stop after this many steps in total (a resumed run counts the steps before it).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Checkpoint every N steps (default: the config's).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub steps: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub checkpoint: PathBuf,
    pub metrics: PathBuf,
    pub plot: PathBuf,
    pub data_wait_fraction: f64,
    pub mean_step_ms: f64,
}

pub fn run(args: &TrainArgs) -> Result<Summary> {
    let run = RunConfig::from_file(&args.config)?;
    crate::backend::set_threads(run.trainer.backend, run.trainer.threads)?;
    let device = crate::backend::device(run.trainer.backend)?;
    tracing::info!("backend {:?}", crate::backend::resolve(run.trainer.backend));
    device.seed(run.seed);
    let out = args.out_dir.clone().unwrap_or_else(|| run.output_dir());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.ron"), run.to_ron())?;

    let mut method = Method::new(&run, &device)?;
    let mut optim = optim::build(&run.trainer.optimizer);
    let mut step = 0usize;
    if let Some(path) = &args.resume {
        let ck = checkpoint::load(path)?;
        if ck.state.method != run.method.name() {
            bail!(
                "checkpoint {} is a {} run, the config is {}",
                path.display(),
                ck.state.method,
                run.method.name()
            );
        }
        method.restore(&ck)?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(ck.blob("optim")?.to_vec()))
            .map_err(|e| anyhow::anyhow!("optimiser state: {e}"))?;
        step = ck.state.step;
        tracing::info!(step, "resumed from {}", path.display());
    }

    let opts = ShmOptions {
        attach_timeout: Duration::from_secs(120),
        ..ShmOptions::default()
    };
    let mut ring = RingBatches::open(&args.shm_name, &run, &device, &opts)?;
    tracing::info!(
        loader_pid = ring.producer_pid(),
        "attached to the loader's ring"
    );

    let metrics_path = out.join("metrics.jsonl");
    if args.resume.is_none() {
        let _ = std::fs::remove_file(&metrics_path);
    }
    let mut metrics = MetricsLog::open(&metrics_path)?;
    let ckpt_path = out.join("last.ckpt");
    let every = args
        .checkpoint_every
        .unwrap_or(run.trainer.checkpoint_every);
    let peak_lr = optim::base_lr(&run.trainer.optimizer) * run.loader.batch_size as f64
        / run.trainer.base_batch_size as f64;
    let started = Instant::now();
    let mut step_time = Duration::ZERO;
    let mut first_loss = None;
    let mut last_loss = f64::NAN;
    let mut cursor = (0u64, 0u64);
    let mut steps_this_run = 0usize;
    let save =
        |method: &Method, optim: &ModuleOptimizer, step: usize, cursor: (u64, u64)| -> Result<()> {
            let state = TrainState {
                step,
                next_epoch: cursor.0,
                next_batch: cursor.1,
                queues: method
                    .queues()
                    .into_iter()
                    .map(|(n, q)| (n.to_string(), (q.ptr, q.filled)))
                    .collect::<BTreeMap<_, _>>(),
                method: run.method.name().to_string(),
                config: run.to_ron(),
            };
            checkpoint::save(&ckpt_path, &state, &method.blobs(optim)?)
        };
    loop {
        if args.max_steps.is_some_and(|m| step >= m) {
            break;
        }
        let wait_before = ring.waited;
        let Some(batch) = ring.next_batch()? else {
            break;
        };
        let wait_ms = (ring.waited - wait_before).as_secs_f64() * 1e3;
        let (bpe, total_batches) = ring.stream_info();
        let total = (run.trainer.epochs as u64 * bpe).max(total_batches).max(1) as usize;
        let warmup = match run.trainer.schedule {
            Schedule::Cosine { warmup_epochs, .. } => (warmup_epochs * bpe as f64) as usize,
            _ => 0,
        };
        let lr = schedule::learning_rate(&run.trainer.schedule, peak_lr, step, total, warmup);
        let t = Instant::now();
        let seed = run.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let ctx = StepCtx { step, total, seed };
        let (loss, terms) = method.step(&mut optim, lr, &batch, ctx);
        let ms = t.elapsed();
        step_time += ms;
        if !loss.is_finite() {
            bail!(
                "loss became {loss} at step {step}; stopping (last checkpoint: {})",
                ckpt_path.display()
            );
        }
        first_loss.get_or_insert(loss);
        last_loss = loss;
        cursor = if batch.meta.index_in_epoch + 1 >= bpe.max(1) {
            (batch.meta.epoch + 1, 0)
        } else {
            (batch.meta.epoch, batch.meta.index_in_epoch + 1)
        };
        metrics.write(&StepRecord {
            step,
            epoch: batch.meta.epoch,
            batch: batch.meta.index_in_epoch,
            loss,
            terms,
            lr,
            momentum: method.momentum(),
            data_wait_ms: wait_ms,
            step_ms: ms.as_secs_f64() * 1e3,
        })?;
        step += 1;
        steps_this_run += 1;
        if step.is_multiple_of(10) || step == 1 {
            tracing::info!(
                step,
                loss = format!("{loss:.4}"),
                lr = format!("{lr:.5}"),
                "train"
            );
        }
        if step.is_multiple_of(every) {
            save(&method, &optim, step, cursor)?;
        }
    }
    if steps_this_run == 0 {
        bail!("the loader's stream held no batch for this run");
    }
    save(&method, &optim, step, cursor)?;
    std::fs::write(out.join("backbone.record"), method.backbone_record()?)?;
    let plot = out.join("loss.png");
    plot_losses(
        &metrics_path,
        &plot,
        &format!("{} — {}", run.name, run.method.name()),
    )?;
    let wall = started.elapsed().as_secs_f64();
    Ok(Summary {
        steps: step,
        first_loss: first_loss.unwrap_or(f64::NAN),
        last_loss,
        checkpoint: ckpt_path,
        metrics: metrics_path,
        plot,
        data_wait_fraction: ring.waited.as_secs_f64() / wall.max(1e-9),
        mean_step_ms: step_time.as_secs_f64() * 1e3 / steps_this_run.max(1) as f64,
    })
}

/// Writes a summary for people.
pub fn print_summary(s: &Summary) {
    println!(
        "trainer summary: {} steps, loss {:.4} -> {:.4}, {:.0} ms/step, {:.1}% of wall time waiting for data",
        s.steps,
        s.first_loss,
        s.last_loss,
        s.mean_step_ms,
        s.data_wait_fraction * 100.0
    );
    println!("  checkpoint: {}", s.checkpoint.display());
    println!("  metrics:    {}", s.metrics.display());
    println!("  loss plot:  {}", s.plot.display());
}
