//! `trainer-bench`: milliseconds per training step on synthetic input, for comparison with the
//! same step in PyTorch (tests/reference/torch_step.py for MoCo v2, torch_soco_cp2_step.py for
//! SoCo and CP²).
//!   * mocov2: EMA update of the key encoder, query forward + backward, key forward in 2 shuffled
//!     sub-batches, InfoNCE against a 4096-key queue, one SGD step;
//!   * soco: target EMA, V1 (8 boxes/image), V2 and V3 (4 each, V3 at half resolution) through the
//!     online network (backbone, FPN, RoIAlign on 4 levels, 4conv1fc, projector, predictor) and the
//!     target network, the symmetrised box loss, one LARS step;
//!   * cp2: key EMA, query segmentor (OS16 ResNet, ASPP, projection) forward + backward, key
//!     forward in 2 shuffled sub-batches, instance + dense losses on a 4096-key queue, one SGD step;
//!   * plr, edmoco, edmoco-psp, plmoco, pledmoco: the SSL4DP methods at the draft's sizes —
//!     PLR (OS8 ResNet, MoCoFCN 512, 4×4 patches, per-pixel CE at input size); EDMoCo (OS8,
//!     MoCoFCN 512, or PSP 512 with the encoder at 1/100 lr) as MoCo v2 on the pooled decoder
//!     output; PLMoCo (OS16 cells, 1×1 head 2048→2048→128) and PLEDMoCo (OS16, MoCoFCN 512,
//!     encoder at 1/100 lr) with two of three cells matched; 4096-key queues
//!     (tests/reference/torch_ssl4dp_step.py);
//!   * seg: segmentation fine-tuning (mmseg's fcn_r{18,50}-d8: OS8 ResNet, FCNHead with
//!     concat_input, auxiliary FCNHead on C4 at weight 0.4, 21 classes), per-pixel cross-entropy
//!     (ignore 255) on logits upsampled to the crop, one SGD step (tests/reference/torch_seg_step.py).
//!   * seg-proto: the same with ProtoSeg's prototype head in place of the FCN classifier (10
//!     prototypes per class, Sinkhorn assignment, momentum update, PPC + PPD;
//!     `torch_seg_step.py --proto`).
//!
//! Each step is the trainer's own step function (`trainer::method::train_step`: EMA update,
//! loss, backward, optimiser step) and ends by reading the loss back (which waits for the
//! device). Prints one JSON line: median and all step times, peak RSS.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use config::{MethodConfig, RunConfig};
use proto_shm::schemas::names;
use trainer::data::StepBatch;
use trainer::dist::World;
use trainer::method::{self, Method, StepCtx};
use trainer::methods::{with_method, WithMethod};

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
    /// mocov2, soco, cp2, seg, seg-proto, plr, edmoco, edmoco-psp, plmoco or pledmoco.
    #[arg(long, default_value = "mocov2")]
    method: String,
    /// SoCo: pool each box on its assigned FPN level only (`roi_all_levels: false`).
    #[arg(long)]
    roi_assigned_only: bool,
    /// flex (CPU), tch (libtorch CPU; needs the `tch` feature) or cuda (needs the `cuda` feature).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Also time the parts of a step on their own (an extra EMA update after each step, the
    /// optimiser step) and print their medians. CPU backends only: their ops are synchronous.
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
    StepBatch::new(
        [
            (names::VIEW1, img(res)),
            (names::VIEW2, img(res)),
            (names::VIEW3, img(res / 2)),
        ],
        [
            (names::BOXES, boxes),
            (names::BOX_IDS, ids),
            (names::BOX_LEVELS, levels),
        ],
    )
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
    StepBatch::new(
        [(names::VIEW0, img()), (names::VIEW1, img())],
        [(names::GRID0, mask.clone()), (names::GRID1, mask)],
    )
}

/// A synthetic segmentation batch: a random crop, random labels over 21 classes with a tenth
/// ignored, the whole crop real (no padding).
fn seg_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let labels: Vec<u8> = (0..n * res * res)
        .map(|_| {
            if rng.random::<f32>() < 0.1 {
                255
            } else {
                rng.random_range(0..21u8)
            }
        })
        .collect();
    let extent: Vec<u8> = (0..n)
        .flat_map(|_| [res as i32, res as i32])
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let img = Tensor::<4>::random([n, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    StepBatch::new(
        [(names::VIEW0, img)],
        [(names::SEG_LABEL, labels), (names::EXTENT, extent)],
    )
}

/// A synthetic patch-rotation batch: a random view and a random class per patch of a 4×4 grid.
fn plr_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    let rotation: Vec<u8> = (0..n * 16).map(|i| (i * 7 % 4) as u8).collect();
    let img = Tensor::<4>::random([n, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    StepBatch::new([(names::VIEW0, img)], [(names::ROTATION, rotation)])
}

/// A synthetic patch-MoCo batch: two random views; of the OS16 cells of view 0, every third is
/// unmatched and the others match the same cell of view 1.
fn patch_moco_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    let cells = (res / 16) * (res / 16);
    let matches: Vec<u8> = (0..n * cells)
        .map(|r| if r % 3 == 0 { -1 } else { (r % cells) as i32 })
        .flat_map(|m| m.to_le_bytes())
        .collect();
    let img = || Tensor::<4>::random([n, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    StepBatch::new(
        [(names::VIEW0, img()), (names::VIEW1, img())],
        [(names::MATCH, matches)],
    )
}

/// A synthetic MoCo v2 batch: two random views.
fn two_crop_batch(n: usize, res: usize, device: &Device) -> StepBatch {
    let img = || Tensor::<4>::random([n, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    StepBatch::new([(names::VIEW0, img()), (names::VIEW1, img())], [])
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The run config the benchmark's step is built from, as tests/reference's PyTorch steps set
/// theirs: 4096-key queues and 2 shuffled sub-batches (the config default, 8, is MoCo's 8-GPU
/// grouping of a 256 batch; at batch 32 it would run 8 key forwards of 4).
fn bench_run(cli: &Cli) -> Result<(RunConfig, f64)> {
    let arch = if cli.arch == "r50" {
        config::Arch::ResNet50
    } else {
        config::Arch::ResNet18
    };
    let two_shards = config::KeyBatchNorm::ShuffledSubBatches(2);
    let moco = || config::MocoV2Config {
        queue_size: 4096,
        key_bn: two_shards,
        ..Default::default()
    };
    let sgd = |lr| config::Optimizer::Sgd {
        lr,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let (method, optimizer, lr) = match cli.method.as_str() {
        "mocov2" => (
            MethodConfig::MocoV2(config::MocoV2Config {
                queue_size: 4096,
                proj_hidden: if arch == config::Arch::ResNet50 {
                    2048
                } else {
                    512
                },
                key_bn: two_shards,
                ..Default::default()
            }),
            config::Optimizer::Sgd {
                lr: 0.03,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            0.03,
        ),
        "soco" => (
            MethodConfig::Soco(config::SocoConfig {
                roi_all_levels: !cli.roi_assigned_only,
                ..Default::default()
            }),
            config::Optimizer::Lars {
                lr: 1.0,
                momentum: 0.9,
                weight_decay: 1e-5,
                trust_coefficient: 0.001,
                eps: 1e-8,
            },
            0.1,
        ),
        "cp2" => (
            MethodConfig::Cp2(config::Cp2Config {
                queue_size: 4096,
                key_bn: two_shards,
                ..Default::default()
            }),
            config::Optimizer::Sgd {
                lr: 0.015,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            0.015,
        ),
        "seg" | "seg-proto" => {
            let r50 = arch == config::Arch::ResNet50;
            (
                MethodConfig::Segmentation(config::SegmentationConfig {
                    head: config::SegHead::Fcn {
                        convs: 2,
                        channels: if r50 { 512 } else { 128 },
                        concat_input: true,
                    },
                    aux_channels: if r50 { 256 } else { 64 },
                    prototypes: (cli.method == "seg-proto")
                        .then(config::ProtoSegConfig::default),
                    crop: (cli.res, cli.res),
                    ..Default::default()
                }),
                config::Optimizer::Sgd {
                    lr: 0.01,
                    momentum: 0.9,
                    weight_decay: 5e-4,
                },
                0.01,
            )
        }
        "plr" => (
            MethodConfig::PatchRotation(config::PatchRotationConfig {
                view: config::ViewAugment {
                    size: cli.res,
                    ..Default::default()
                },
                ..Default::default()
            }),
            sgd(0.03),
            0.03,
        ),
        "edmoco" | "edmoco-psp" => {
            let psp = cli.method == "edmoco-psp";
            (
                MethodConfig::EdMoco(config::EdMocoConfig {
                    moco: moco(),
                    decoder: if psp {
                        config::DecoderConfig::Psp { channels: 512 }
                    } else {
                        config::DecoderConfig::MocoFcn { channels: 512 }
                    },
                    encoder_lr_scale: if psp { 0.01 } else { 1.0 },
                    ..Default::default()
                }),
                sgd(0.03),
                0.03,
            )
        }
        "plmoco" | "pledmoco" => {
            let ed = cli.method == "pledmoco";
            (
                MethodConfig::PatchMoco(config::PatchMocoConfig {
                    moco: config::MocoV2Config {
                        view: config::ViewAugment {
                            size: cli.res,
                            ..Default::default()
                        },
                        ..moco()
                    },
                    decoder: ed.then_some(config::DecoderConfig::MocoFcn { channels: 512 }),
                    encoder_lr_scale: if ed { 0.01 } else { 1.0 },
                    ..Default::default()
                }),
                sgd(0.03),
                0.03,
            )
        }
        other => anyhow::bail!(
            "unknown --method {other} (mocov2, soco, cp2, seg, seg-proto, plr, edmoco, edmoco-psp, plmoco, pledmoco)"
        ),
    };
    let text = format!(
        "(name: \"bench\", dataset: (root: \".\"), method: MocoV2(temperature: 0.2), loader: (batch_size: {}))",
        cli.batch
    );
    let mut run = RunConfig::from_str(&text, "trainer-bench")?;
    run.method = method;
    run.trainer.arch = arch;
    run.trainer.optimizer = optimizer;
    Ok((run, lr))
}

struct Bench<'a> {
    cli: &'a Cli,
    run: &'a RunConfig,
    lr: f64,
    batch: &'a StepBatch,
    device: &'a Device,
}

impl WithMethod for Bench<'_> {
    type Output = Result<()>;
    fn call<M: Method>(self) -> Result<()> {
        let (cli, device) = (self.cli, self.device);
        let (mut online, mut method) = M::new(self.run, device)?;
        let mut optim = trainer::optim::build(&self.run.trainer.optimizer);
        let mut times = Vec::new();
        let mut last = 0.0;
        for i in 0..cli.warmup + cli.steps {
            let ctx = StepCtx {
                step: i,
                total: 1000,
                seed: i as u64,
                world: &World::single(),
            };
            let t = Instant::now();
            let (loss, _) = method::train_step(
                &mut online,
                &mut method,
                &mut optim,
                self.lr,
                self.batch,
                ctx,
            )?;
            // The first queue's first key as well: the key forward must have run.
            last = loss
                + method.queues().first().map_or(0.0, |(_, q)| {
                    q.keys.clone().slice([0..1, 0..1]).into_scalar::<f32>() as f64
                });
            if i >= cli.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(cli, times, last);
        if cli.phases {
            // The EMA as extra updates after the timed steps (so they do not count in the step
            // time); the optimiser step alone on zero-loss gradients is not representative, so
            // it is left to profilers.
            let ema_ms: Vec<f64> = (0..cli.steps)
                .map(|_| {
                    let t = Instant::now();
                    if let Some(target) = method.target_mut() {
                        trainer::ema::update(target, M::target_source(&online), 0.999);
                    }
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            eprintln!(
                "phases_ms: ema {:.1} (measured as extra updates)",
                median(ema_ms)
            );
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let device = device(&cli.backend)?;
    device.seed(0);
    let (run, lr) = bench_run(&cli)?;
    let batch = match cli.method.as_str() {
        "soco" => soco_batch(cli.batch, cli.res, &device),
        "cp2" => cp2_batch(cli.batch, cli.res, &device),
        "seg" | "seg-proto" => seg_batch(cli.batch, cli.res, &device),
        "plr" => plr_batch(cli.batch, cli.res, &device),
        "plmoco" | "pledmoco" => patch_moco_batch(cli.batch, cli.res, &device),
        _ => two_crop_batch(cli.batch, cli.res, &device),
    };
    with_method(
        &run.method,
        Bench {
            cli: &cli,
            run: &run,
            lr,
            batch: &batch,
            device: &device,
        },
    )?
}
