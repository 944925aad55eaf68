//! Data parallelism through libtorch's c10d (Gloo on CPU), in real processes: this test binary
//! starts itself twice as ranks 0 and 1 of a world of 2 (torchrun's variables, a TCPStore on
//! 127.0.0.1), each rank trains on its half of a global batch, and the result is compared with
//! one process training on the whole batch, computed here independently:
//!
//! - a network without BN, k SGD steps: weights equal within 1e-5 relative (gradients averaged
//!   by the bucketed all-reduce of `World::average_gradients`);
//! - MoCo v2 through the trainer's own `train_step`, k steps with a frozen key encoder (m = 1, so
//!   the keys depend only on the weights both runs start from): the queue equals the one-process
//!   queue — cross-rank shuffle-BN (2 ranks × 1 shard) forms the shards one process with
//!   `ShuffledSubBatches(2)` forms, and every rank's keys are enqueued in rank order.
//!
//! The rank processes are this binary's `#[ignore]`d `rank_*` tests, run with `--ignored` and the
//! variables set; on their own they are not tests.
#![cfg(feature = "tch")]
// burn marks burn-tch (our CPU backend, see trainer/src/backend.rs) deprecated.
#![allow(deprecated)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use proto_shm::schemas::names;
use trainer::data::StepBatch;
use trainer::dist::World;
use trainer::method::{train_step, Method, StepCtx};
use trainer::methods::mocov2::MocoV2;

const GLOBAL_BATCH: usize = 8;
const STEPS: usize = 3;

#[derive(Module, Debug)]
struct NoBnNet {
    conv: Conv2d,
    fc: Linear,
}

impl NoBnNet {
    fn new(device: &Device) -> NoBnNet {
        NoBnNet {
            conv: Conv2dConfig::new([3, 8], [3, 3]).init(device),
            fc: LinearConfig::new(8, 4).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = burn::tensor::activation::relu(self.conv.forward(x));
        let [n, c, _, _] = h.dims();
        self.fc.forward(h.mean_dim(3).mean_dim(2).reshape([n, c]))
    }
}

/// Step `s`'s global batch (inputs and regression targets), the same in every process.
fn global_batch(device: &Device, s: usize) -> (Tensor<4>, Tensor<2>) {
    device.seed(1000 + s as u64);
    let x = Tensor::<4>::random(
        [GLOBAL_BATCH, 3, 12, 12],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let y = Tensor::<2>::random([GLOBAL_BATCH, 4], Distribution::Normal(0.0, 1.0), device);
    (x, y)
}

/// This process's rows of a global batch.
fn shard<const D: usize>(t: Tensor<D>, world: &World) -> Tensor<D> {
    let per = GLOBAL_BATCH / world.world_size;
    t.narrow(0, world.rank * per, per)
}

/// k SGD steps of the no-BN network; the loss is a batch mean, so the mean of the ranks' gradients
/// is the whole batch's gradient.
fn train_no_bn(world: &World) -> Vec<f32> {
    let device = Device::from(burn::backend::LibTorchDevice::Cpu).autodiff();
    device.seed(7);
    let mut net = NoBnNet::new(&device);
    let mut optim = SgdConfig::new().init();
    for s in 0..STEPS {
        let (x, y) = global_batch(&device, s);
        let (x, y) = (shard(x, world), shard(y, world));
        let loss = (net.forward(x) - y).powi_scalar(2).mean();
        let mut grads = GradientsParams::from_grads(loss.backward(), &net);
        world.average_gradients(&mut grads, &net).unwrap();
        net = optim.step(0.5, net, grads);
    }
    flat(&net)
}

fn moco_run() -> config::RunConfig {
    let mut run = config::RunConfig::from_str(
        r#"RunConfig(name: "dp", dataset: (root: "."), method: MocoV2())"#,
        "test",
    )
    .unwrap();
    run.trainer.arch = config::Arch::ResNet18;
    run.method = config::MethodConfig::MocoV2(config::MocoV2Config {
        proj_hidden: 16,
        proj_dim: 8,
        queue_size: 32,
        // A frozen key encoder: the keys of every step come from the starting weights, which both
        // runs share, so the queues are comparable however the query encoders' BN differs.
        momentum: 1.0,
        key_bn: config::KeyBatchNorm::ShuffledSubBatches(2),
        ..Default::default()
    });
    run
}

/// k MoCo v2 steps through the trainer's step; returns the queue's rows, flattened.
fn train_moco(world: &World) -> Vec<f32> {
    let mut run = moco_run();
    if world.is_distributed() {
        // One shard per rank: the reference's per-GPU shuffle-BN.
        if let config::MethodConfig::MocoV2(m) = &mut run.method {
            m.key_bn = config::KeyBatchNorm::ShuffledSubBatches(1);
        }
    }
    let device = Device::from(burn::backend::LibTorchDevice::Cpu).autodiff();
    device.seed(11);
    let (mut query, mut moco) = MocoV2::new(&run, &device).unwrap();
    let mut optim = trainer::optim::build(&config::Optimizer::Sgd {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
    });
    for s in 0..STEPS {
        device.seed(2000 + s as u64);
        let view = |_| {
            Tensor::<4>::random(
                [GLOBAL_BATCH, 3, 32, 32],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
        };
        let (v0, v1) = (shard(view(0), world), shard(view(1), world));
        let batch = StepBatch::new([(names::VIEW0, v0), (names::VIEW1, v1)], []);
        let ctx = StepCtx {
            step: s,
            total: STEPS,
            seed: 77 + s as u64,
            world,
        };
        train_step(&mut query, &mut moco, &mut optim, 0.1, &batch, ctx).unwrap();
    }
    assert_eq!(moco.queue.filled, STEPS * GLOBAL_BATCH);
    moco.queues()[0]
        .1
        .keys
        .clone()
        .into_data()
        .try_to_vec()
        .unwrap()
}

struct Flat(Vec<f32>);
impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0
            .extend(p.val().into_data().try_to_vec::<f32>().unwrap());
    }
}

fn flat<M: Module>(m: &M) -> Vec<f32> {
    let mut f = Flat(Vec::new());
    m.visit(&mut f);
    f.0
}

fn write_f32(path: &Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Runs rank test `name` as 2 processes; returns each rank's output.
fn two_ranks(name: &str, dir: &Path) -> Vec<Vec<f32>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .args([
                    name,
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("DP_TEST_OUT", dir.join(format!("rank{rank}.f32")))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a rank of {name} failed: {status}");
    }
    (0..2)
        .map(|r| read_f32(&dir.join(format!("rank{r}.f32"))))
        .collect()
}

/// The rank side: joins the world the variables describe and writes its result.
fn rank_main(f: fn(&World) -> Vec<f32>) {
    let out = std::env::var("DP_TEST_OUT").expect("run by two_ranks, with DP_TEST_OUT");
    let world = World::from_env(Duration::from_secs(60)).unwrap();
    assert_eq!(world.world_size, 2);
    write_f32(Path::new(&out), &f(&world));
}

#[test]
#[ignore = "a rank process of weights_equal_one_process_on_the_whole_batch"]
fn rank_no_bn() {
    rank_main(train_no_bn);
}

#[test]
#[ignore = "a rank process of moco_queue_equals_one_process_on_the_whole_batch"]
fn rank_moco() {
    rank_main(train_moco);
}

/// max |a − b| ≤ 1e-5 · max |b| (and the same length).
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-5 * scale,
        "{what}: max difference {diff:e} against scale {scale:e}"
    );
}

fn skip_unless_tch() -> bool {
    if std::env::var("TRAINER_TEST_BACKEND").as_deref() == Ok("flex") {
        eprintln!("skipped: data parallelism runs on libtorch's c10d, not on flex");
        return true;
    }
    false
}

#[test]
fn weights_equal_one_process_on_the_whole_batch() {
    if skip_unless_tch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ranks = two_ranks("rank_no_bn", dir.path());
    let one = train_no_bn(&World::single());
    // The ranks agree with each other exactly enough, and with one process on 2B.
    assert_close("rank 1 vs rank 0", &ranks[1], &ranks[0]);
    assert_close("2 ranks × B vs 1 process × 2B", &ranks[0], &one);
    // And training moved the weights (a comparison of two untouched networks proves nothing).
    let start = {
        let device = Device::from(burn::backend::LibTorchDevice::Cpu).autodiff();
        device.seed(7);
        flat(&NoBnNet::new(&device))
    };
    let moved = start
        .iter()
        .zip(&one)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 1e-3, "training did not move the weights ({moved})");
}

#[test]
fn moco_queue_equals_one_process_on_the_whole_batch() {
    if skip_unless_tch() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ranks = two_ranks("rank_moco", dir.path());
    let one = train_moco(&World::single());
    assert_close("queue, rank 1 vs rank 0", &ranks[1], &ranks[0]);
    assert_close("queue, 2 ranks vs 1 process", &ranks[0], &one);
}
