//! SoCo and CP² end to end through `launch` on real photos: the loader builds the views (SoCo's
//! proposals from a store made by `precompute-proposals`), the trainer's losses fall; CP² Quick
//! Tuning starts from a MoCo v2 checkpoint of ours and reports every backbone tensor loaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

fn tempdir(tag: &str) -> common::Scratch {
    common::tempdir("launch-methods", tag)
}

/// Runs `launch` for `steps` steps; the caller checks the outcome.
fn try_launch(cfg: &Path, out: &Path, steps: usize) -> Output {
    Command::new(common::workspace_bin("tools", "launch"))
        .arg("--config")
        .arg(cfg)
        .arg("--out-dir")
        .arg(out)
        .args(["--max-steps", &steps.to_string()])
        .env("DENSEPRE_CACHE_DIR", out.join("cache"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// [`try_launch`] that must succeed.
fn launch(cfg: &Path, out: &Path, steps: usize) -> Output {
    let o = try_launch(cfg, out, steps);
    assert!(o.status.success(), "{}", common::text(&o));
    o
}

/// Per-step values of `key` from a run's metrics.
fn series(out: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()[key]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn soco_trains_from_a_precomputed_store() {
    let dir = tempdir("soco");
    let store = dir.join("photos.pstore");
    let o = Command::new(common::workspace_bin("tools", "precompute-proposals"))
        .arg("run")
        .arg("--data")
        .arg(common::photos())
        .arg("--out")
        .arg(&store)
        .args(["--limit", "32", "--workers", "2"])
        .env("DENSEPRE_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    let cfg = write(
        &dir,
        "soco.ron",
        &format!(
            r#"RunConfig(
    name: "soco-e2e", seed: 3,
    dataset: (root: "{}", layout: Flat, max_images: 32, proposals: "{}"),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: Soco(image_size: 64, v3_size: 32, fpn_level_limits: (14.0, 27.0, 55.0), fpn_channels: 32,
                 head_fc: 64, proj_hidden: 128, proj_dim: 32),
    trainer: (arch: ResNet18, epochs: 100,
              optimizer: Lars(lr: 1.0, momentum: 0.9, weight_decay: 1e-5, trust_coefficient: 0.001, eps: 1e-8),
              schedule: Constant, base_batch_size: 8, checkpoint_every: 1000),
)"#,
            common::photos().display(),
            store.display()
        ),
    );
    let out = dir.join("out");
    let o = launch(&cfg, &out, 30);
    // No "no entry for" warnings: every image found its proposals in the store.
    assert!(
        !common::text(&o).contains("no entry for"),
        "{}",
        common::text(&o)
    );
    let loss = series(&out, "loss");
    let (v12, v13) = (series(&out, "v1_v2"), series(&out, "v1_v3"));
    assert_eq!(loss.len(), 30);
    // BYOL-style: each of the two pairs' terms lies in [−4, 4] and starts near 0.
    assert!(v12.iter().chain(&v13).all(|v| (-4.0..=4.0).contains(v)));
    let (early, late) = (mean(&loss[..5]), mean(&loss[25..]));
    assert!(
        late < early - 0.5,
        "SoCo loss did not fall: {early:.3} -> {late:.3}"
    );
    export_soco_for_detectron2(&out.join("last.ckpt"), &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `export-weights` on the SoCo checkpoint: detectron2's `.pkl` carries the backbone, the FPN
/// (P2..P5) and the 4conv1fc box head in detectron2's names, with the run's shapes; the
/// torchvision export of the same checkpoint loads back with every backbone tensor.
fn export_soco_for_detectron2(ckpt: &Path, dir: &Path) {
    let export = |format: &str, out: &Path| {
        let o = Command::new(common::workspace_bin("tools", "export-weights"))
            .arg("--from")
            .arg(ckpt)
            .args(["--format", format, "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        assert!(
            common::text(&o).contains("from soco checkpoint"),
            "{}",
            common::text(&o)
        );
    };
    let pkl = dir.join("soco_d2.pkl");
    export("detectron2", &pkl);
    let sd = trainer::weights::import::read_file(&pkl).unwrap();
    let shape = |k: &str| {
        sd.iter()
            .find(|e| e.name == format!("model.{k}"))
            .unwrap_or_else(|| panic!("{k} not in the export"))
            .shape
            .clone()
    };
    assert_eq!(shape("stem.conv1.weight"), [64, 3, 7, 7]);
    assert_eq!(shape("res5.1.conv2.norm.running_var"), [512]);
    assert_eq!(shape("fpn_lateral2.weight"), [32, 64, 1, 1]);
    assert_eq!(shape("fpn_lateral5.norm.weight"), [32]);
    assert_eq!(shape("fpn_output3.weight"), [32, 32, 3, 3]);
    assert_eq!(shape("box_head.conv4.norm.running_mean"), [32]);
    assert_eq!(shape("box_head.fc1.weight"), [64, 32 * 7 * 7]);
    // R-18: 20 conv-BN pairs × 6 tensors; FPN: 8 × 6; box head: 4 × 6 + fc weight and bias.
    assert_eq!(sd.len(), 120 + 48 + 26);
    let pth = dir.join("soco_tv.pth");
    export("torchvision", &pth);
    let depth = trainer::nn::resnet::Depth::R18;
    let net = trainer::nn::resnet::ResNetConfig::new(depth).init(&trainer::backend::test_device());
    let (_, report) = trainer::weights::import::load_backbone_file(net, depth, &pth).unwrap();
    assert_eq!((report.matched, report.missing), (100, 0));
}

#[test]
fn cp2_quick_tuning_from_a_mocov2_checkpoint_lowers_its_loss() {
    let dir = tempdir("cp2");
    let photos = common::photos();
    let moco = write(
        &dir,
        "moco.ron",
        &format!(
            r#"RunConfig(
    name: "moco-e2e", seed: 1,
    dataset: (root: "{}", layout: Flat, max_images: 32),
    loader: (workers: 2, ring_slots: 3, batch_size: 16),
    method: MocoV2(view: (size: 64), proj_hidden: 64, proj_dim: 32, queue_size: 16, key_bn: ShuffledSubBatches(2)),
    trainer: (arch: ResNet18, epochs: 100, optimizer: Sgd(lr: 0.1, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 16, schedule: Constant, checkpoint_every: 1000),
)"#,
            photos.display()
        ),
    );
    let moco_out = dir.join("moco");
    launch(&moco, &moco_out, 3);
    let cfg = write(
        &dir,
        "cp2.ron",
        &format!(
            r#"RunConfig(
    name: "cp2-e2e", seed: 5,
    dataset: (root: "{}", layout: Flat, max_images: 32),
    loader: (workers: 2, ring_slots: 3, batch_size: 16),
    method: Cp2(view: (size: 64), aspp_channels: 32, proj_dim: 32, queue_size: 16, key_bn: ShuffledSubBatches(2),
                init_from: "{}"),
    trainer: (arch: ResNet18, epochs: 100, optimizer: Sgd(lr: 0.4, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 16, schedule: Constant, checkpoint_every: 1000),
)"#,
            photos.display(),
            moco_out.join("last.ckpt").display()
        ),
    );
    let out = dir.join("cp2");
    let o = launch(&cfg, &out, 100);
    // ResNet-18 has 100 tensors (20 convs, 20 BNs × γ, β, running mean and variance); every one
    // comes from the checkpoint, the ASPP head and projection start fresh.
    assert!(
        common::text(&o).contains("quick tuning: 100 backbone tensors loaded")
            && common::text(&o).contains("fresh (aspp, projection)"),
        "{}",
        common::text(&o)
    );
    let (ins, dense) = (series(&out, "instance"), series(&out, "dense"));
    assert!(ins.iter().chain(&dense).all(|v| v.is_finite()));
    // The queue holds one batch (chance ln 17 = 2.83). As in every MoCo-style run the loss first
    // rises (the query drifts from its EMA key network), then falls; CP² learns about half as
    // fast as MoCo v2 at this scale (the 16-px cells see mostly background at 64 px).
    let (early, late) = (mean(&ins[10..30]), mean(&ins[80..]));
    assert!(
        late < early - 0.02,
        "CP² instance loss did not fall: {early:.3} -> {late:.3}"
    );
    // A checkpoint that is not MoCo v2 / DenseCL, or of another depth, is refused with a reason.
    let bad = write(
        &dir,
        "bad.ron",
        &std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("ResNet18", "ResNet50"),
    );
    let o = try_launch(&bad, &dir.join("bad"), 1);
    assert!(!o.status.success());
    assert!(
        common::text(&o).contains("the checkpoint's backbone is R18, this run's is R50"),
        "{}",
        common::text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `cfg` for `total` steps, and again stopped at `split` then resumed from its checkpoint:
/// the two loss sequences must agree (within float noise) at every step.
fn assert_resume_reproduces(cfg: &Path, dir: &Path, split: usize, total: usize) {
    launch(cfg, &dir.join("full"), total);
    launch(cfg, &dir.join("split"), split);
    let ck = dir.join("split/last.ckpt");
    let o = Command::new(common::workspace_bin("tools", "launch"))
        .arg("--config")
        .arg(cfg)
        .arg("--out-dir")
        .arg(dir.join("split"))
        .args(["--max-steps", &total.to_string()])
        .arg("--resume")
        .arg(&ck)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    let (a, b) = (
        series(&dir.join("full"), "loss"),
        series(&dir.join("split"), "loss"),
    );
    assert_eq!(
        (a.len(), b.len()),
        (total, total),
        "the resumed run appends the remaining steps"
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {i}: {x} vs {y}"
        );
    }
}

#[test]
fn soco_and_cp2_resume_exactly() {
    let dir = tempdir("resume");
    let photos = common::photos();
    let soco = write(
        &dir,
        "soco.ron",
        &format!(
            r#"RunConfig(
    name: "soco-resume", seed: 9,
    dataset: (root: "{}", layout: Flat, max_images: 16),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: Soco(image_size: 64, v3_size: 32, fpn_level_limits: (14.0, 27.0, 55.0), fpn_channels: 32,
                 head_fc: 64, proj_hidden: 128, proj_dim: 32),
    trainer: (arch: ResNet18, epochs: 3,
              optimizer: Lars(lr: 1.0, momentum: 0.9, weight_decay: 1e-5, trust_coefficient: 0.001, eps: 1e-8),
              base_batch_size: 8, checkpoint_every: 1000),
)"#,
            photos.display()
        ),
    );
    std::fs::create_dir_all(dir.join("soco")).unwrap();
    assert_resume_reproduces(&soco, &dir.join("soco"), 3, 6);
    let cp2 = write(
        &dir,
        "cp2.ron",
        &format!(
            r#"RunConfig(
    name: "cp2-resume", seed: 9,
    dataset: (root: "{}", layout: Flat, max_images: 32),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: Cp2(view: (size: 64), aspp_channels: 32, proj_dim: 32, queue_size: 20, key_bn: ShuffledSubBatches(2)),
    trainer: (arch: ResNet18, epochs: 2, optimizer: Sgd(lr: 0.1, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 8, checkpoint_every: 1000),
)"#,
            photos.display()
        ),
    );
    std::fs::create_dir_all(dir.join("cp2")).unwrap();
    // Split at 5: the 20-key queue has wrapped once, so its pointer and contents must resume too.
    assert_resume_reproduces(&cp2, &dir.join("cp2"), 5, 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SSL4DP patch-level rotation through `launch` (a method without a momentum twin or queue): the
/// per-pixel rotation loss starts at chance (ln 4 = 1.386), pixel accuracy is logged, and a
/// resumed run reproduces the uninterrupted one. (From random init on 64 photos it stays near
/// chance for hundreds of steps — the draft uses PLR as continued pretraining of a MoCo backbone;
/// `trainer/tests/pixel_ce.rs` checks that its gradients fit a batch.)
#[test]
fn patch_rotation_trains_and_resumes_exactly() {
    let dir = tempdir("plr");
    let cfg = write(
        &dir,
        "plr.ron",
        &format!(
            r#"RunConfig(
    name: "plr-e2e", seed: 2,
    dataset: (root: "{}", layout: Flat, max_images: 32),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: PatchRotation(view: (size: 64), grid: 2, output_stride: 16, decoder_channels: 32),
    trainer: (arch: ResNet18, epochs: 2, optimizer: Sgd(lr: 0.05, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 8, checkpoint_every: 1000),
)"#,
            common::photos().display()
        ),
    );
    let out = dir.join("plr");
    std::fs::create_dir_all(&out).unwrap();
    assert_resume_reproduces(&cfg, &out, 3, 6);
    let loss = series(&out.join("full"), "loss");
    let acc = series(&out.join("full"), "pixel_accuracy");
    assert_eq!(loss.len(), 6);
    assert!(
        (loss[0] - 4f64.ln()).abs() < 0.1,
        "first loss {} is not at chance",
        loss[0]
    );
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(a)), "{acc:?}");
    // The prediction sheet of the last batch: 8 views of 64 px drawn at 4×, 6 px apart.
    let sheet = image::open(out.join("full/plr_predictions.png")).unwrap();
    assert_eq!(
        (sheet.width(), sheet.height()),
        (8 * (256 + 6) + 6, 256 + 12)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The SSL4DP MoCo family at test scale: EDMoCo with the PSP decoder and the encoder at 1/100 of
/// the learning rate, PLMoCo, and PLEDMoCo with the MoCoFCN decoder.
fn ssl4dp_configs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let moco = "moco: (view: (size: 64), proj_hidden: 64, proj_dim: 32, queue_size: 20, key_bn: ShuffledSubBatches(2))";
    [
        (
            "edmoco",
            format!("EdMoco({moco}, decoder: Psp(channels: 16), output_stride: 16, encoder_lr_scale: 0.01)"),
        ),
        ("plmoco", format!("PatchMoco({moco}, cell_stride: 16)")),
        (
            "pledmoco",
            format!("PatchMoco({moco}, cell_stride: 16, decoder: Some(MocoFcn(channels: 16)), encoder_lr_scale: 0.01)"),
        ),
    ]
    .into_iter()
    .map(|(name, method)| {
        let cfg = write(
            dir,
            &format!("{name}.ron"),
            &format!(
                r#"RunConfig(
    name: "{name}-e2e", seed: 4,
    dataset: (root: "{}", layout: Flat, max_images: 32),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: {method},
    trainer: (arch: ResNet18, epochs: 1000, optimizer: Sgd(lr: 0.05, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 8, checkpoint_every: 1000),
)"#,
                common::photos().display()
            ),
        );
        (name, cfg)
    })
    .collect()
}

/// EDMoCo, PLMoCo and PLEDMoCo through `launch`: a run stopped and resumed reproduces the
/// uninterrupted run's losses (split at 3 of 6: the 20-entry queue has wrapped); PLMoCo logs the
/// fraction of view-0 cells with a match.
#[test]
fn ssl4dp_moco_methods_resume_exactly() {
    let dir = tempdir("ssl4dp-resume");
    for (name, cfg) in ssl4dp_configs(&dir) {
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        assert_resume_reproduces(&cfg, &out, 3, 6);
        if name != "edmoco" {
            let matched = series(&out.join("full"), "matched_cells");
            assert!(
                matched.iter().all(|m| *m > 0.0 && *m <= 1.0),
                "{name}: {matched:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// kill -9 of either side of an EDMoCo, PLMoCo or PLEDMoCo pair ends it cleanly (exit 1 naming
/// the dead side, no segment left, no child surviving): the loader of the first and third, the
/// trainer of the second (the supervision is the same for every method; `launch_pair.rs` kills
/// both sides of MoCo v2).
#[test]
fn ssl4dp_moco_pairs_end_cleanly_when_either_side_is_killed() {
    let dir = tempdir("ssl4dp-kill");
    for (i, (name, cfg)) in ssl4dp_configs(&dir).into_iter().enumerate() {
        {
            let which = i % 2;
            let child = Command::new(common::workspace_bin("tools", "launch"))
                .arg("--config")
                .arg(&cfg)
                .arg("--out-dir")
                .arg(dir.join(format!("{name}-{which}")))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            common::kill_side_and_check(child, which);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
