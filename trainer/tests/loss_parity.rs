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
    let device = Device::default();
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
    let device = Device::default();
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
