//! EDMoCo and PLEDMoCo pretrain a decoder; segmentation fine-tuning with the same head kind and
//! width starts from it (the classifier stays fresh), and a head of another kind or width starts
//! fresh with a line saying why.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use config::RunConfig;
use trainer::checkpoint::{self, TrainState};
use trainer::method::{state_blobs, Method};
use trainer::methods::segmentation::Segmentation;

/// Every float tensor of a module (weights and BN statistics), in visiting order: what a record
/// holds apart from parameter ids.
fn values<M: Module>(m: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .extend(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

fn run(method: &str) -> RunConfig {
    let layout = if method.starts_with("Segmentation") {
        r#", layout: Segmentation(format: Voc(label_dir: "SegmentationClass"), split: "train")"#
    } else {
        ""
    };
    RunConfig::from_str(
        &format!(
            r#"RunConfig(name: "t", dataset: (root: "."{layout}), trainer: (arch: ResNet18), method: {method})"#
        ),
        "test",
    )
    .unwrap()
}

/// Writes a checkpoint of a freshly built `M` for `run` (as the loop would) and returns the
/// record of its decoder.
fn checkpoint_of<M: Method>(run: &RunConfig, path: &Path, device: &Device) -> Vec<f32> {
    let (online, method) = M::new(run, device).unwrap();
    let optim = trainer::optim::build(&run.trainer.optimizer);
    let state = TrainState {
        step: 1,
        next_epoch: 0,
        next_batch: 1,
        queues: trainer::method::queue_cursors(&method),
        method: run.method.name().to_string(),
        config: run.to_ron(),
    };
    checkpoint::save(
        path,
        &state,
        &state_blobs(&online, &method, &optim).unwrap(),
    )
    .unwrap();
    match M::decoder(&online).expect("the method pretrains a decoder") {
        trainer::nn::decoder::DecoderRef::MocoFcn(c) => values(c),
        trainer::nn::decoder::DecoderRef::Psp(p) => values(p),
    }
}

fn seg_run(head: &str, ckpt: &Path) -> RunConfig {
    run(&format!(
        r#"Segmentation(classes: 5, head: {head}, output_stride: 16, backbone: Some("{}"))"#,
        ckpt.display()
    ))
}

#[test]
fn a_pretrained_psp_decoder_starts_a_psp_head() {
    let device = trainer::backend::test_device();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("edmoco.ckpt");
    let pretrained = checkpoint_of::<trainer::methods::edmoco::EdMoco>(
        &run("EdMoco(moco: (proj_hidden: 16, proj_dim: 8, queue_size: 8), decoder: Psp(channels: 8), output_stride: 16)"),
        &ckpt,
        &device,
    );
    let seg = seg_run("Psp(channels: 8)", &ckpt);
    let (mut net, mut method) = Segmentation::new(&seg, &device).unwrap();
    let fresh_classifier = values(&net.decode.psp.as_ref().unwrap().conv_seg);
    assert_ne!(values(&net.decode.psp.as_ref().unwrap().psp), pretrained);
    trainer::pretrained::init_online(&seg, &mut net, &mut method, &device).unwrap();
    let head = net.decode.psp.as_ref().unwrap();
    assert_eq!(values(&head.psp), pretrained, "decoder taken over");
    assert_eq!(
        values(&head.conv_seg),
        fresh_classifier,
        "the classifier stays as initialised"
    );

    // Another kind of head, or the same kind at another width, starts fresh.
    for (head, kind) in [
        ("MocoFcn(channels: 8)", "mocofcn"),
        ("Psp(channels: 12)", "psp"),
    ] {
        let seg = seg_run(head, &ckpt);
        let (mut net, mut method) = Segmentation::new(&seg, &device).unwrap();
        let before = values(&net.decode);
        trainer::pretrained::init_online(&seg, &mut net, &mut method, &device).unwrap();
        assert_eq!(values(&net.decode), before, "{kind} head untouched");
    }
}

#[test]
fn a_pledmoco_mocofcn_decoder_starts_a_mocofcn_head_unless_turned_off() {
    let device = trainer::backend::test_device();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("pledmoco.ckpt");
    let pretrained = checkpoint_of::<trainer::methods::plmoco::PatchMoco>(
        &run("PatchMoco(moco: (view: (size: 64), proj_hidden: 16, proj_dim: 8, queue_size: 8), decoder: Some(MocoFcn(channels: 8)))"),
        &ckpt,
        &device,
    );
    let seg = seg_run("MocoFcn(channels: 8)", &ckpt);
    let (mut net, mut method) = Segmentation::new(&seg, &device).unwrap();
    trainer::pretrained::init_online(&seg, &mut net, &mut method, &device).unwrap();
    let convs = &net.decode.mocofcn.as_ref().unwrap().convs;
    assert_eq!(values(convs), pretrained);

    let mut off = seg_run("MocoFcn(channels: 8)", &ckpt);
    if let config::MethodConfig::Segmentation(s) = &mut off.method {
        s.pretrained_decoder = false;
    }
    let (mut net, mut method) = Segmentation::new(&off, &device).unwrap();
    let before = values(&net.decode);
    trainer::pretrained::init_online(&off, &mut net, &mut method, &device).unwrap();
    assert_eq!(values(&net.decode), before);
}
