//! Optimisers and learning-rate schedules (METHODS.md §1.4, §3.6).

pub mod lars;
pub mod schedule;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig};
use config::Optimizer;

/// The optimiser a config asks for. Learning rates come from the schedule at each step.
pub fn build(cfg: &Optimizer) -> ModuleOptimizer {
    match *cfg {
        Optimizer::Sgd {
            momentum,
            weight_decay,
            ..
        } => {
            let mut sgd = SgdConfig::new();
            if momentum > 0.0 {
                sgd = sgd.with_momentum(Some(MomentumConfig {
                    momentum,
                    dampening: 0.0,
                    nesterov: false,
                }));
            }
            if weight_decay > 0.0 {
                sgd = sgd.with_weight_decay(Some(WeightDecayConfig {
                    penalty: weight_decay as f32,
                }));
            }
            sgd.init()
        }
        Optimizer::Lars {
            momentum,
            weight_decay,
            trust_coefficient,
            eps,
            ..
        } => ModuleOptimizer::from(lars::Lars::new(
            momentum,
            weight_decay,
            trust_coefficient,
            eps,
        )),
    }
}

/// The config's base learning rate (for a batch of `base_batch_size`).
pub fn base_lr(cfg: &Optimizer) -> f64 {
    match *cfg {
        Optimizer::Sgd { lr, .. } | Optimizer::Lars { lr, .. } => lr,
    }
}
