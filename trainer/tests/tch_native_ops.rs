//! With the `tch` feature: the libtorch kernels the vendored burn-tch calls in place of burn's
//! generic formulas (trainer/vendor/burn-tch/VENDORED.md) give the gradients flex computes with
//! those formulas — convolution input and weight gradients (strides, dilation, groups, asymmetric
//! padding), batch norm in training (output, batch mean and biased variance, all three gradients)
//! and in evaluation, and the ReLU backward.
#![cfg(feature = "tch")]

use burn::tensor::module::{batch_norm, batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn devices() -> (Device, Device) {
    let flex = trainer::backend::device(config::Backend::Flex).unwrap();
    let tch = trainer::backend::device(config::Backend::Tch).unwrap();
    (flex, tch)
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> TensorData {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), device).into_data()
}

/// Largest |a − b| / max(|a|, 1) over two tensors' values.
fn worst(a: TensorData, b: TensorData) -> f32 {
    let a = a.convert::<f32>().try_to_vec::<f32>().unwrap();
    let b = b.convert::<f32>().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// (output, x gradient, weight gradient) of Σ conv(x, w) · g on `device`.
fn conv_grads(
    x: &TensorData,
    w: &TensorData,
    g: &TensorData,
    opts: &ConvOptions<2>,
    device: &Device,
) -> [TensorData; 3] {
    let x = Tensor::<4>::from_data(x.clone(), device).require_grad();
    let w = Tensor::<4>::from_data(w.clone(), device).require_grad();
    let g = Tensor::<4>::from_data(g.clone(), device);
    let y = conv2d(x.clone(), w.clone(), None, opts.clone());
    let grads = (y.clone() * g).sum().backward();
    [
        y.into_data(),
        x.grad(&grads).unwrap().into_data(),
        w.grad(&grads).unwrap().into_data(),
    ]
}

#[test]
fn convolution_gradients_match_flex() {
    let (flex, tch) = devices();
    flex.seed(11);
    // (input channels, output channels, kernel, options): ResNet's shapes and the awkward ones.
    let cases: Vec<(usize, usize, usize, ConvOptions<2>)> = vec![
        (3, 8, 7, ConvOptions::new([2, 2], [3, 3], [1, 1], 1)),
        (8, 8, 3, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)),
        (8, 16, 1, ConvOptions::new([2, 2], [0, 0], [1, 1], 1)),
        (8, 8, 3, ConvOptions::new([1, 1], [2, 2], [2, 2], 1)),
        (8, 8, 3, ConvOptions::new([1, 2], [1, 0], [1, 1], 4)),
        (
            6,
            4,
            4,
            ConvOptions {
                stride: [1, 2],
                padding: [(1, 2), (2, 1)],
                dilation: [1, 1],
                groups: 1,
            },
        ),
    ];
    for (cin, cout, k, opts) in cases {
        let x = random([2, cin, 13, 11], &flex);
        let w = random([cout, cin / opts.groups, k, k], &flex);
        let y_shape = Tensor::<4>::from_data(x.clone(), &flex);
        let y_shape = conv2d(
            y_shape,
            Tensor::from_data(w.clone(), &flex),
            None,
            opts.clone(),
        )
        .dims();
        let g = random(y_shape, &flex);
        let a = conv_grads(&x, &w, &g, &opts, &flex);
        let b = conv_grads(&x, &w, &g, &opts, &tch);
        for (name, (fa, fb)) in ["output", "input grad", "weight grad"]
            .iter()
            .zip(a.into_iter().zip(b))
        {
            let d = worst(fa, fb);
            assert!(d < 1e-4, "{opts:?}: {name} differs by {d}");
        }
    }
}

/// (output, mean, variance, x grad, γ grad, β grad) of batch norm in training, through ReLU, on
/// `device`.
fn bn_grads(
    x: &TensorData,
    gamma: &TensorData,
    beta: &TensorData,
    g: &TensorData,
    device: &Device,
) -> Vec<TensorData> {
    let x = Tensor::<4>::from_data(x.clone(), device).require_grad();
    let gamma = Tensor::<1>::from_data(gamma.clone(), device).require_grad();
    let beta = Tensor::<1>::from_data(beta.clone(), device).require_grad();
    let g = Tensor::<4>::from_data(g.clone(), device);
    let out = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
    let y = burn::tensor::activation::relu(out.output);
    let grads = (y.clone() * g).sum().backward();
    vec![
        y.into_data(),
        out.mean.into_data(),
        out.variance.into_data(),
        x.grad(&grads).unwrap().into_data(),
        gamma.grad(&grads).unwrap().into_data(),
        beta.grad(&grads).unwrap().into_data(),
    ]
}

#[test]
fn batch_norm_and_relu_match_flex() {
    let (flex, tch) = devices();
    flex.seed(12);
    let x = random([4, 5, 6, 7], &flex);
    // Channel 0 nearly constant: the biased variance must come out small and non-negative.
    let mut xs = x.convert::<f32>().try_to_vec::<f32>().unwrap();
    for n in 0..4 {
        for i in 0..42 {
            xs[n * 5 * 42 + i] = 3.0 + 1e-4 * i as f32;
        }
    }
    let x = TensorData::new(xs, [4, 5, 6, 7]);
    let gamma = random([5], &flex);
    let beta = random([5], &flex);
    let g = random([4, 5, 6, 7], &flex);
    let a = bn_grads(&x, &gamma, &beta, &g, &flex);
    let b = bn_grads(&x, &gamma, &beta, &g, &tch);
    let names = ["output", "mean", "variance", "x grad", "γ grad", "β grad"];
    for ((name, fa), fb) in names.iter().zip(a.clone()).zip(b.clone()) {
        let d = worst(fa, fb);
        assert!(d < 1e-4, "batch norm {name} differs by {d}");
    }
    // Channel 0 holds 3 + 1e-4·i for i in 0..42 in every sample: biased variance
    // 1e-8 · (42² − 1) / 12, which recovering it from 1/√(var + ε) would get badly wrong.
    let var = b[2].clone().convert::<f32>().try_to_vec::<f32>().unwrap();
    let exact = 1e-8 * (42.0 * 42.0 - 1.0) / 12.0;
    assert!(
        (var[0] - exact).abs() < 0.01 * exact,
        "near-constant channel: variance {} (exact {exact})",
        var[0]
    );

    // Evaluation: given statistics.
    let eval = |device: &Device| {
        batch_norm(
            Tensor::<4>::from_data(x.clone(), device),
            Tensor::from_data(gamma.clone(), device),
            Tensor::from_data(beta.clone(), device),
            Tensor::from_data(a[1].clone(), device),
            Tensor::from_data(a[2].clone(), device),
            1e-5,
        )
        .into_data()
    };
    let d = worst(eval(&flex), eval(&tch));
    assert!(d < 1e-4, "batch norm (evaluation) differs by {d}");
}
