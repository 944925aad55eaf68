//! Momentum (EMA) targets: θ_k ← m·θ_k + (1 − m)·θ_q for every parameter (not the BN running
//! statistics, which the key encoder keeps from its own forward passes, as in MoCo's code).
//! Parameters are paired by visiting both modules in the same structural order.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend {
    online: std::vec::IntoIter<Tensor<1>>,
    momentum: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let online = self
            .online
            .next()
            .expect("EMA target and online module differ in structure");
        let m = self.momentum;
        param.map(|t| {
            let shape = t.shape();
            let online = online.reshape(shape);
            // θ_k + (1 − m)(θ_q − θ_k) written as θ_q + m(θ_k − θ_q): every op's left operand is
            // θ_k's own, unshared buffer, so libtorch updates it in place (three passes, no
            // allocation; m·θ_k + (1 − m)·θ_q allocated two parameter-sized temporaries).
            t.detach()
                .sub(online.clone())
                .mul_scalar(m)
                .add(online)
                .detach()
        })
    }
}

/// Moves `target` towards `online` with momentum `m` (both of the same structure), in place where
/// the backend allows it.
pub fn update<M: Module>(target: &mut M, online: &M, momentum: f64) {
    let mut collect = Collect(Vec::new());
    online.visit(&mut collect);
    let mut blend = Blend {
        online: collect.0.into_iter(),
        momentum,
    };
    // Take the target out by value, leaving a handle copy of `online` (no tensor copied) for the
    // moment: the target's buffers must have no other owner to be updated in place.
    let owned = std::mem::replace(target, online.clone());
    *target = owned.map(&mut blend).no_grad();
}

/// A detached, independent copy of `online` to start a target from: `fresh` (a newly built
/// module of the same structure) takes `online`'s values. Going through a record matters: a plain
/// `clone()` would share the BN running statistics, which burn keeps in shared state.
pub fn copy_of<M: Module>(online: &M, fresh: M) -> M {
    fresh.load_record(online.clone().into_record()).no_grad()
}
