//! ProtoSeg's prototype learning and losses against a numpy transcription of the reference code
//! (tests/reference/make_protoseg_fixtures.py → protoseg.json) within 1e-5 — with an absent class,
//! ignore pixels and wrong predictions in the batch — and the head's inference on hand-set
//! prototypes.

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::Value;
use trainer::loss::pixel_ce::IGNORE;
use trainer::loss::pixel_contrast::{pixel_contrast_loss, Anchors};
use trainer::loss::protoseg::{assign, ppc_loss, ppd_loss, sinkhorn, AssignParams, ProtoBatch};
use trainer::nn::proto_head::ProtoHead;

fn fixtures() -> Value {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/protoseg.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        _ => panic!("bad fixture"),
    }
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn close(ours: &[f32], want: &[f32], what: &str) {
    assert_eq!(ours.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 1e-5, "{what}[{i}]: ours {a}, numpy {b}");
    }
}

struct Inputs {
    similarity: Vec<f32>,
    embeddings: Vec<f32>,
    labels: Vec<i64>,
    predictions: Vec<i64>,
    prototypes: Vec<f32>,
    gumbel: Vec<f32>,
    classes: usize,
    per_class: usize,
    gamma: f32,
}

fn inputs(f: &Value) -> Inputs {
    Inputs {
        similarity: floats(&f["similarity"]),
        embeddings: floats(&f["embeddings"]),
        labels: ints(&f["labels"]),
        predictions: ints(&f["predictions"]),
        prototypes: floats(&f["prototypes"]),
        gumbel: floats(&f["gumbel"]),
        classes: f["classes"].as_u64().unwrap() as usize,
        per_class: f["per_class"].as_u64().unwrap() as usize,
        gamma: f["gamma"].as_f64().unwrap() as f32,
    }
}

fn run_assign(x: &Inputs, gumbel: bool) -> trainer::loss::protoseg::Assignment {
    assign(
        &ProtoBatch {
            similarity: &x.similarity,
            embeddings: &x.embeddings,
            labels: &x.labels,
            predictions: &x.predictions,
            prototypes: &x.prototypes,
            classes: x.classes,
            per_class: x.per_class,
        },
        &AssignParams {
            epsilon: 0.05,
            iterations: 3,
            gamma: x.gamma,
            gumbel: gumbel.then_some(x.gumbel.as_slice()),
        },
    )
}

#[test]
fn sinkhorn_plan_matches_numpy() {
    let f = fixtures();
    let scores = floats(&f["sinkhorn_class0_scores"]);
    let m = f["per_class"].as_u64().unwrap() as usize;
    let plan = sinkhorn(&scores, scores.len() / m, m, 0.05, 3);
    close(&plan, &floats(&f["sinkhorn_class0_plan"]), "plan");
}

#[test]
fn targets_and_momentum_update_match_numpy() {
    let f = fixtures();
    let x = inputs(&f);
    let want_targets = ints(&f["targets"]);
    assert!(
        want_targets.contains(&IGNORE),
        "the fixture has ignore pixels"
    );
    let k3 = 3 * x.per_class as i64;
    assert!(want_targets.iter().all(|&t| t == IGNORE || t < k3));

    let a = run_assign(&x, false);
    assert_eq!(a.targets, want_targets);
    close(
        &a.prototypes,
        &floats(&f["prototypes_after_argmax"]),
        "argmax update",
    );
    // Class 3 is absent: its prototypes are only re-normalised.
    let d = x.embeddings.len() / x.labels.len();
    let absent = 3 * x.per_class * d..4 * x.per_class * d;
    close(
        &a.prototypes[absent.clone()],
        &x.prototypes[absent],
        "absent class",
    );

    assert!(f["gumbel_differs_from_argmax"].as_bool().unwrap());
    let g = run_assign(&x, true);
    assert_eq!(
        g.targets, want_targets,
        "the PPC target is the argmax either way"
    );
    close(
        &g.prototypes,
        &floats(&f["prototypes_after_gumbel"]),
        "gumbel update",
    );
}

#[test]
fn ppc_and_ppd_match_numpy() {
    let f = fixtures();
    let x = inputs(&f);
    let device = trainer::backend::test_device();
    let (p, km) = (x.labels.len(), x.classes * x.per_class);
    let logits = Tensor::<2>::from_data(TensorData::new(x.similarity.clone(), [p, km]), &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ints(&f["targets"]), [p]), &device);
    let scalar = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
    let cases = [
        (
            "ppc",
            scalar(ppc_loss(logits.clone(), targets.clone(), None)),
        ),
        (
            "ppc_t01",
            scalar(ppc_loss(logits.clone(), targets.clone(), Some(0.1))),
        ),
        ("ppd", scalar(ppd_loss(logits, targets))),
    ];
    for (name, ours) in cases {
        let want = f[name].as_f64().unwrap();
        assert!(
            (ours - want).abs() < 1e-5,
            "{name}: ours {ours}, numpy {want}"
        );
    }
}

/// Inference is the nearest prototype: with one class's prototypes set to where the embeddings
/// of a pixel point, that class wins, whichever of its prototypes it is.
#[test]
fn hand_set_prototypes_predict_their_classes() {
    let device = trainer::backend::test_device();
    let (dim, classes, per_class) = (4, 3, 2);
    let mut head = ProtoHead::new(dim, classes, per_class, &device);
    // Class c's prototypes: ±e_c rotated, so each class owns one axis (class 0 also owns −e_3).
    let mut p = vec![0f32; classes * per_class * dim];
    let set = |p: &mut Vec<f32>, k: usize, m: usize, axis: usize, v: f32| {
        p[(k * per_class + m) * dim + axis] = v;
    };
    for k in 0..classes {
        set(&mut p, k, 0, k, 1.0);
        set(&mut p, k, 1, 3, if k == 0 { -1.0 } else { 0.0 });
    }
    // Classes 1 and 2's second prototypes: the ±(e_1 + e_2) diagonals, nearer neither axis.
    set(&mut p, 1, 1, 1, std::f32::consts::FRAC_1_SQRT_2);
    set(&mut p, 1, 1, 2, -std::f32::consts::FRAC_1_SQRT_2);
    set(&mut p, 2, 1, 1, -std::f32::consts::FRAC_1_SQRT_2);
    set(&mut p, 2, 1, 2, -std::f32::consts::FRAC_1_SQRT_2);
    head.set_prototypes(Tensor::from_data(
        TensorData::new(p, [classes, per_class, dim]),
        &device,
    ));
    // The nearest-prototype rule on embeddings we choose, through the head's own path from
    // embeddings to class logits (cosines, max per class, mask_norm).
    let embeddings = Tensor::<2>::from_data(
        TensorData::new(
            vec![
                0.9f32, 0.1, 0.0, 0.1, // near e_0 → class 0
                0.0, 0.1, 0.9, 0.0, // near e_2 → class 2
                0.0, 0.0, 0.1, -0.9, // near −e_3 → class 0 (its second prototype)
                0.0, 0.6, -0.6,
                0.0, // the (e_1 − e_2) diagonal → class 1 (second prototype)
            ],
            [4, dim],
        ),
        &device,
    );
    let logits = head.class_logits(trainer::loss::l2_normalize(embeddings, 1));
    let pred: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    assert_eq!(pred, vec![0, 2, 0, 1]);
}

#[test]
fn pixel_contrast_loss_matches_numpy() {
    let f = &fixtures()["pixel_contrast"];
    let device = trainer::backend::test_device();
    let emb = floats(&f["embeddings"]);
    let p = f["embeddings"].as_array().unwrap().len();
    let embeddings =
        Tensor::<2>::from_data(TensorData::new(emb.clone(), [p, emb.len() / p]), &device);
    let pixels: Vec<Vec<usize>> = f["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ints(r).into_iter().map(|v| v as usize).collect())
        .collect();
    let anchors = Anchors {
        n_view: pixels[0].len(),
        pixels,
        classes: ints(&f["classes"]),
    };
    let ours = pixel_contrast_loss(embeddings, &anchors, 0.1, 0.07).into_scalar::<f32>() as f64;
    let want = f["loss"].as_f64().unwrap();
    assert!(
        (ours - want).abs() < 1e-5 * want.abs().max(1.0),
        "ours {ours}, numpy {want}"
    );
}
