//! The method base's per-group learning rate: with `encoder_lr_scale` s, one plain SGD step moves
//! every backbone parameter by s × what it moves at s = 1, and every other parameter by the same
//! amount (same weights, same batch, so the same gradients).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor};
use proto_shm::schemas::names;
use trainer::data::StepBatch;
use trainer::dist::World;
use trainer::method::{train_step, Method, StepCtx};
use trainer::methods::plmoco::PatchMoco;

fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// (backbone, head) parameter deltas of one step at `scale`.
fn one_step(scale: f64) -> (Vec<f32>, Vec<f32>) {
    let device = trainer::backend::test_device().autodiff();
    device.seed(3);
    let run = config::RunConfig::from_str(
        &format!(
            r#"RunConfig(name: "t", dataset: (root: "."), trainer: (arch: ResNet18),
                method: PatchMoco(moco: (view: (size: 32), proj_hidden: 16, proj_dim: 8, queue_size: 8,
                                         key_bn: Plain),
                                  encoder_lr_scale: {scale}))"#
        ),
        "test",
    )
    .unwrap();
    let (mut online, mut method) = PatchMoco::new(&run, &device).unwrap();
    // Plain SGD: the update is exactly −lr × gradient.
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
    });
    device.seed(4);
    let x = || Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let matches: Vec<u8> = (0..8i32).flat_map(|m| (m % 4).to_le_bytes()).collect();
    let batch = StepBatch::new(
        [(names::VIEW0, x()), (names::VIEW1, x())],
        [(names::MATCH, matches)],
    );
    let before = (values(&online.backbone), values(&online.head));
    let ctx = StepCtx {
        step: 0,
        total: 1,
        seed: 0,
        world: &World::single(),
    };
    train_step(&mut online, &mut method, &mut optim, 0.1, &batch, ctx).unwrap();
    let delta = |a: Vec<Vec<f32>>, b: Vec<Vec<f32>>| -> Vec<f32> {
        a.concat()
            .iter()
            .zip(b.concat())
            .map(|(x, y)| y - x)
            .collect()
    };
    (
        delta(before.0, values(&online.backbone)),
        delta(before.1, values(&online.head)),
    )
}

#[test]
fn the_backbone_moves_at_the_scaled_rate_and_the_rest_at_the_full_rate() {
    let (backbone_full, head_full) = one_step(1.0);
    let (backbone_scaled, head_scaled) = one_step(0.01);
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    assert!(norm(&backbone_full) > 0.0 && norm(&head_full) > 0.0);
    let ratio = norm(&backbone_scaled) / norm(&backbone_full);
    assert!(
        (ratio - 0.01).abs() < 1e-3,
        "backbone moved {ratio} × the full step"
    );
    let head_ratio = norm(&head_scaled) / norm(&head_full);
    assert!(
        (head_ratio - 1.0).abs() < 1e-3,
        "head moved {head_ratio} × the full step"
    );
}
