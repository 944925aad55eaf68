//! The losses against independent numpy computations of METHODS.md's formulas
//! (tests/reference/make_loss_fixtures.py), within 1e-5.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use trainer::loss::densecl::{dense_loss, match_locations};
use trainer::loss::infonce::info_nce;

fn fixtures() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/losses.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn flat(v: &Value, out: &mut Vec<f32>, shape: &mut Vec<usize>, depth: usize) {
    match v {
        Value::Array(a) => {
            if shape.len() == depth {
                shape.push(a.len());
            }
            for x in a {
                flat(x, out, shape, depth + 1);
            }
        }
        Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
        _ => panic!("bad fixture"),
    }
}

fn tensor<const D: usize>(v: &Value, device: &Device) -> Tensor<D> {
    let (mut data, mut shape) = (Vec::new(), Vec::new());
    flat(v, &mut data, &mut shape, 0);
    Tensor::from_data(TensorData::new(data, shape), device)
}

#[test]
fn infonce_with_queue_matches_numpy() {
    let f = &fixtures()["infonce"];
    let device = trainer::backend::test_device();
    let loss = info_nce(
        tensor(&f["q"], &device),
        tensor(&f["k"], &device),
        tensor(&f["queue"], &device),
        f["t"].as_f64().unwrap() as f32,
    );
    let (ours, want) = (
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
    assert!((ours - want).abs() < 1e-5, "ours {ours} numpy {want}");
}

#[test]
fn densecl_dense_loss_matches_numpy() {
    let f = &fixtures()["densecl_dense"];
    let device = trainer::backend::test_device();
    let matches = match_locations(tensor(&f["bq"], &device), tensor(&f["bk"], &device));
    let loss = dense_loss(
        tensor(&f["zq"], &device),
        tensor(&f["zk"], &device),
        matches,
        tensor(&f["queue"], &device),
        f["t"].as_f64().unwrap() as f32,
    );
    let (ours, want) = (
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
    assert!((ours - want).abs() < 1e-5, "ours {ours} numpy {want}");
}

fn ints(v: &Value) -> Vec<i32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as i32)
        })
        .collect()
}

#[test]
fn soco_box_byol_matches_numpy() {
    use trainer::loss::soco::{box_byol, correspondence};
    let f = &fixtures()["soco"];
    let device = trainer::backend::test_device();
    let c = correspondence(&ints(&f["ids_a"]), &ints(&f["ids_b"]), 3, &device);
    let loss = box_byol(tensor(&f["p"], &device), tensor(&f["z"], &device), c);
    let (ours, want) = (
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
    assert!((ours - want).abs() < 1e-5, "ours {ours} numpy {want}");
}

#[test]
fn cp2_losses_match_numpy() {
    use trainer::loss::cp2::{dense_loss, instance_loss};
    use trainer::loss::l2_normalize;
    let f = &fixtures()["cp2"];
    let device = trainer::backend::test_device();
    let q = l2_normalize(tensor::<3>(&f["q"], &device), 1);
    let k = l2_normalize(tensor::<3>(&f["k"], &device), 1);
    let (mq, mk) = (
        tensor::<2>(&f["mq"], &device),
        tensor::<2>(&f["mk"], &device),
    );
    let (ins, _) = instance_loss(
        q.clone(),
        k.clone(),
        mq.clone(),
        mk.clone(),
        tensor(&f["queue"], &device),
        0.2,
    );
    let dense = dense_loss(q, k, mq, mk);
    for (name, ours, want) in [
        (
            "instance",
            ins.into_scalar::<f32>() as f64,
            f["instance"].as_f64().unwrap(),
        ),
        (
            "dense",
            dense.into_scalar::<f32>() as f64,
            f["dense"].as_f64().unwrap(),
        ),
    ] {
        assert!(
            (ours - want).abs() < 1e-5,
            "{name}: ours {ours} numpy {want}"
        );
    }
}
