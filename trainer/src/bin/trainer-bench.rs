//! `trainer-bench`: milliseconds per training step on synthetic input, for comparison with the
//! same step in PyTorch (tests/reference/torch_step.py for MoCo v2, torch_soco_cp2_step.py for
//! SoCo and CP²).
//!   * mocov2: EMA update of the key encoder, query forward + backward, key forward in 2 shuffled
//!     sub-batches, InfoNCE against a 4096-key queue, one SGD step;
//!   * soco: target EMA, V1 (8 boxes/image), V2 and V3 (4 each, V3 at half resolution) through the
//!     online network (backbone, FPN, RoIAlign on 4 levels, 4conv1fc, projector, predictor) and the
//!     target network, the symmetrised box loss, one LARS step;
//!   * cp2: key EMA, query segmentor (OS16 ResNet, ASPP, projection) forward + backward, key
//!     forward in 2 shuffled sub-batches, instance + dense losses on a 4096-key queue, one SGD step.
//!
//! Each step ends by reading the loss back (which waits for the device). Prints one JSON line:
//! median and all step times, peak RSS.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use proto_shm::BatchMeta;
use trainer::data::StepBatch;
use trainer::methods::mocov2::{Encoder, MocoV2};
use trainer::methods::{cp2, soco};
use trainer::nn::resnet::Depth;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "r18")]
    arch: String,
    #[arg(long, default_value_t = 112)]
    res: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// mocov2, soco or cp2.
    #[arg(long, default_value = "mocov2")]
    method: String,
    /// SoCo: pool each box on its assigned FPN level only (`roi_all_levels: false`).
    #[arg(long)]
    roi_assigned_only: bool,
    /// flex (CPU), tch (libtorch CPU; needs the `tch` feature) or cuda (needs the `cuda` feature).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// mocov2: also time the parts of a step on their own (an extra EMA update after each step,
    /// the SGD step) and print their medians. CPU backends only: their ops are synchronous.
    #[arg(long)]
    phases: bool,
}

fn device(name: &str) -> anyhow::Result<Device> {
    match name {
        "flex" => trainer::backend::device(config::Backend::Flex),
        "tch" => trainer::backend::device(config::Backend::Tch),
        "cuda" => trainer::backend::device(config::Backend::Cuda),
        other => anyhow::bail!("unknown backend {other}"),
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// A synthetic SoCo batch: 4 box sets of K = 4 boxes per image (ids 1..4, two of them shared by
/// each pair), random normalised boxes with the levels their sizes give.
fn soco_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (sets, k) = (4, 4);
    let mut boxes = Vec::new();
    let mut ids = Vec::new();
    let mut levels = Vec::new();
    for _ in 0..n {
        for s in 0..sets {
            let size = if s == 3 { res / 2 } else { res } as f32;
            for slot in 0..k {
                let (x1, y1) = (rng.random_range(0.0..0.6f32), rng.random_range(0.0..0.6f32));
                let (w, h) = (rng.random_range(0.1..0.4f32), rng.random_range(0.1..0.4f32));
                for v in [x1, y1, x1 + w, y1 + h] {
                    boxes.extend_from_slice(&v.to_le_bytes());
                }
                let id: i32 = if slot < 2 { slot + 1 } else { s * 10 + slot };
                ids.extend_from_slice(&id.to_le_bytes());
                let side = ((w * size + 1.0) * (h * size + 1.0)).sqrt();
                levels.push(if side <= 48.0 {
                    0
                } else if side <= 96.0 {
                    1
                } else if side <= 192.0 {
                    2
                } else {
                    3
                });
            }
        }
    }
    let img = |r: usize| Tensor::<4>::random([n, 3, r, r], Distribution::Normal(0.0, 1.0), device);
    StepBatch {
        views: vec![img(res), img(res), img(res / 2)],
        host: [("boxes", boxes), ("box_ids", ids), ("box_levels", levels)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        meta: BatchMeta {
            epoch: 0,
            index_in_epoch: 0,
        },
    }
}

/// A synthetic CP² batch: two composites and their OS16 masks (a centred window of ~60 %).
fn cp2_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    let g = res / 16;
    let mask: Vec<u8> = (0..n * g * g)
        .map(|i| {
            let (y, x) = ((i % (g * g)) / g, i % g);
            (y >= g / 5 && y < g - g / 5 && x >= g / 5 && x < g - g / 5) as u8
        })
        .collect();
    let img = || Tensor::<4>::random([n, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    StepBatch {
        views: vec![img(), img()],
        host: [("grid0", mask.clone()), ("grid1", mask)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        meta: BatchMeta {
            epoch: 0,
            index_in_epoch: 0,
        },
    }
}

/// Runs `step` (which returns the loss it read back) for the warm-up and timed steps and prints
/// the JSON line.
fn time_steps(cli: &Cli, mut step: impl FnMut(usize) -> f64) {
    let mut times = Vec::new();
    let mut last = 0.0;
    for i in 0..cli.warmup + cli.steps {
        let t = Instant::now();
        last = step(i);
        if i >= cli.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    report(cli, times, last);
}

fn report(cli: &Cli, times: Vec<f64>, last: f64) {
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        serde_json::json!({
            "impl": format!("burn-{}", cli.backend), "method": cli.method, "arch": cli.arch, "res": cli.res,
            "roi_assigned_only": cli.roi_assigned_only,
            "batch": cli.batch, "median_ms": sorted[sorted.len() / 2], "times_ms": times,
            "peak_rss_mib": peak_rss_mib(), "check": last,
        })
    );
}

fn bench_soco(cli: &Cli, depth: Depth, device: &Device) -> anyhow::Result<()> {
    let cfg = config::SocoConfig {
        roi_all_levels: !cli.roi_assigned_only,
        ..Default::default()
    };
    let mut online = soco::Online::new(depth, &cfg, device);
    let mut state = soco::Soco::new(&cfg, depth, &online, device);
    let mut optim = trainer::optim::build(&config::Optimizer::Lars {
        lr: 1.0,
        momentum: 0.9,
        weight_decay: 1e-5,
        trust_coefficient: 0.001,
        eps: 1e-8,
    });
    let batch = soco_batch(cli.batch, cli.res, device);
    time_steps(cli, |step| {
        let (loss, _) = state.loss(&online, &batch, step, 1000);
        let grads = GradientsParams::from_grads(loss.backward(), &online);
        replace_with::replace_with_or_abort(&mut online, |m| optim.step(0.1, m, grads));
        loss.into_scalar::<f32>() as f64
    });
    Ok(())
}

fn bench_cp2(cli: &Cli, depth: Depth, device: &Device) -> anyhow::Result<()> {
    let cfg = config::Cp2Config {
        queue_size: 4096,
        key_bn: config::KeyBatchNorm::ShuffledSubBatches(2),
        ..Default::default()
    };
    let mut query = cp2::Segmentor::new(depth, &cfg, device);
    let mut state = cp2::Cp2::new(&cfg, depth, &query, device);
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.015,
        momentum: 0.9,
        weight_decay: 1e-4,
    });
    let batch = cp2_batch(cli.batch, cli.res, device);
    time_steps(cli, |step| {
        let (loss, _) = state.loss(&query, &batch, step as u64);
        let grads = GradientsParams::from_grads(loss.backward(), &query);
        replace_with::replace_with_or_abort(&mut query, |m| optim.step(0.015, m, grads));
        loss.into_scalar::<f32>() as f64
    });
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let device = device(&cli.backend)?;
    device.seed(0);
    let depth = if cli.arch == "r50" {
        Depth::R50
    } else {
        Depth::R18
    };
    match cli.method.as_str() {
        "soco" => return bench_soco(&cli, depth, &device),
        "cp2" => return bench_cp2(&cli, depth, &device),
        "mocov2" => {}
        other => anyhow::bail!("unknown --method {other} (mocov2, soco, cp2)"),
    }
    let cfg = config::MocoV2Config {
        queue_size: 4096,
        proj_hidden: depth.out_channels(),
        // As tests/reference/torch_step.py: 2 sub-batches (the config default, 8, is MoCo's
        // 8-GPU grouping of a 256 batch; at batch 32 it would run 8 key forwards of 4).
        key_bn: config::KeyBatchNorm::ShuffledSubBatches(2),
        ..Default::default()
    };
    let mut query = Encoder::new(depth, &cfg, &device);
    let mut moco = MocoV2::new(&cfg, depth, &query, &device);
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.03,
        momentum: 0.9,
        weight_decay: 1e-4,
    });
    let shape = [cli.batch, 3, cli.res, cli.res];
    let x0 = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let x1 = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    // Optimiser time is taken inside the timed step; the EMA, with --phases, as extra updates
    // after the timed steps (so they do not count in the step time).
    let mut optim_ms = Vec::new();
    time_steps(&cli, |step| {
        let (loss, _) = moco.loss(&query, x0.clone(), x1.clone(), step as u64);
        let grads = GradientsParams::from_grads(loss.backward(), &query);
        let t_optim = Instant::now();
        replace_with::replace_with_or_abort(&mut query, |m| optim.step(0.03, m, grads));
        if step >= cli.warmup {
            optim_ms.push(t_optim.elapsed().as_secs_f64() * 1e3);
        }
        // The queue's first key as well: the key forward must have run.
        moco.queue
            .keys
            .clone()
            .slice([0..1, 0..1])
            .into_scalar::<f32>() as f64
            + loss.into_scalar::<f32>() as f64
    });
    if cli.phases {
        let ema_ms: Vec<f64> = (0..cli.steps)
            .map(|_| {
                let t = Instant::now();
                trainer::ema::update(&mut moco.key, &query, 0.999);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        eprintln!(
            "phases_ms: ema {:.1} (measured as extra updates), sgd step {:.1}",
            median(ema_ms),
            median(optim_ms)
        );
    }
    Ok(())
}
