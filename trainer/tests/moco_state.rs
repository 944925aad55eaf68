//! MoCo's non-gradient state: the queue fills and wraps; the EMA key encoder differs from the
//! online encoder and moves towards it by exactly (1 − m) of the gap.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor, TensorData};
use proto_shm::schemas::names;
use trainer::data::StepBatch;
use trainer::dist::World;
use trainer::method::Method;
use trainer::method::{train_step, StepCtx};
use trainer::methods::mocov2::MocoV2;
use trainer::queue::Queue;

fn rows(t: &Tensor<2>) -> Vec<Vec<f32>> {
    let [n, c] = t.dims();
    let v: Vec<f32> = t.clone().into_data().try_to_vec().unwrap();
    (0..n).map(|i| v[i * c..(i + 1) * c].to_vec()).collect()
}

#[test]
fn queue_fills_and_wraps() {
    let device = trainer::backend::test_device();
    let mut q = Queue::new(5, 2, &device);
    let batch = |base: f32| {
        Tensor::<2>::from_data(
            TensorData::new(vec![base, 0.0, base + 1.0, 0.0, base + 2.0, 0.0], [3, 2]),
            &device,
        )
    };
    q.enqueue(batch(10.0));
    assert_eq!((q.ptr, q.filled), (3, 3));
    q.enqueue(batch(20.0)); // 20 and 21 go to rows 3, 4; 22 wraps to row 0
    assert_eq!((q.ptr, q.filled), (1, 5));
    let r = rows(&q.keys);
    let firsts: Vec<f32> = r.iter().map(|x| x[0]).collect();
    assert_eq!(firsts, vec![22.0, 11.0, 12.0, 20.0, 21.0]);
}

/// Parameter values in visiting order, with whether each came from a trainable parameter (BN
/// running statistics are visited too, but they follow each encoder's own forward passes).
struct Flat(Vec<(f32, bool)>);
impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let trainable = p.is_require_grad();
        self.0.extend(
            p.val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(|v| (v, trainable)),
        );
    }
}

fn params<M: Module>(m: &M) -> Vec<(f32, bool)> {
    let mut f = Flat(Vec::new());
    m.visit(&mut f);
    f.0
}

fn values(v: &[(f32, bool)]) -> Vec<f32> {
    v.iter().map(|x| x.0).collect()
}

#[test]
fn key_encoder_is_an_ema_of_the_query_encoder() {
    let device = trainer::backend::test_device().autodiff();
    device.seed(9);
    let cfg = config::MocoV2Config {
        proj_hidden: 16,
        proj_dim: 8,
        queue_size: 12,
        momentum: 0.9,
        ..Default::default()
    };
    let run = config::RunConfig {
        method: config::MethodConfig::MocoV2(cfg),
        trainer: config::TrainerConfig {
            arch: config::Arch::ResNet18,
            ..Default::default()
        },
        ..config::RunConfig::from_str(
            r#"RunConfig(name: "t", dataset: (root: "."), method: MocoV2())"#,
            "test",
        )
        .unwrap()
    };
    let (mut query, mut moco) = MocoV2::new(&run, &device).unwrap();
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.5,
        momentum: 0.0,
        weight_decay: 0.0,
    });
    let x = || Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    // The trainer's own step: EMA update of the key, loss (enqueuing the keys), SGD step.
    let mut step = |query: &mut _, moco: &mut MocoV2, i: usize| {
        let batch = StepBatch::new([(names::VIEW0, x()), (names::VIEW1, x())], []);
        let ctx = StepCtx {
            step: i,
            total: 10,
            seed: i as u64,
            world: &World::single(),
        };
        train_step(query, moco, &mut optim, 0.5, &batch, ctx).unwrap();
    };
    // Step 1: the key starts as a copy of the query, and the queue takes the first keys.
    step(&mut query, &mut moco, 1);
    assert_eq!(moco.queue.filled, 4);
    let key_before = params(&moco.key);
    let q_now = params(&query);
    assert_ne!(
        values(&key_before),
        values(&q_now),
        "the query moved, the key did not yet"
    );
    // Step 2: the key moves by (1 − m) of the gap before its forward pass.
    step(&mut query, &mut moco, 2);
    let key_after = params(&moco.key);
    assert_eq!(key_before.len(), key_after.len());
    let mut checked = 0;
    for ((k0, k1), (q, trainable)) in key_before.iter().zip(&key_after).zip(&q_now) {
        if !trainable {
            continue; // running statistics
        }
        let (k0, k1) = (k0.0, k1.0);
        let want = 0.9 * k0 + 0.1 * q;
        assert!(
            (k1 - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{k1} vs {want}"
        );
        checked += 1;
    }
    assert!(checked > 1000);
    assert_ne!(values(&key_after), values(&q_now));
    assert_eq!(moco.queue.filled, 8);
    // Step 3 wraps the 12-key queue.
    step(&mut query, &mut moco, 3);
    assert_eq!((moco.queue.filled, moco.queue.ptr), (12, 0));
    step(&mut query, &mut moco, 4);
    assert_eq!((moco.queue.filled, moco.queue.ptr), (12, 4));
}
