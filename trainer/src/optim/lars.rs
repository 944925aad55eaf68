//! LARS around SGD with momentum, as SoCo's `lars.py` (METHODS.md §3.6): for every parameter with
//! more than one dimension, weight decay is added to the gradient, then the gradient is scaled by
//! the trust ratio `η·‖w‖ / (‖g‖ + eps)` (1 when either norm is 0); 1-D parameters (BN, biases) get
//! neither decay nor scaling. Then the usual momentum update `v ← μv + g`, `w ← w − lr·v`.

use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{LearningRate, Optimizer, SgdState};
use burn::tensor::{Device, Tensor};

#[derive(Clone)]
pub struct Lars {
    momentum: Momentum,
    weight_decay: f64,
    trust_coefficient: f64,
    eps: f64,
}

impl Lars {
    pub fn new(momentum: f64, weight_decay: f64, trust_coefficient: f64, eps: f64) -> Lars {
        Lars {
            momentum: Momentum::new(&MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov: false,
            }),
            weight_decay,
            trust_coefficient,
            eps,
        }
    }
}

impl Optimizer for Lars {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let grad = if D > 1 {
            let g = grad + tensor.clone().mul_scalar(self.weight_decay);
            let w_norm = tensor.clone().powf_scalar(2.0).sum().sqrt();
            let g_norm = g.clone().powf_scalar(2.0).sum().sqrt();
            // trust = η‖w‖/(‖g‖+eps) where both norms are positive, else 1.
            let ratio = w_norm.clone().mul_scalar(self.trust_coefficient)
                / g_norm.clone().add_scalar(self.eps);
            let both = w_norm.greater_elem(0.0).bool_and(g_norm.greater_elem(0.0));
            let trust = ratio.mask_where(both.bool_not(), Tensor::ones([1], &tensor.device()));
            g * trust.unsqueeze()
        } else {
            grad
        };
        let (grad, momentum) = self
            .momentum
            .transform(grad, state.and_then(|s| s.momentum));
        let updated = tensor - grad.mul_scalar(lr);
        (updated, Some(SgdState::new(Some(momentum))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.map(|m| m.to_device(device));
        state
    }
}
