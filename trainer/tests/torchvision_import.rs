//! A torchvision-layout ResNet state dict (the real key list and shapes of torchvision's resnet18
//! and resnet50, tests/reference/torchvision_*_keys.json; values made up here) loads into our
//! ResNet: every tensor found, BN weight/bias → γ/β, downsample.0/1 → conv/bn, MoCo's
//! `module.encoder_q.` prefix stripped, `fc` and `num_batches_tracked` ignored.

use std::collections::BTreeMap;

use safetensors::tensor::{Dtype, TensorView};
use trainer::nn::resnet::{Depth, ResNetConfig};
use trainer::weights::import::load_backbone_file;

fn write_state_dict(
    arch: &str,
    prefix: &str,
    path: &std::path::Path,
) -> BTreeMap<String, Vec<f32>> {
    let keys: BTreeMap<String, Vec<usize>> = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../tests/reference/torchvision_{arch}_keys.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let mut values = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    for (i, (k, shape)) in keys.iter().enumerate() {
        let n: usize = shape.iter().product();
        if k.ends_with("num_batches_tracked") {
            bytes.insert(
                format!("{prefix}{k}"),
                (vec![0u8; 8], Dtype::I64, shape.clone()),
            );
            continue;
        }
        // Distinct, recognisable values per tensor; variances stay positive.
        let v: Vec<f32> = (0..n)
            .map(|j| 0.5 + i as f32 * 0.001 + (j % 7) as f32 * 1e-4)
            .collect();
        bytes.insert(
            format!("{prefix}{k}"),
            (
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Dtype::F32,
                shape.clone(),
            ),
        );
        values.insert(k.clone(), v);
    }
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, (b, dt, shape))| (k.clone(), TensorView::new(*dt, shape.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
    values
}

fn check(arch: &str, depth: Depth, prefix: &str, want_loaded: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{arch}.safetensors"));
    let values = write_state_dict(arch, prefix, &path);
    let device = trainer::backend::test_device();
    let (net, report) =
        load_backbone_file(ResNetConfig::new(depth).init(&device), depth, &path).unwrap();
    assert_eq!(report.matched, want_loaded);
    assert_eq!(report.missing, 0);
    // fc.weight, fc.bias and one num_batches_tracked per BN (a fifth of the BN and conv
    // tensors: 1 conv + 4 BN tensors per pair) go unused.
    assert_eq!(report.unexpected, 2 + want_loaded / 5);
    let first = |t: burn::tensor::Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0];
    let flat = |t: burn::tensor::Tensor<4>| t.reshape([-1]);
    assert_eq!(first(net.bn1.gamma.val()), values["bn1.weight"][0]);
    assert_eq!(first(net.bn1.beta.val()), values["bn1.bias"][0]);
    assert_eq!(
        first(net.bn1.running_var.value()),
        values["bn1.running_var"][0]
    );
    assert_eq!(
        first(flat(net.conv1.weight.val())),
        values["conv1.weight"][0]
    );
    let ds = net.layer2[0].downsample.as_ref().unwrap();
    assert_eq!(
        first(flat(ds.conv.weight.val())),
        values["layer2.0.downsample.0.weight"][0]
    );
    assert_eq!(
        first(ds.bn.gamma.val()),
        values["layer2.0.downsample.1.weight"][0]
    );
}

#[test]
fn torchvision_resnet18_loads_every_tensor() {
    // 20 convs + 20 BNs × (γ, β, mean, var) = 100; fc and num_batches_tracked ignored.
    check("resnet18", Depth::R18, "", 100);
}

#[test]
fn moco_prefixed_resnet50_loads_every_tensor() {
    // 53 convs + 53 BNs × 4 = 265.
    check("resnet50", Depth::R50, "module.encoder_q.", 265);
}

#[test]
fn a_resnet18_file_does_not_fit_a_resnet50() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r18.safetensors");
    write_state_dict("resnet18", "", &path);
    let err = load_backbone_file(
        ResNetConfig::new(Depth::R50).init(&trainer::backend::test_device()),
        Depth::R50,
        &path,
    )
    .expect_err("R18 weights must not load into R50")
    .to_string();
    assert!(
        err.contains("holds a ResNet-18 backbone") && err.contains("ResNet-50") && err.len() < 500,
        "{err}"
    );
}
