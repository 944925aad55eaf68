//! RoIAlign against the numpy reference of torchvision's `roi_align` (aligned, default sampling
//! ratio; tests/reference/make_roi_fixtures.py, itself equal to torchvision): within 1e-5 on random
//! features, with boxes at borders, past the edges, smaller than a bin and of zero size.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use trainer::nn::roi_align::RoiPlan;

fn fixture() -> Value {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/roi_align.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| floats(x, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
        _ => panic!("bad fixture"),
    }
}

fn setup(device: &Device) -> (Tensor<4>, RoiPlan, Vec<f32>) {
    let f = fixture();
    let mut feat = Vec::new();
    floats(&f["features"], &mut feat);
    let features = Tensor::<4>::from_data(TensorData::new(feat, [2, 3, 9, 11]), device);
    let rois: Vec<Vec<f64>> = serde_json::from_value(f["rois"].clone()).unwrap();
    let boxes: Vec<[f32; 4]> = rois
        .iter()
        .map(|r| [r[1] as f32, r[2] as f32, r[3] as f32, r[4] as f32])
        .collect();
    let batch: Vec<usize> = rois.iter().map(|r| r[0] as usize).collect();
    let plan = RoiPlan::new(&boxes, &batch, 9, 11, f["out"].as_u64().unwrap() as usize);
    let mut want = Vec::new();
    floats(&f["pooled"], &mut want);
    (features, plan, want)
}

#[test]
fn roi_align_matches_torchvision_reference() {
    let device = trainer::backend::test_device();
    let (features, plan, want) = setup(&device);
    let got = plan.apply(features);
    assert_eq!(got.dims(), [plan.rois, 3, 7, 7]);
    let got: Vec<f32> = got.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "max |ours − reference| = {worst}");
    // The fixture exercises empty output too: the zero-size box pools nothing.
    let zero_size = &got[5 * 3 * 49..6 * 3 * 49];
    assert!(zero_size.iter().all(|v| *v == 0.0));
}

#[test]
fn gradients_flow_to_the_features() {
    let device = trainer::backend::test_device().autodiff();
    let (features, plan, _) = setup(&device);
    let features = features.require_grad();
    let loss = plan.apply(features.clone()).sum();
    let grads = loss.backward();
    let g = features.grad(&grads).expect("features get a gradient");
    // d(Σ pooled)/d(feature) summed over the map = Σ of the sampling weights, per channel.
    let total: f32 = g.sum().into_scalar::<f32>();
    let want = plan.weight.iter().sum::<f32>() * 3.0;
    assert!(
        (total - want).abs() < 1e-3 * want.abs().max(1.0),
        "{total} vs {want}"
    );
}
