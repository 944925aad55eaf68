//! Segmentation heads against an independent PyTorch reference written after mmseg's source
//! (tests/reference/make_seg_head_fixtures.py → seg_heads.json): parameter counts of the R50
//! configurations, and eval-mode forward passes on fixed weights within 1e-4 (FCNHead with
//! concat_input, the auxiliary FCNHead, ASPPHead, MoCoFCN), plus the bilinear resize of logits.

use std::collections::HashMap;

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor, TensorData};
use config::SegHead;
use serde_json::Value;
use trainer::nn::aspp::ConvBnRelu;
use trainer::nn::seg_heads::{resize, DecodeHead, FcnHead};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/seg_heads.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// A case's weights by PyTorch name.
struct Weights<'a> {
    values: HashMap<&'a str, (Vec<f32>, Vec<usize>)>,
    device: Device,
}

impl<'a> Weights<'a> {
    fn of(case: &'a Value, device: &Device) -> Weights<'a> {
        let shapes = case["shapes"].as_object().unwrap();
        let values = case["weights"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), (floats(v), dims(&shapes[k]))))
            .collect();
        Weights {
            values,
            device: device.clone(),
        }
    }

    fn tensor<const D: usize>(&self, name: &str) -> Tensor<D> {
        let (v, shape) = self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("no reference weight {name}"));
        Tensor::from_data(TensorData::new(v.clone(), shape.clone()), &self.device)
    }

    fn conv(&self, c: &mut Conv2d, prefix: &str) {
        c.weight = Param::from_tensor(self.tensor(&format!("{prefix}.weight")));
        if c.bias.is_some() {
            c.bias = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"))));
        }
    }

    fn bn(&self, bn: &mut BatchNorm, prefix: &str) {
        bn.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight")));
        bn.beta = Param::from_tensor(self.tensor(&format!("{prefix}.bias")));
        bn.running_mean = RunningState::new(self.tensor(&format!("{prefix}.running_mean")));
        bn.running_var = RunningState::new(self.tensor(&format!("{prefix}.running_var")));
    }

    /// mmcv's ConvModule `prefix` = Sequential(conv, bn, relu).
    fn conv_module(&self, m: &mut ConvBnRelu, prefix: &str) {
        self.conv(&mut m.conv, &format!("{prefix}.0"));
        self.bn(&mut m.bn, &format!("{prefix}.1"));
    }

    fn fcn(&self, h: &mut FcnHead) {
        for (i, c) in h.convs.iter_mut().enumerate() {
            self.conv_module(c, &format!("convs.{i}"));
        }
        if let Some(cat) = &mut h.conv_cat {
            self.conv_module(cat, "conv_cat");
        }
        self.conv(&mut h.conv_seg, "conv_seg");
    }
}

fn assert_close(got: Tensor<4>, want: &[f32], shape: &[usize], what: &str) {
    assert_eq!(got.dims().to_vec(), shape, "{what}: shape");
    let got = got
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "{what}: max |diff| {worst}");
}

/// burn counts BN running statistics with the parameters; PyTorch keeps them as buffers.
fn running(blocks: &[&ConvBnRelu]) -> usize {
    blocks.iter().map(|b| 2 * b.bn.gamma.dims()[0]).sum()
}

fn trainable(d: &DecodeHead) -> usize {
    let mut blocks: Vec<&ConvBnRelu> = Vec::new();
    if let Some(h) = &d.fcn {
        blocks.extend(h.convs.iter());
        blocks.extend(h.conv_cat.iter());
    }
    if let Some(h) = &d.aspp {
        blocks.push(&h.aspp.image_pool);
        blocks.extend(h.aspp.branches.iter());
        blocks.push(&h.aspp.bottleneck);
    }
    if let Some(h) = &d.mocofcn {
        blocks.extend(h.convs.iter());
    }
    d.num_params() - running(&blocks)
}

#[test]
fn parameter_counts_equal_mmseg_r50_configs() {
    let device = trainer::backend::test_device();
    let fx = fixture();
    // The reference's counts, written here so a change in either shows.
    let want = [
        ("fcn_r50_d8", 23_606_805usize),
        ("fcn_r50_d8_aux", 2_365_205),
        ("aspp_r50_d8", 42_222_101),
        ("mocofcn_r50", 11_809_301),
    ];
    for (name, n) in want {
        assert_eq!(
            fx["param_counts"][name].as_u64().unwrap() as usize,
            n,
            "{name}"
        );
    }
    let fcn = DecodeHead::new(
        &SegHead::Fcn {
            convs: 2,
            channels: 512,
            concat_input: true,
        },
        2048,
        21,
        &device,
    );
    assert_eq!(trainable(&fcn), want[0].1);
    let aux = FcnHead::new(1024, 256, 1, false, 21, &device);
    assert_eq!(
        aux.num_params() - running(&aux.convs.iter().collect::<Vec<_>>()),
        want[1].1
    );
    let aspp = DecodeHead::new(
        &SegHead::DeepLabV3 {
            channels: 512,
            rates: (12, 24, 36),
        },
        2048,
        21,
        &device,
    );
    assert_eq!(trainable(&aspp), want[2].1);
    let moco = DecodeHead::new(&SegHead::MocoFcn { channels: 512 }, 2048, 21, &device);
    assert_eq!(trainable(&moco), want[3].1);
}

#[test]
fn forward_passes_equal_the_reference() {
    let device = trainer::backend::test_device();
    let fx = fixture();
    let shape = dims(&fx["input_shape"]);
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(floats(&fx["input"]), shape.clone()),
        &device,
    );
    let (cin, ch, classes) = (shape[1], fx["channels"].as_u64().unwrap() as usize, 5);
    let heads = [
        (
            "fcn",
            SegHead::Fcn {
                convs: 2,
                channels: ch,
                concat_input: true,
            },
        ),
        (
            "fcn_aux",
            SegHead::Fcn {
                convs: 1,
                channels: ch,
                concat_input: false,
            },
        ),
        (
            "aspp",
            SegHead::DeepLabV3 {
                channels: ch,
                rates: (2, 3, 4),
            },
        ),
        ("mocofcn", SegHead::MocoFcn { channels: ch }),
    ];
    for (name, head) in heads {
        let case = &fx["cases"][name];
        let w = Weights::of(case, &device);
        let mut d = DecodeHead::new(&head, cin, classes, &device);
        if let Some(h) = &mut d.fcn {
            w.fcn(h);
        }
        if let Some(h) = &mut d.aspp {
            w.conv_module(&mut h.aspp.image_pool, "image_pool.1");
            for (j, b) in h.aspp.branches.iter_mut().enumerate() {
                w.conv_module(b, &format!("aspp_modules.{j}"));
            }
            w.conv_module(&mut h.aspp.bottleneck, "bottleneck");
            w.conv(&mut h.conv_seg, "conv_seg");
        }
        if let Some(h) = &mut d.mocofcn {
            for (i, c) in h.convs.iter_mut().enumerate() {
                w.conv_module(c, &format!("convs.{i}"));
            }
            w.conv(&mut h.classifier, "conv_seg");
        }
        let y = d.forward(x.clone(), 0.1);
        assert_close(
            y.clone(),
            &floats(&case["output"]),
            &dims(&case["output_shape"]),
            name,
        );
        if fx["resize_of"] == name {
            let s = dims(&fx["resized_shape"]);
            assert_close(resize(y, s[2], s[3]), &floats(&fx["resized"]), &s, "resize");
        }
    }
}

/// Sliding-window inference (mmseg's `slide_inference`): a window that covers the image is the
/// whole-image pass exactly; overlapping windows give full-size logits that average, per pixel,
/// the windows covering it — checked against the windows run one by one here.
#[test]
fn sliding_windows_average_the_windows_that_cover_each_pixel() {
    use trainer::eval::validate::infer;
    use trainer::nn::seg_heads::SegNet;
    let device = trainer::backend::test_device();
    let cfg = config::SegmentationConfig {
        classes: 3,
        head: SegHead::Fcn {
            convs: 1,
            channels: 8,
            concat_input: false,
        },
        aux_weight: 0.0,
        output_stride: 16,
        ..Default::default()
    };
    let net = SegNet::new(trainer::nn::resnet::Depth::R18, &cfg, &device);
    let x = Tensor::<4>::random(
        [1, 3, 40, 56],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let whole = net.predict(x.clone());
    let covering = infer(&net, x.clone(), Some((64, 32)));
    assert_close(
        covering,
        &whole
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap(),
        &[1, 3, 40, 56],
        "covering window",
    );
    // Windows of 32 every 24 (mmseg's grid: ⌈(len − 32) / 24⌉ + 1 = 2 each way): rows at 0 and
    // 8 (the second pulled back flush with the border), columns at 0 and 24.
    let slid = infer(&net, x.clone(), Some((32, 24)));
    let (h, w) = (40usize, 56usize);
    let mut sum = vec![0f32; 3 * h * w];
    let mut count = vec![0f32; h * w];
    for (y1, x1) in [(0, 0), (0, 24), (8, 0), (8, 24)] {
        let p = net
            .predict(x.clone().slice([0..1, 0..3, y1..y1 + 32, x1..x1 + 32]))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        for c in 0..3 {
            for y in 0..32 {
                for xx in 0..32 {
                    sum[c * h * w + (y1 + y) * w + x1 + xx] += p[c * 32 * 32 + y * 32 + xx];
                }
            }
        }
        for y in 0..32 {
            for xx in 0..32 {
                count[(y1 + y) * w + x1 + xx] += 1.0;
            }
        }
    }
    let want: Vec<f32> = sum
        .iter()
        .enumerate()
        .map(|(i, s)| s / count[i % (h * w)])
        .collect();
    assert_close(slid, &want, &[1, 3, 40, 56], "sliding windows");
}
