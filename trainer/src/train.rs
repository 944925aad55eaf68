//! The training loop shared by every method: batches from the ring, the method's loss, one
//! optimiser step, schedules, metrics, atomic checkpoints and exact resume.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use config::{RunConfig, Schedule};

use crate::checkpoint::{self, TrainState};
use crate::data::RingBatches;
use crate::dist::World;
use crate::method::{self, Method, StepCtx};
use crate::methods::{with_method, WithMethod};
use crate::metrics::{plot_losses, MetricsLog, StepRecord};
use crate::optim::{self, schedule};
use crate::record::record_bytes;

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
    /// Data parallelism (rank and world from torchrun's RANK / WORLD_SIZE / MASTER_ADDR /
    /// MASTER_PORT): seconds to wait for every rank to join, and for any one collective — a rank
    /// that dies or stalls ends the others with an error after at most this long.
    #[arg(long, default_value_t = 120.0)]
    pub dist_timeout_s: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub steps: usize,
    /// The loss of a network that has learnt nothing, where the method has one.
    pub chance: Option<f64>,
    pub first_loss: f64,
    pub last_loss: f64,
    pub checkpoint: PathBuf,
    pub metrics: PathBuf,
    pub plot: PathBuf,
    /// The method's end-of-run pictures (patch rotation's predictions).
    pub pictures: Vec<PathBuf>,
    pub data_wait_fraction: f64,
    pub mean_step_ms: f64,
    /// This process's rank; only rank 0 writes the files above.
    pub rank: usize,
}

pub fn run(args: &TrainArgs) -> Result<Summary> {
    let run = RunConfig::from_file(&args.config)?;
    crate::backend::set_threads(run.trainer.backend, run.trainer.threads)?;
    let device = crate::backend::device(run.trainer.backend)?;
    tracing::info!("backend {:?}", crate::backend::resolve(run.trainer.backend));
    let world = World::from_env(Duration::from_secs_f64(args.dist_timeout_s))?;
    if world.is_distributed() {
        if crate::backend::resolve(run.trainer.backend) != config::Backend::Tch {
            bail!("data-parallel training runs on libtorch's c10d: set trainer.backend to Tch");
        }
        tracing::info!(
            rank = world.rank,
            world_size = world.world_size,
            "joined the process group"
        );
    }
    device.seed(run.seed);
    let out = args.out_dir.clone().unwrap_or_else(|| run.output_dir());
    if world.is_main() {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("config.ron"), run.to_ron())?;
    }
    struct Train<'a> {
        args: &'a TrainArgs,
        run: &'a RunConfig,
        device: &'a Device,
        out: &'a Path,
        world: &'a World,
    }
    impl WithMethod for Train<'_> {
        type Output = Result<Summary>;
        fn call<M: Method>(self) -> Result<Summary> {
            train::<M>(self.args, self.run, self.device, self.out, self.world)
        }
    }
    with_method(
        &run.method,
        Train {
            args,
            run: &run,
            device: &device,
            out: &out,
            world: &world,
        },
    )?
}

/// The training loop of method `M`.
fn train<M: Method>(
    args: &TrainArgs,
    run: &RunConfig,
    device: &Device,
    out: &Path,
    world: &World,
) -> Result<Summary> {
    let (mut online, mut method) = M::new(run, device)?;
    if args.resume.is_none() {
        crate::pretrained::init_online(run, &mut online, &mut method, device)?;
    }
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
        method::restore(&mut online, &mut method, &ck)
            .with_context(|| format!("resuming from {}", path.display()))?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(ck.blob(method::OPTIM_BLOB)?.to_vec()))
            .map_err(|e| anyhow::anyhow!("optimiser state: {e}"))?;
        step = ck.state.step;
        tracing::info!(step, "resumed from {}", path.display());
    }
    // Every rank starts from rank 0's weights (DDP's start): the ranks share a seed, but a
    // pretrained start or a resumed file read on each rank should not be trusted to agree.
    let mut online = M::prepare(run, world.broadcast_module(online)?);
    if let Some(target) = method.target_mut() {
        *target = world.broadcast_module(target.clone())?;
    }

    let opts = proto_shm::ShmOptions {
        attach_timeout: Duration::from_secs(120),
        ..proto_shm::options_for_run(run)
    };
    let mut ring = RingBatches::open(&args.shm_name, M::schema(run)?, run, device, &opts)?;
    tracing::info!(
        loader_pid = ring.producer_pid(),
        "attached to the loader's ring"
    );

    // Rank 0 writes what the run leaves behind; the other ranks only train.
    let metrics_path = out.join("metrics.jsonl");
    if args.resume.is_none() && world.is_main() {
        let _ = std::fs::remove_file(&metrics_path);
    }
    let mut metrics = world
        .is_main()
        .then(|| MetricsLog::open(&metrics_path))
        .transpose()?;
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
    let save = |online: &M::Online,
                method: &M,
                optim: &ModuleOptimizer,
                step: usize,
                cursor: (u64, u64)|
     -> Result<()> {
        if !world.is_main() {
            return Ok(());
        }
        let state = TrainState {
            step,
            next_epoch: cursor.0,
            next_batch: cursor.1,
            queues: method::queue_cursors(method),
            method: run.method.name().to_string(),
            config: run.to_ron(),
        };
        checkpoint::save(
            &ckpt_path,
            &state,
            &method::state_blobs(online, method, optim)?,
        )
    };
    let max_steps = args.max_steps.or(run.trainer.max_steps);
    let mut last_batch = None;
    loop {
        if max_steps.is_some_and(|m| step >= m) {
            break;
        }
        let wait_before = ring.waited;
        let Some(batch) = ring.next_batch()? else {
            break;
        };
        let wait_ms = (ring.waited - wait_before).as_secs_f64() * 1e3;
        let (bpe, total_batches) = ring.stream_info();
        let total = M::schedule_steps(run)
            .unwrap_or((run.trainer.epochs as u64 * bpe).max(total_batches).max(1) as usize);
        let warmup = match run.trainer.schedule {
            Schedule::Cosine { warmup_epochs, .. } => (warmup_epochs * bpe as f64) as usize,
            _ => 0,
        };
        let lr = schedule::learning_rate(&run.trainer.schedule, peak_lr, step, total, warmup);
        let t = Instant::now();
        let seed = run.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let ctx = StepCtx {
            step,
            total,
            seed,
            world,
        };
        // Device-side randomness (dropout) from this step's seed, so a resumed run draws what
        // the uninterrupted run drew.
        device.seed(seed);
        let momentum = method.momentum(ctx);
        let (loss, terms) =
            method::train_step(&mut online, &mut method, &mut optim, lr, &batch, ctx)
                .with_context(|| format!("step {step}"))?;
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
        if let Some(metrics) = metrics.as_mut() {
            metrics.write(&StepRecord {
                step,
                epoch: batch.meta.epoch,
                batch: batch.meta.index_in_epoch,
                loss,
                terms,
                lr,
                momentum,
                data_wait_ms: wait_ms,
                step_ms: ms.as_secs_f64() * 1e3,
            })?;
        }
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
            save(&online, &method, &optim, step, cursor)?;
        }
        last_batch = Some(batch);
    }
    if steps_this_run == 0 {
        bail!("the loader's stream held no batch for this run");
    }
    save(&online, &method, &optim, step, cursor)?;
    let plot = out.join("loss.png");
    let chance = method.chance_loss();
    let mut pictures = Vec::new();
    if world.is_main() {
        std::fs::write(
            out.join("backbone.record"),
            record_bytes(M::backbone(&online))?,
        )?;
        if let Some(batch) = &last_batch {
            pictures = method.end_of_run_pictures(&online, batch, out)?;
        }
        plot_losses(
            &metrics_path,
            &plot,
            &format!("{} — {}", run.name, run.method.name()),
            chance,
        )?;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(Summary {
        steps: step,
        chance,
        first_loss: first_loss.unwrap_or(f64::NAN),
        last_loss,
        checkpoint: ckpt_path,
        metrics: metrics_path,
        plot,
        pictures,
        data_wait_fraction: ring.waited.as_secs_f64() / wall.max(1e-9),
        mean_step_ms: step_time.as_secs_f64() * 1e3 / steps_this_run.max(1) as f64,
        rank: world.rank,
    })
}

/// Writes a summary for people.
pub fn print_summary(s: &Summary) {
    let chance = s
        .chance
        .map(|c| format!(" (chance {c:.4})"))
        .unwrap_or_default();
    println!(
        "trainer summary: {} steps, loss {:.4} -> {:.4}{chance}, {:.0} ms/step, {:.1}% of wall time waiting for data",
        s.steps,
        s.first_loss,
        s.last_loss,
        s.mean_step_ms,
        s.data_wait_fraction * 100.0
    );
    if s.rank != 0 {
        println!("  rank {}: the run's files are written by rank 0", s.rank);
        return;
    }
    println!("  checkpoint: {}", s.checkpoint.display());
    println!("  metrics:    {}", s.metrics.display());
    println!("  loss plot:  {}", s.plot.display());
    for p in &s.pictures {
        println!("  picture:    {}", p.display());
    }
}
