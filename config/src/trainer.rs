//! Trainer settings: backend, backbone, optimiser and schedule (METHODS.md §1.4, §3.6, §4.4).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Backend {
    /// libtorch when this build has it (`--features tch`, what the README's commands build),
    /// otherwise flex. BENCHMARKS.md has the measurements behind this default.
    #[default]
    Auto,
    /// burn-flex: pure Rust, nothing to install.
    Flex,
    /// burn-tch on libtorch (CPU, or CUDA when built with it).
    Tch,
    /// burn-cuda (CubeCL), GPU without libtorch.
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Arch {
    ResNet18,
    #[default]
    ResNet50,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// SGD with momentum; `lr` is for a batch of `TrainerConfig::base_batch_size`.
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    /// LARS around SGD (SoCo): 1-D parameters excluded from decay and scaling.
    Lars {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        trust_coefficient: f64,
        eps: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Linear warm-up from lr/warmup_div, then half-cosine to `final_lr`.
    Cosine {
        warmup_epochs: f64,
        final_lr: f64,
    },
    /// Polynomial decay (1 − it/max)^power to `min_lr` (segmentation fine-tuning).
    Poly {
        power: f64,
        min_lr: f64,
    },
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    pub backend: Backend,
    pub arch: Arch,
    pub epochs: usize,
    /// Stop after this many steps even if epochs remain (quick runs, tests); `--max-steps` on
    /// the command line takes precedence.
    pub max_steps: Option<usize>,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// The learning rate is scaled by batch / base_batch_size (linear scaling rule).
    pub base_batch_size: usize,
    /// Not implemented: no method's reference clips gradients. Read only so that configs written
    /// by earlier versions (which carry `grad_clip_norm: None`) still parse; a value is refused.
    #[serde(default, skip_serializing)]
    pub grad_clip_norm: Option<f64>,
    /// Checkpoint every N steps (and at the end).
    pub checkpoint_every: usize,
    /// Where checkpoints, metrics and plots go; None: `runs/<name>`.
    pub output_dir: Option<PathBuf>,
    /// CPU threads for the backend; None: all cores.
    pub threads: Option<usize>,
}

impl Default for TrainerConfig {
    /// MoCo v2 / DenseCL ImageNet schedule (§1.4, §2.4).
    fn default() -> Self {
        TrainerConfig {
            backend: Backend::default(),
            arch: Arch::default(),
            epochs: 200,
            max_steps: None,
            optimizer: Optimizer::Sgd {
                lr: 0.03,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            schedule: Schedule::Cosine {
                warmup_epochs: 0.0,
                final_lr: 0.0,
            },
            base_batch_size: 256,
            grad_clip_norm: None,
            checkpoint_every: 1000,
            output_dir: None,
            threads: None,
        }
    }
}
