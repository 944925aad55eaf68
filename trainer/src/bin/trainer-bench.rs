//! `trainer-bench`: milliseconds per MoCo v2 training step on synthetic input, for comparison
//! with the same step in PyTorch (tests/reference/torch_step.py). One step = EMA update of the key
//! encoder, query forward + backward, key forward in 2 shuffled sub-batches, InfoNCE against a
//! 4096-key queue, one SGD step, reading the loss back (which waits for the device).
//! Prints one JSON line: median and all step times, peak RSS.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use trainer::methods::mocov2::{Encoder, MocoV2};
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
    /// flex (CPU) or cuda (needs the `cuda` feature).
    #[arg(long, default_value = "flex")]
    backend: String,
}

fn device(name: &str) -> anyhow::Result<Device> {
    match name {
        "flex" => trainer::backend::device(config::Backend::Flex),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let device = device(&cli.backend)?;
    device.seed(0);
    let depth = if cli.arch == "r50" {
        Depth::R50
    } else {
        Depth::R18
    };
    let cfg = config::MocoV2Config {
        queue_size: 4096,
        proj_hidden: depth.out_channels(),
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
    let mut times = Vec::new();
    let mut last = 0.0;
    for step in 0..cli.warmup + cli.steps {
        let t = Instant::now();
        let (loss, _) = moco.loss(&query, x0.clone(), x1.clone(), step as u64);
        let grads = GradientsParams::from_grads(loss.backward(), &query);
        query = optim.step(0.03, query, grads);
        last = moco
            .queue
            .keys
            .clone()
            .slice([0..1, 0..1])
            .into_scalar::<f32>() as f64
            + loss.into_scalar::<f32>() as f64;
        if step >= cli.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        serde_json::json!({
            "impl": format!("burn-{}", cli.backend), "arch": cli.arch, "res": cli.res, "batch": cli.batch,
            "median_ms": sorted[sorted.len() / 2], "times_ms": times, "peak_rss_mib": peak_rss_mib(), "check": last,
        })
    );
    Ok(())
}
