//! Optimiser and module state survive a save/load round trip exactly: the next steps of a restored
//! (model, optimiser) pair equal those of the original.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Bytes, Distribution, Tensor};
use trainer::methods::mocov2::Encoder;
use trainer::nn::resnet::Depth;

fn step(model: Encoder, optim: &mut burn::optim::ModuleOptimizer, x: &Tensor<4>) -> (Encoder, f32) {
    let y = model.forward(x.clone());
    let loss = y.powf_scalar(2.0).mean();
    let v = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optim.step(0.1, model, grads), v)
}

#[test]
fn restored_model_and_optimiser_continue_identically() {
    let device = trainer::backend::test_device().autodiff();
    device.seed(1);
    let cfg = config::MocoV2Config {
        proj_hidden: 16,
        proj_dim: 8,
        ..Default::default()
    };
    let mut model = Encoder::new(Depth::R18, &cfg, &device);
    let opt_cfg = config::Optimizer::Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let mut optim = trainer::optim::build(&opt_cfg);
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    for _ in 0..2 {
        model = step(model, &mut optim, &x).0;
    }
    let model_bytes = model.clone().into_record().into_bytes().unwrap().to_vec();
    let optim_bytes = optim.into_bytes().unwrap().to_vec();
    // Continue the original.
    let (m1, _) = step(model, &mut optim, &x);
    let (_, l_orig) = step(m1, &mut optim, &x);
    // Restore into freshly initialised objects and continue.
    let fresh = Encoder::new(Depth::R18, &cfg, &device);
    let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(model_bytes)).unwrap();
    let restored = fresh.load_record(record);
    let mut optim2 = trainer::optim::build(&opt_cfg)
        .from_bytes(Bytes::from_bytes_vec(optim_bytes))
        .unwrap();
    let (m2, _) = step(restored, &mut optim2, &x);
    let (_, l_restored) = step(m2, &mut optim2, &x);
    assert_eq!(l_orig, l_restored);
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Gradients;
    struct Check<'a>(&'a Gradients, usize, Vec<String>, Vec<String>);
    impl ModuleVisitor for Check<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.3.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.3.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            // BN running statistics are state, not trained parameters.
            if p.is_require_grad() {
                self.1 += 1;
                if p.val().grad(self.0).is_none() {
                    self.2.push(self.3.join("."));
                }
            }
        }
    }
    let device = trainer::backend::test_device().autodiff();
    device.seed(3);
    for depth in [Depth::R18, Depth::R50] {
        let cfg = config::MocoV2Config {
            proj_hidden: 16,
            proj_dim: 8,
            ..Default::default()
        };
        let model = Encoder::new(depth, &cfg, &device);
        let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let grads = model.forward(x).powf_scalar(2.0).mean().backward();
        let mut c = Check(&grads, 0, vec![], vec![]);
        model.visit(&mut c);
        assert!(c.2.is_empty(), "{depth:?}: no gradient for {:?}", c.2);
        // conv + BN (γ, β) + MLP (w, b): 20 + 40 + 4 for R18, 53 + 106 + 4 for R50.
        assert_eq!(c.1, if depth == Depth::R18 { 64 } else { 163 });
    }
}
