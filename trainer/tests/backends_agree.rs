//! With the `tch` feature: libtorch and flex compute the same training steps. One ResNet-18 MoCo v2
//! encoder, initialised on flex and copied to libtorch through its record; the same batch; three
//! SGD steps on each. Losses and a weight after the steps must agree to float tolerance — an
//! independent check of each backend by the other (different kernels: oneDNN convolutions and
//! libtorch's reductions against burn-flex's Rust ones).
#![cfg(feature = "tch")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Bytes, Device, Distribution, Tensor, TensorData};
use trainer::methods::mocov2::Encoder;
use trainer::nn::resnet::Depth;

fn step(model: Encoder, optim: &mut burn::optim::ModuleOptimizer, x: &Tensor<4>) -> (Encoder, f32) {
    let y = model.forward(x.clone());
    let loss = y.powf_scalar(2.0).mean();
    let v = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optim.step(0.05, model, grads), v)
}

/// Three steps from `record` on `device`; returns the losses and the flattened weights.
fn run(record_bytes: &[u8], input: &TensorData, device: &Device) -> (Vec<f32>, Vec<f32>) {
    let cfg = config::MocoV2Config {
        proj_hidden: 16,
        proj_dim: 8,
        ..Default::default()
    };
    let record =
        burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(record_bytes.to_vec()))
            .unwrap();
    let mut model = Encoder::new(Depth::R18, &cfg, device).load_record(record);
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
    });
    let x = Tensor::<4>::from_data(input.clone(), device);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let (m, l) = step(model, &mut optim, &x);
        model = m;
        losses.push(l);
    }
    let mut flat = Flat(Vec::new());
    model.visit(&mut flat);
    (losses, flat.0)
}

/// Every float parameter and buffer (BN running statistics included), in visiting order.
struct Flat(Vec<f32>);
impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(
            p.val()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
}

#[test]
fn libtorch_and_flex_take_the_same_steps() {
    let flex = trainer::backend::device(config::Backend::Flex).unwrap();
    let tch = trainer::backend::device(config::Backend::Tch).unwrap();
    assert_ne!(flex, tch, "two different backends");
    flex.seed(3);
    let cfg = config::MocoV2Config {
        proj_hidden: 16,
        proj_dim: 8,
        ..Default::default()
    };
    let init = Encoder::new(Depth::R18, &cfg, &flex)
        .into_record()
        .into_bytes()
        .unwrap()
        .to_vec();
    let input =
        Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &flex).into_data();
    let (loss_flex, w_flex) = run(&init, &input, &flex);
    let (loss_tch, w_tch) = run(&init, &input, &tch);
    assert!(loss_flex[2] < loss_flex[0], "the loss falls: {loss_flex:?}");
    for (a, b) in loss_flex.iter().zip(&loss_tch) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "losses {loss_flex:?} vs {loss_tch:?}"
        );
    }
    assert_eq!(w_flex.len(), w_tch.len());
    let worst = w_flex
        .iter()
        .zip(&w_tch)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0.0f32, f32::max);
    println!("losses flex {loss_flex:?} tch {loss_tch:?}; worst weight difference {worst:e}");
    assert!(
        worst < 1e-3,
        "{} weights differ by up to {worst} after three steps",
        w_flex.len()
    );
}
