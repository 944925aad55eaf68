//! The linear probe keeps its backbone exactly as loaded: after optimiser steps on the autodiff
//! device, every backbone weight and BN running statistic is unchanged while the classifier moved;
//! and full fine-tuning (the same steps without `frozen_backbone`) does change the backbone, so
//! the check can fail.

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use config::{MethodConfig, RunConfig, SegHead, SegmentationConfig};
use proto_shm::schemas::names;
use trainer::data::StepBatch;
use trainer::dist::World;
use trainer::method::{train_step, Method, StepCtx};
use trainer::methods::segmentation::Segmentation;
use trainer::record::record_bytes;

fn run(frozen: bool) -> RunConfig {
    let mut run = RunConfig::from_str(
        "RunConfig(name: \"probe\", dataset: (root: \"x\", layout: Segmentation(format: Voc(label_dir: \"SegmentationClass\"), split: \"train\")), method: MocoV2(), trainer: (arch: ResNet18))",
        "test",
    )
    .unwrap();
    run.method = MethodConfig::Segmentation(SegmentationConfig {
        classes: 3,
        head: if frozen {
            SegHead::Linear
        } else {
            SegHead::Fcn {
                convs: 1,
                channels: 8,
                concat_input: false,
            }
        },
        aux_weight: 0.0,
        frozen_backbone: frozen,
        output_stride: 16,
        crop: (32, 32),
        ..Default::default()
    });
    run
}

fn batch(device: &burn::tensor::Device) -> StepBatch {
    let labels: Vec<u8> = (0..2 * 32 * 32).map(|i| (i % 3) as u8).collect();
    let extent: Vec<u8> = [32i32, 32, 32, 32]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    StepBatch::new(
        [(
            names::VIEW0,
            Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), device),
        )],
        [(names::SEG_LABEL, labels), (names::EXTENT, extent)],
    )
}

/// Backbone and head records before and after three SGD steps.
fn steps(frozen: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let device = trainer::backend::test_device().autodiff();
    let run = run(frozen);
    let (online, mut method) = Segmentation::new(&run, &device).unwrap();
    let mut online = Segmentation::prepare(&run, online);
    let before = (
        record_bytes(&online.backbone).unwrap(),
        record_bytes(&online.decode).unwrap(),
    );
    let mut optim = trainer::optim::build(&run.trainer.optimizer);
    let b = batch(&device);
    for step in 0..3 {
        let ctx = StepCtx {
            step,
            total: 3,
            seed: step as u64,
            world: &World::single(),
        };
        train_step(&mut online, &mut method, &mut optim, 0.1, &b, ctx).unwrap();
    }
    let online = online.valid();
    (
        before.0,
        record_bytes(&online.backbone).unwrap(),
        before.1,
        record_bytes(&online.decode).unwrap(),
    )
}

#[test]
fn the_probe_leaves_the_backbone_as_loaded() {
    let (b0, b1, h0, h1) = steps(true);
    assert!(b0 == b1, "the frozen backbone changed");
    assert!(h0 != h1, "the classifier did not train");
    let (b0, b1, _, _) = steps(false);
    assert!(
        b0 != b1,
        "full fine-tuning left the backbone unchanged: the check cannot fail"
    );
}
