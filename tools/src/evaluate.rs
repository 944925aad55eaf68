//! `evaluate`: does a pretrained backbone segment better? From a run config's `eval` section it
//! derives two runs per backbone — fine-tuning (the `Segmentation` method over the train split) and
//! validation (phase `Validate` over the val split) — and runs each as a loader + trainer pair
//! (`launch`), so evaluation gets the loader's speed, the ring, checkpoints, resume and fault
//! handling of pretraining. With `--compare-random-init` (or the config's `compare_random_init`)
//! it repeats both on the same schedule from random init, the floor any pretraining must beat.
//!
//! Output folder (default `runs/<name>-eval`): `<init>/finetune/` (checkpoint, metrics, loss
//! plot), `<init>/val/` (`eval.json`, `predictions.png`), the derived configs beside them, and
//! `eval.json` with every init's scores.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use config::{
    DatasetConfig, DatasetLayout, EvalConfig, MethodConfig, RunConfig, SegHead, SegPhase,
    SegmentationConfig,
};
use loader::segsource::{image_size, SegDataset};

use crate::launch::LaunchArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Run config (RON) with an `eval` section: the pretraining run's own config.
    #[arg(long)]
    pub config: PathBuf,
    /// The backbone to evaluate: a checkpoint of ours (any method), a backbone record or a
    /// PyTorch-world weights file (torchvision / MoCo / mmselfsup / mmseg / SoCo `.pth`,
    /// detectron2 `.pkl`, `.safetensors`). Default: the config's `<output>/last.ckpt`.
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Also fine-tune from random init on the same schedule and print both.
    #[arg(long)]
    pub compare_random_init: bool,
    /// Only random init (no pretrained backbone needed).
    #[arg(long, conflicts_with_all = ["backbone", "compare_random_init"])]
    pub random_init_only: bool,
    /// Linear probe: a 1×1 classifier on the frozen backbone (no decode or auxiliary head).
    #[arg(long)]
    pub probe: bool,
    /// Fine-tuning iterations (default: the config's `eval.iterations`).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Fine-tune on the first N train images only.
    #[arg(long)]
    pub max_train_images: Option<usize>,
    /// Output folder (default: `runs/<name>-eval`).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Loader worker threads (default: the config's).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// One backbone's evaluation.
#[derive(Debug, Clone)]
pub struct InitResult {
    /// "pretrained" or "random init".
    pub label: String,
    pub backbone: Option<PathBuf>,
    pub finetune_dir: PathBuf,
    pub val_dir: PathBuf,
    /// The validation pass's `eval.json`.
    pub report: serde_json::Value,
}

impl InitResult {
    pub fn miou(&self) -> f64 {
        self.report["miou"].as_f64().unwrap_or(f64::NAN)
    }
}

/// How `evaluate` ended.
pub enum Outcome {
    Done {
        out: PathBuf,
        results: Vec<InitResult>,
    },
    /// A pair failed or was interrupted: `launch`'s exit code.
    Stopped(u8),
}

/// The (height, width) of the split's largest image: the validation slot.
pub fn largest_image(ds: &SegDataset) -> Result<(usize, usize)> {
    let mut slot = (1, 1);
    for p in &ds.pairs {
        let (w, h) = image_size(&p.image)?;
        slot = (slot.0.max(h), slot.1.max(w));
    }
    Ok(slot)
}

/// The fine-tuning and validation runs of `run`'s `eval` for one backbone (None: random init).
pub fn derive_runs(
    run: &RunConfig,
    eval: &EvalConfig,
    backbone: Option<&Path>,
    tag: &str,
    train_len: usize,
    val_slot: (usize, usize),
) -> (RunConfig, RunConfig) {
    let seg = SegmentationConfig {
        phase: SegPhase::Finetune,
        backbone: backbone.map(Path::to_path_buf),
        val_slot,
        ..eval.segmentation.clone()
    };
    let batches_per_epoch = (train_len / eval.batch_size).max(1);
    let mut finetune = run.clone();
    finetune.name = format!("{}-{tag}", run.name);
    finetune.eval = None;
    finetune.dataset = DatasetConfig {
        root: eval.root.clone(),
        layout: DatasetLayout::Segmentation {
            format: eval.format.clone(),
            split: eval.train_split.clone(),
        },
        proposals: None,
        max_images: eval.max_train_images,
    };
    finetune.loader.batch_size = eval.batch_size;
    finetune.loader.shm_name = None;
    finetune.method = MethodConfig::Segmentation(seg.clone());
    let t = &mut finetune.trainer;
    t.epochs = eval.iterations.div_ceil(batches_per_epoch);
    t.max_steps = Some(eval.iterations);
    t.optimizer = eval.optimizer.clone();
    t.schedule = eval.schedule.clone();
    t.base_batch_size = eval.batch_size;
    t.checkpoint_every = (eval.iterations / 4).max(1);
    t.output_dir = None;

    let mut val = finetune.clone();
    val.name = format!("{}-{tag}-val", run.name);
    val.dataset.layout = DatasetLayout::Segmentation {
        format: eval.format.clone(),
        split: eval.val_split.clone(),
    };
    val.dataset.max_images = None;
    val.loader.batch_size = 1;
    val.trainer.epochs = 1;
    val.trainer.max_steps = None;
    val.method = MethodConfig::Segmentation(SegmentationConfig {
        phase: SegPhase::Validate {
            checkpoint: PathBuf::new(), // set by the caller once the fine-tuning folder is known
        },
        ..seg
    });
    (finetune, val)
}

fn write_config(run: &RunConfig, path: &Path) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(path, run.to_ron()).with_context(|| format!("writing {}", path.display()))?;
    // Round trip: what the pair will read must be what was meant.
    RunConfig::from_file(path)?;
    Ok(())
}

fn pair(config: &Path, out_dir: &Path, workers: Option<usize>) -> Result<u8> {
    crate::launch::run(
        &LaunchArgs {
            out_dir: Some(out_dir.to_path_buf()),
            workers,
            ..LaunchArgs::new(config.to_path_buf())
        },
        None,
    )
}

/// Runs the evaluation `args` asks for.
pub fn run(args: &EvaluateArgs) -> Result<Outcome> {
    let run = RunConfig::from_file(&args.config)?;
    let Some(mut eval) = run.eval.clone() else {
        bail!(
            "{}: no `eval` section — add one (see config/presets/demo.ron) to say which dataset and protocol evaluate this run",
            args.config.display()
        );
    };
    if let Some(n) = args.iterations {
        eval.iterations = n;
    }
    if let Some(n) = args.max_train_images {
        eval.max_train_images = Some(n);
    }
    if args.probe {
        let s = &mut eval.segmentation;
        s.head = SegHead::Linear;
        s.frozen_backbone = true;
        s.aux_weight = 0.0;
    }
    let classes = eval.segmentation.classes;
    let train = SegDataset::open(&eval.root, eval.format.clone(), &eval.train_split, classes)?;
    let val = SegDataset::open(&eval.root, eval.format.clone(), &eval.val_split, classes)?;
    let train_len = eval
        .max_train_images
        .map_or(train.len(), |n| n.min(train.len()));
    if train_len < eval.batch_size {
        bail!(
            "{}: the train split has {train_len} images, fewer than one batch of {}",
            eval.root.display(),
            eval.batch_size
        );
    }
    let val_slot = largest_image(&val)?;
    let out = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-eval", run.name)));

    let mut inits: Vec<(String, Option<PathBuf>)> = Vec::new();
    if !args.random_init_only {
        let backbone = args
            .backbone
            .clone()
            .unwrap_or_else(|| run.output_dir().join("last.ckpt"));
        if !backbone.is_file() {
            bail!(
                "backbone {} not found: pretrain first, pass --backbone, or use --random-init-only",
                backbone.display()
            );
        }
        inits.push(("pretrained".into(), Some(backbone)));
    }
    if args.random_init_only || args.compare_random_init || eval.compare_random_init {
        inits.push(("random init".into(), None));
    }

    let mut results = Vec::new();
    for (label, backbone) in inits {
        let tag = if backbone.is_some() {
            "pretrained"
        } else {
            "random"
        };
        let dir = out.join(tag);
        let (finetune, mut val_run) =
            derive_runs(&run, &eval, backbone.as_deref(), tag, train_len, val_slot);
        let (ft_dir, val_dir) = (dir.join("finetune"), dir.join("val"));
        if let MethodConfig::Segmentation(s) = &mut val_run.method {
            s.phase = SegPhase::Validate {
                checkpoint: ft_dir.join("last.ckpt"),
            };
        }
        let ft_cfg = dir.join("finetune.ron");
        let val_cfg = dir.join("val.ron");
        write_config(&finetune, &ft_cfg)?;
        write_config(&val_run, &val_cfg)?;
        println!(
            "evaluate: {label}: fine-tuning {} iterations on {} ({} images)",
            eval.iterations, eval.train_split, train_len
        );
        let code = pair(&ft_cfg, &ft_dir, args.workers)?;
        if code != 0 {
            eprintln!(
                "evaluate: fine-tuning ({label}) stopped (exit {code}); config {}",
                ft_cfg.display()
            );
            return Ok(Outcome::Stopped(code));
        }
        println!(
            "evaluate: {label}: validating on {} ({} images)",
            eval.val_split,
            val.len()
        );
        let code = pair(&val_cfg, &val_dir, args.workers)?;
        if code != 0 {
            eprintln!(
                "evaluate: validation ({label}) stopped (exit {code}); config {}",
                val_cfg.display()
            );
            return Ok(Outcome::Stopped(code));
        }
        let json = val_dir.join("eval.json");
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?,
        )?;
        results.push(InitResult {
            label,
            backbone,
            finetune_dir: ft_dir,
            val_dir,
            report,
        });
    }
    Ok(Outcome::Done { out, results })
}

/// Per-class IoU of every init side by side, then the mIoU line.
pub fn print_table(results: &[InitResult]) {
    let Some(first) = results.first() else { return };
    let classes = first.report["classes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    print!("  {:<16}", "IoU (%)");
    for r in results {
        print!(" {:>12}", r.label);
    }
    println!();
    for (k, c) in classes.iter().enumerate() {
        print!("  {:<16}", c["name"].as_str().unwrap_or("?"));
        for r in results {
            let v = r.report["classes"][k]["iou"].as_f64();
            print!(
                " {:>12}",
                v.map_or("-".into(), |v| format!("{:.2}", v * 100.0))
            );
        }
        println!();
    }
    for (name, key) in [("mIoU", "miou"), ("mAcc", "macc"), ("aAcc", "aacc")] {
        print!("  {name:<16}");
        for r in results {
            print!(
                " {:>12.2}",
                r.report[key].as_f64().unwrap_or(f64::NAN) * 100.0
            );
        }
        println!();
    }
    println!(
        "  (majority-class predictor: mIoU {:.2})",
        first.report["majority_miou"].as_f64().unwrap_or(f64::NAN) * 100.0
    );
}

/// `eval.json` of the whole evaluation.
pub fn summary_json(results: &[InitResult]) -> serde_json::Value {
    serde_json::Value::Array(
        results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "init": r.label,
                    "backbone": r.backbone,
                    "finetune": r.finetune_dir,
                    "val": r.val_dir,
                    "miou": r.report["miou"],
                    "aacc": r.report["aacc"],
                    "macc": r.report["macc"],
                    "report": r.report,
                })
            })
            .collect(),
    )
}
