//! Per-pixel cross-entropy against a hand computation: ignored pixels leave the mean, a batch with
//! no labelled pixel gives 0; and patch-rotation targets give each pixel its patch's class.

use burn::tensor::{Int, Tensor, TensorData};
use trainer::dist::World;
use trainer::loss::pixel_ce::{pixel_cross_entropy, IGNORE};
use trainer::methods::plr::pixel_targets;

/// −log softmax(z)[t] in f64.
fn nll(z: &[f64], t: usize) -> f64 {
    let m = z.iter().cloned().fold(f64::MIN, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - z[t]
}

#[test]
fn pixel_cross_entropy_matches_a_hand_computation() {
    let device = trainer::backend::test_device();
    // n = 2, c = 3, h = 1, w = 3: logits[i][class][x].
    let z: Vec<f64> = vec![
        0.5, -1.0, 2.0, /* class 1 */ 1.5, 0.0, -0.5, /* class 2 */ -2.0, 3.0,
        0.25, //
        1.0, 1.0, 0.0, /* class 1 */ -1.0, 2.5, 0.0, /* class 2 */ 0.0, 0.5, 4.0,
    ];
    let target: Vec<i64> = vec![1, IGNORE, 0, 2, 1, IGNORE];
    let logits = Tensor::<4>::from_data(
        TensorData::new(
            z.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [2, 3, 1, 3],
        ),
        &device,
    );
    let t = Tensor::<3, Int>::from_data(TensorData::new(target.clone(), [2, 1, 3]), &device);
    let got = pixel_cross_entropy(logits.clone(), t).into_scalar::<f32>() as f64;
    let mut sum = 0.0;
    let mut count = 0;
    for i in 0..2 {
        for x in 0..3 {
            let tt = target[i * 3 + x];
            if tt == IGNORE {
                continue;
            }
            let pix: Vec<f64> = (0..3).map(|c| z[i * 9 + c * 3 + x]).collect();
            sum += nll(&pix, tt as usize);
            count += 1;
        }
    }
    let want = sum / count as f64;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    let none = Tensor::<3, Int>::from_data(TensorData::new(vec![IGNORE; 6], [2, 1, 3]), &device);
    assert_eq!(pixel_cross_entropy(logits, none).into_scalar::<f32>(), 0.0);
}

#[test]
fn rotation_targets_follow_the_patch_grid() {
    // Two images, 2×2 patches of a 4-pixel view.
    let t = pixel_targets(&[0, 1, 2, 3, 3, 2, 1, 0], 2, 2, 4);
    #[rustfmt::skip]
    let want: Vec<i64> = vec![
        0, 0, 1, 1,  0, 0, 1, 1,  2, 2, 3, 3,  2, 2, 3, 3,
        3, 3, 2, 2,  3, 3, 2, 2,  1, 1, 0, 0,  1, 1, 0, 0,
    ];
    assert_eq!(t, want);
}

/// Real gradients through the whole PLR network: the trainer's own step on one fixed batch of
/// patch-rotated noise images drives the per-pixel loss well below chance (ln 4).
#[test]
fn patch_rotation_overfits_one_batch() {
    use burn::tensor::Distribution;
    use proto_shm::schemas::names;
    use trainer::data::StepBatch;
    use trainer::method::{train_step, Method, StepCtx};
    use trainer::methods::plr::PatchRotation;

    let device = trainer::backend::test_device().autodiff();
    device.seed(3);
    let run = config::RunConfig::from_str(
        r#"RunConfig(name: "plr", dataset: (root: "."), loader: (batch_size: 4),
            method: PatchRotation(view: (size: 32), grid: 2, output_stride: 16, decoder_channels: 16),
            trainer: (arch: ResNet18, optimizer: Sgd(lr: 0.05, momentum: 0.9, weight_decay: 0.0)))"#,
        "test",
    )
    .unwrap();
    let (mut net, mut plr) = PatchRotation::new(&run, &device).unwrap();
    let mut optim = trainer::optim::build(&run.trainer.optimizer);
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let rotation: Vec<u8> = (0..16).map(|i| (i * 7 % 4) as u8).collect();
    let batch = StepBatch::new([(names::VIEW0, x)], [(names::ROTATION, rotation)]);
    let mut losses = Vec::new();
    for step in 0..25 {
        let ctx = StepCtx {
            step,
            total: 25,
            seed: step as u64,
            world: &World::single(),
        };
        losses.push(
            train_step(&mut net, &mut plr, &mut optim, 0.05, &batch, ctx)
                .unwrap()
                .0,
        );
    }
    assert!((losses[0] - 4f64.ln()).abs() < 0.1, "{losses:?}");
    assert!(losses[24] < 0.7, "{losses:?}");
}
