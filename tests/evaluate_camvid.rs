//! Segmentation evaluation end to end on real data (`../shared/data/camvid`, VOC layout, 11
//! classes) through real processes: `evaluate` fine-tunes from random init through a loader +
//! trainer pair, the loss falls, and validation over all 101 val images beats the majority-class
//! predictor's mIoU, with `eval.json`, the loss plot and the prediction sheet written; fine-tuning
//! resumes exactly from a checkpoint; SIGKILL of either side during fine-tuning ends the pair
//! quickly with the dead side named and no segment left, as in pretraining.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn camvid() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/camvid")
}

const SEGMENTATION: &str = r#"(
        classes: 11,
        class_names: ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"],
        head: Fcn(convs: 1, channels: 64, concat_input: true),
        aux_channels: 32,
        output_stride: 16,
        crop: (128, 160),
        scale: (480, 360),
        ratio_range: (0.4, 0.8),
    )"#;

/// ProtoSeg's prototype head on the same FCN head (METHODS.md §5), with γ 0.9 instead of 0.999 so
/// that a few steps move the prototypes visibly (the resume test must see them).
const PROTO_SEGMENTATION: &str = r#"(
        classes: 11,
        class_names: ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"],
        head: Fcn(convs: 1, channels: 64, concat_input: true),
        prototypes: (per_class: 4, gamma: 0.9, picture_images: 3),
        aux_channels: 32,
        output_stride: 16,
        crop: (128, 160),
        scale: (480, 360),
        ratio_range: (0.4, 0.8),
    )"#;

/// Both of ProtoSeg's paper pair at once: the prototype head and ContrastiveSeg's pixel contrast
/// from the first step (anchors: classes of more than 20 feature cells per image).
const PROTO_CONTRAST_SEGMENTATION: &str = r#"(
        classes: 11,
        head: Fcn(convs: 1, channels: 64, concat_input: true),
        prototypes: (per_class: 4, gamma: 0.9),
        pixel_contrast: (proj_dim: 32, max_samples: 200, max_views: 20, start_step: 0),
        aux_channels: 32,
        output_stride: 16,
        crop: (128, 160),
        scale: (480, 360),
        ratio_range: (0.4, 0.8),
    )"#;

/// A pretraining config whose `eval` section fine-tunes an R18 on CamVid.
fn eval_config(dir: &Path, iterations: usize) -> PathBuf {
    eval_config_with(dir, iterations, SEGMENTATION)
}

fn eval_config_with(dir: &Path, iterations: usize, segmentation: &str) -> PathBuf {
    let body = format!(
        r#"RunConfig(
    name: "camvid-e2e", seed: 5,
    dataset: (root: "{photos}", layout: Flat),
    loader: (workers: 2, ring_slots: 3, batch_size: 8),
    method: MocoV2(view: (size: 64)),
    trainer: (arch: ResNet18),
    eval: (
        root: "{camvid}",
        format: Voc(label_dir: "SegmentationClass"),
        segmentation: {segmentation},
        batch_size: 4,
        iterations: {iterations},
        optimizer: Sgd(lr: 0.01, momentum: 0.9, weight_decay: 5e-4),
    ),
)"#,
        photos = common::photos().display(),
        camvid = camvid().display(),
    );
    let p = dir.join("camvid.ron");
    std::fs::write(&p, body).unwrap();
    p
}

/// A fine-tuning run config (what `evaluate` derives), for `launch` directly.
fn finetune_config(dir: &Path) -> PathBuf {
    finetune_config_with(dir, SEGMENTATION)
}

fn finetune_config_with(dir: &Path, segmentation: &str) -> PathBuf {
    let body = format!(
        r#"RunConfig(
    name: "camvid-ft", seed: 6,
    dataset: (root: "{camvid}", layout: Segmentation(format: Voc(label_dir: "SegmentationClass"), split: "train"), max_images: 40),
    loader: (workers: 2, ring_slots: 3, batch_size: 4),
    method: Segmentation{segmentation},
    trainer: (arch: ResNet18, epochs: 1000, optimizer: Sgd(lr: 0.01, momentum: 0.9, weight_decay: 5e-4),
              schedule: Poly(power: 0.9, min_lr: 1e-4), base_batch_size: 4, checkpoint_every: 1000),
)"#,
        camvid = camvid().display(),
    );
    let p = dir.join("finetune.ron");
    std::fs::write(&p, body).unwrap();
    p
}

/// Runs `evaluate --random-init-only` on `cfg` (60 iterations) into `dir/out`; asserts it
/// succeeds, the fine-tuning loss falls and validation of all 101 images beats the majority-class
/// predictor. Returns the output folder, `evaluate`'s text and the validation report.
fn evaluate_random_init(dir: &Path, cfg: &Path) -> (PathBuf, String, serde_json::Value) {
    let out = dir.join("out");
    let o = Command::new(common::workspace_bin("tools", "evaluate"))
        .arg("--config")
        .arg(cfg)
        .arg("--random-init-only")
        .arg("--out-dir")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .env("DENSEPRE_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    let t = common::text(&o);
    assert!(o.status.success(), "{t}");
    let loss = common::metric_losses(&out.join("random/finetune/metrics.jsonl"));
    assert_eq!(loss.len(), 60);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (early, late) = (mean(&loss[..10]), mean(&loss[50..]));
    assert!(
        late < early - 0.3,
        "loss did not fall: {early:.3} -> {late:.3}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("random/val/eval.json")).unwrap())
            .unwrap();
    assert_eq!(report["images"], 101, "every val image is validated once");
    let (miou, floor) = (
        report["miou"].as_f64().unwrap(),
        report["majority_miou"].as_f64().unwrap(),
    );
    assert!(
        miou > floor + 0.02,
        "mIoU {miou:.4} vs majority-class {floor:.4}"
    );
    (out, t, report)
}

#[test]
fn fine_tuning_lowers_the_loss_and_beats_the_majority_class() {
    let dir = common::tempdir("evaluate", "camvid");
    let cfg = eval_config(&dir, 60);
    let (out, t, report) = evaluate_random_init(&dir, &cfg);
    assert!(t.contains("mIoU: random init "), "{t}");
    assert_eq!(report["classes"][3]["name"], "road");
    for f in ["eval.json", "finetune.png", "random/val/predictions.png"] {
        let p = out.join(f);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 100)
                .unwrap_or(false),
            "{}",
            p.display()
        );
    }
    // The prediction sheet: three 480-wide tiles per row, one row per image.
    let sheet = image::open(out.join("random/val/predictions.png")).unwrap();
    assert_eq!(sheet.width(), 3 * 480 + 4 * 4);
}

/// The prototype head through the same processes: the loss (CE + PPC + PPD) falls, validation
/// (nearest prototype) beats the majority class, and the run draws its prototype pictures.
#[test]
fn protoseg_head_fine_tunes_and_draws_its_prototypes() {
    let dir = common::tempdir("evaluate", "protoseg");
    let cfg = eval_config_with(&dir, 60, PROTO_SEGMENTATION);
    let (out, _, report) = evaluate_random_init(&dir, &cfg);
    let metrics = std::fs::read_to_string(out.join("random/finetune/metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let term = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    assert!(term(&rows[0], "ppc_loss").is_finite(), "{}", rows[0]);
    assert!(rows.iter().any(|r| term(r, "prototypes_updated") > 0.0));
    // Usage shares: per class present in val, one share per prototype, summing to 1.
    let shares = report["prototypes"]["usage_shares"].as_array().unwrap();
    assert_eq!(shares.len(), 11);
    let road: Vec<f64> = shares[3]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(road.len(), 4);
    assert!((road.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{road:?}");
    // The similarity sheet: 3 images × (image, class mask, 4 prototype maps) of 96-px rows.
    let sheet = image::open(out.join("random/val/prototype_similarity.png")).unwrap();
    assert_eq!(sheet.height(), 3 * (96 + 4) + 4);
    assert_eq!(sheet.width(), 6 * 128 + 7 * 4);
    assert!(image::open(out.join("random/val/prototype_usage.png")).is_ok());
}

#[test]
fn fine_tuning_resumes_exactly() {
    let dir = common::tempdir("evaluate", "resume");
    resumes_exactly(&dir.join("softmax"), SEGMENTATION);
    let extras = resumes_exactly(&dir.join("protoseg"), PROTO_CONTRAST_SEGMENTATION);
    for term in ["ppc_loss", "pixel_contrast_loss"] {
        assert!(
            extras.contains(&format!("\"{term}\"")),
            "no {term} in {extras}"
        );
    }
}

/// With the prototype head, the prototypes (moved by momentum, not by the optimiser) and the
/// Gumbel draws of the update must resume too, and so must the pixel contrast's anchor draws.
/// Returns the full run's metrics.
fn resumes_exactly(dir: &Path, segmentation: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = finetune_config_with(dir, segmentation);
    let run = |out: &str, extra: &[&str]| {
        let o = common::launch_command(&cfg, &dir.join(out), extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
    };
    run("full", &["--max-steps", "6"]);
    run("split", &["--max-steps", "3"]);
    let ck = dir.join("split/last.ckpt");
    run(
        "split",
        &["--max-steps", "6", "--resume", ck.to_str().unwrap()],
    );
    let (a, b) = (
        common::metric_losses(&dir.join("full/metrics.jsonl")),
        common::metric_losses(&dir.join("split/metrics.jsonl")),
    );
    assert_eq!((a.len(), b.len()), (6, 6));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {i}: {x} vs {y}"
        );
    }
    std::fs::read_to_string(dir.join("full/metrics.jsonl")).unwrap()
}

#[test]
fn killing_either_side_during_fine_tuning_ends_the_pair() {
    let dir = common::tempdir("evaluate", "kill");
    let cfg = finetune_config(&dir);
    for which in [0, 1] {
        let l = common::launch_command(
            &cfg,
            &dir.join(format!("out{which}")),
            &["--max-steps", "100000"],
        )
        .spawn()
        .unwrap();
        common::kill_side_and_check(l, which);
    }
}
