//! Backbones out to PyTorch's world and back (trainer::weights):
//! - ours → torchvision `.pth` / `.safetensors` / mmseg `.pth` / detectron2 `.pkl` → ours is
//!   bit-identical for R-18 and R-50 (every weight and BN statistic);
//! - the detectron2 and mmseg exports carry exactly the keys and shapes those frameworks expect
//!   (tests/reference/{detectron2_r50_keys, detectron2_r50_fpn_soco_keys, mmseg_r50_keys}.json,
//!   written by tests/reference/torch_weights_check.py from each framework's module structure);
//! - wrong depth, unknown layout, two candidate backbones and a truncated file are one-line
//!   refusals;
//! - with PyTorch installed (`scripts/setup.sh --torch`), real PyTorch loads each export
//!   (torchvision strictly) and its C5 features match ours within 1e-4, and a MoCo v2
//!   `.pth.tar` written by PyTorch imports with every backbone tensor and PyTorch's features.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use trainer::nn::fpn::Fpn;
use trainer::nn::resnet::{Depth, ResNet, ResNetConfig};
use trainer::nn::roi_head::ConvFcHead;
use trainer::weights::export::{self, DetectorParts, Format};
use trainer::weights::import::{self, Layout};
use trainer::weights::{backbone_state_dict, Entry, StateDict, Values};

fn device() -> burn::tensor::Device {
    trainer::backend::test_device()
}

/// A ResNet whose BN statistics and affine parameters are random too (fresh BNs have mean 0,
/// var 1, γ 1, β 0, which would hide a swapped or dropped statistic).
fn random_backbone(depth: Depth, seed: u32) -> ResNet {
    let net = ResNetConfig::new(depth).init(&device());
    let mut sd = backbone_state_dict(&net).unwrap();
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32) / (u32::MAX as f32)
    };
    for e in &mut sd {
        if let Values::F32(v) = &mut e.values {
            let (lo, hi) = if e.name.ends_with("running_var")
                || e.name.ends_with(".weight") && e.shape.len() == 1
            {
                (0.5, 1.5)
            } else if e.shape.len() == 1 {
                (-0.2, 0.2)
            } else {
                continue;
            };
            for x in v.iter_mut() {
                *x = lo + (hi - lo) * next();
            }
        }
    }
    let found = import::Found {
        layout: Layout::Torchvision,
        prefix: String::new(),
        depth: import::depth_number(depth),
    };
    let n = sd.len();
    import::load_entries(net, &sd, n, found, "random")
        .unwrap()
        .0
}

/// Imports the backbone of `file` into a fresh ResNet-18.
fn load_r18(file: &Path) -> anyhow::Result<(ResNet, import::ImportReport)> {
    import::load_backbone_file(
        ResNetConfig::new(Depth::R18).init(&device()),
        Depth::R18,
        file,
    )
}

fn keys_fixture(name: &str) -> BTreeMap<String, Vec<usize>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/reference/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn keys_of(sd: &StateDict) -> BTreeMap<String, Vec<usize>> {
    sd.iter()
        .map(|e| (e.name.clone(), e.shape.clone()))
        .collect()
}

fn strip(sd: StateDict, prefix: &str) -> StateDict {
    sd.into_iter()
        .map(|e| Entry {
            name: e.name.strip_prefix(prefix).unwrap_or(&e.name).to_string(),
            ..e
        })
        .collect()
}

fn sorted(mut sd: StateDict) -> StateDict {
    sd.sort_by(|a, b| a.name.cmp(&b.name));
    sd
}

/// Writes `net` as `format` to `file`, reads it back with the importer and checks the backbone
/// comes back bit-identical; returns what the file holds, as read.
fn round_trip(net: &ResNet, depth: Depth, format: Format, file: &Path) -> StateDict {
    let sd = export::state_dict(net, None, format).unwrap();
    export::write(&sd, format, file, &[("by", "test".into())]).unwrap();
    let read = import::read_file(file).unwrap();
    let (back, report) =
        import::load_backbone_file(ResNetConfig::new(depth).init(&device()), depth, file).unwrap();
    assert_eq!(report.missing, 0);
    assert_eq!(
        backbone_state_dict(&back).unwrap(),
        backbone_state_dict(net).unwrap(),
        "{format:?} {file:?}: not bit-identical"
    );
    read
}

#[test]
fn exports_round_trip_bit_identically_for_r18_and_r50() {
    let dir = tempfile::tempdir().unwrap();
    for (depth, n_bn_conv) in [(Depth::R18, 20), (Depth::R50, 53)] {
        let net = random_backbone(depth, 7);
        let tv = backbone_state_dict(&net).unwrap();
        // conv + 5 BN tensors (γ, β, mean, var, num_batches_tracked) per conv-BN pair.
        assert_eq!(tv.len(), n_bn_conv * 6);
        for (format, file) in [
            (Format::Torchvision, "tv.pth"),
            (Format::Torchvision, "tv.safetensors"),
            (Format::Mmseg, "mmseg.pth"),
            (Format::Detectron2, "d2.pkl"),
        ] {
            let file = dir.path().join(format!("{depth:?}-{file}"));
            let read = round_trip(&net, depth, format, &file);
            // The file holds exactly the exported tensors (a torchvision .pth: the state dict
            // itself, in torchvision's names and values).
            let want = export::state_dict(&net, None, format).unwrap();
            let got = match format {
                Format::Torchvision => read,
                Format::Mmseg => strip(read, "state_dict."),
                Format::Detectron2 => strip(read, "model."),
            };
            assert_eq!(sorted(got), sorted(want), "{format:?}");
        }
    }
}

#[test]
fn detectron2_and_mmseg_exports_carry_the_frameworks_keys() {
    let dev = device();
    let net = ResNetConfig::new(Depth::R50).init(&dev);
    let d2 = export::state_dict(&net, None, Format::Detectron2).unwrap();
    assert_eq!(keys_of(&d2), keys_fixture("detectron2_r50_keys"));
    let mm = export::state_dict(&net, None, Format::Mmseg).unwrap();
    assert_eq!(keys_of(&mm), keys_fixture("mmseg_r50_keys"));
    // SoCo: R50-FPN (P2..P5 at 256) and the 4conv1fc box head (7×7 RoIs, 1024-d fc).
    let fpn = Fpn::new(Depth::R50.stage_channels(), 256, &dev);
    let head = ConvFcHead::new(256, 7, 1024, &dev);
    let parts = DetectorParts {
        fpn: &fpn,
        box_head: &head,
    };
    let soco = export::state_dict(&net, Some(parts), Format::Detectron2).unwrap();
    assert_eq!(keys_of(&soco), keys_fixture("detectron2_r50_fpn_soco_keys"));
    // The box head's fc is written [out, in] as torch's Linear holds it: the importer's view.
    let fc = soco
        .iter()
        .find(|e| e.name == "box_head.fc1.weight")
        .unwrap();
    let ours = head
        .fc
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let Values::F32(theirs) = &fc.values else {
        panic!()
    };
    // ours is [in, out]; element (o, i) of theirs is ours[i * out + o].
    assert_eq!(theirs[1], ours[1024]);
    assert_eq!(theirs[12544], ours[1]);
}

#[test]
fn foreign_layouts_are_found_and_bad_files_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_backbone(Depth::R18, 3);
    let tv = backbone_state_dict(&net).unwrap();
    let with_prefix = |p: &str| -> StateDict {
        tv.iter()
            .map(|e| Entry {
                name: format!("{p}{}", e.name),
                ..e.clone()
            })
            .collect()
    };
    let write = |name: &str, sd: &StateDict| -> PathBuf {
        let p = dir.path().join(name);
        export::write(sd, Format::Torchvision, &p, &[]).unwrap();
        p
    };
    // MoCo's query encoder beside its key encoder: the query one is taken.
    let mut moco = with_prefix("module.encoder_q.");
    moco.extend(with_prefix("module.encoder_k."));
    let f = write("moco.safetensors", &moco);
    let (_, report) = load_r18(&f).unwrap();
    assert_eq!(report.found.prefix, "module.encoder_q.");
    assert_eq!(report.matched, 100);
    assert_eq!(report.unexpected, moco.len() - 100);
    // mmselfsup / mmseg (`backbone.`), OpenSelfSup's DenseCL (`encoder_q.0.`), SoCo
    // (`module.encoder.`) and DDP (`module.`) layouts.
    for prefix in ["backbone.", "encoder_q.0.", "module.encoder.", "module."] {
        let f = write(
            &format!("{}.safetensors", prefix.replace('.', "_")),
            &with_prefix(prefix),
        );
        let (_, report) = load_r18(&f).unwrap();
        assert_eq!(
            (report.found.prefix.as_str(), report.matched),
            (prefix, 100)
        );
    }
    // A trained detectron2 model's backbone.
    let d2: StateDict = tv
        .iter()
        .map(|e| Entry {
            name: format!(
                "backbone.bottom_up.{}",
                trainer::weights::detectron2::from_torchvision(&e.name)
            ),
            ..e.clone()
        })
        .collect();
    let f = write("d2.safetensors", &d2);
    let (back, report) = load_r18(&f).unwrap();
    assert_eq!(report.found.layout, Layout::Detectron2);
    assert_eq!(backbone_state_dict(&back).unwrap(), tv);

    let refuse = |f: &Path, depth: Depth, want: &str| {
        let err = import::load_backbone_file(ResNetConfig::new(depth).init(&device()), depth, f)
            .expect_err(want)
            .to_string();
        assert!(
            err.contains(want) && !err.contains('\n') && err.len() < 400,
            "{err}"
        );
    };
    refuse(
        &write("r18.pth", &tv),
        Depth::R50,
        "holds a ResNet-18 backbone",
    );
    let odd: StateDict = tv
        .iter()
        .map(|e| Entry {
            name: e.name.replace("conv", "kernel"),
            ..e.clone()
        })
        .collect();
    refuse(&write("odd.pth", &odd), Depth::R18, "unknown layout");
    let mut two = with_prefix("student.");
    two.extend(with_prefix("other."));
    refuse(&write("two.pth", &two), Depth::R18, "several ResNets");
    let full = std::fs::read(dir.path().join("r18.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    refuse(&cut, Depth::R18, "cut.pth");
    refuse(&dir.path().join("absent.pth"), Depth::R18, "no such file");
    // The export refuses an extension its format is not written as.
    let err = export::write(&tv, Format::Detectron2, &dir.path().join("x.pth"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains(".pkl"), "{err}");
}

// ---- against real PyTorch (when installed) ----

fn torch_python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-torch/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import torch, torchvision"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED the PyTorch side: no .venv-torch with torch + torchvision (scripts/setup.sh --torch)");
    }
    ok.then_some(py)
}

const INPUT: [usize; 4] = [2, 3, 64, 64];

fn input(dir: &Path) -> (Tensor<4>, PathBuf) {
    let n: usize = INPUT.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 1.5).collect();
    let path = dir.join("input.f32");
    std::fs::write(
        &path,
        v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    (
        Tensor::from_data(TensorData::new(v, INPUT), &device()),
        path,
    )
}

fn features(net: &ResNet, x: Tensor<4>, dir: &Path, name: &str) -> PathBuf {
    let y = net.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        y.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    path
}

fn script(py: &Path, args: &[&str]) {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/torch_weights_check.py");
    let out = Command::new(py).arg(s).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", text.trim());
    assert!(
        out.status.success(),
        "torch_weights_check.py {args:?}: {text}"
    );
}

#[test]
fn pytorch_loads_each_export_and_its_features_match() {
    let Some(py) = torch_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, input_path) = input(d);
    let shape = INPUT.map(|v| v.to_string()).join(",");
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    for (depth, arch) in [(Depth::R18, "resnet18"), (Depth::R50, "resnet50")] {
        let net = random_backbone(depth, 11);
        let feats = features(&net, x.clone(), d, &format!("{arch}.f32"));
        let tv = d.join(format!("{arch}.pth"));
        export::write(
            &export::state_dict(&net, None, Format::Torchvision).unwrap(),
            Format::Torchvision,
            &tv,
            &[],
        )
        .unwrap();
        script(
            &py,
            &[
                "torchvision",
                "--arch",
                arch,
                "--weights",
                &arg(&tv),
                "--input",
                &arg(&input_path),
                "--shape",
                &shape,
                "--features",
                &arg(&feats),
            ],
        );
        if depth == Depth::R50 {
            let mm = d.join("mmseg.pth");
            export::write(
                &export::state_dict(&net, None, Format::Mmseg).unwrap(),
                Format::Mmseg,
                &mm,
                &[("by", "test".into())],
            )
            .unwrap();
            script(
                &py,
                &[
                    "mmseg",
                    "--arch",
                    arch,
                    "--weights",
                    &arg(&mm),
                    "--input",
                    &arg(&input_path),
                    "--shape",
                    &shape,
                    "--features",
                    &arg(&feats),
                ],
            );
            let dev = device();
            let fpn = Fpn::new(Depth::R50.stage_channels(), 256, &dev);
            let head = ConvFcHead::new(256, 7, 1024, &dev);
            let parts = DetectorParts {
                fpn: &fpn,
                box_head: &head,
            };
            let pkl = d.join("soco.pkl");
            export::write(
                &export::state_dict(&net, Some(parts), Format::Detectron2).unwrap(),
                Format::Detectron2,
                &pkl,
                &[],
            )
            .unwrap();
            script(
                &py,
                &[
                    "detectron2",
                    "--fpn",
                    "--arch",
                    arch,
                    "--weights",
                    &arg(&pkl),
                    "--input",
                    &arg(&input_path),
                    "--shape",
                    &shape,
                    "--features",
                    &arg(&feats),
                ],
            );
        }
    }
    // A MoCo v2 checkpoint written by PyTorch: every backbone tensor matched, PyTorch's features.
    let moco = d.join("moco_v2.pth.tar");
    let theirs = d.join("moco_features.f32");
    script(
        &py,
        &[
            "make-moco",
            "--arch",
            "resnet50",
            "--out",
            &arg(&moco),
            "--input",
            &arg(&input_path),
            "--shape",
            &shape,
            "--features-out",
            &arg(&theirs),
        ],
    );
    let (net, report) = import::load_backbone_file(
        ResNetConfig::new(Depth::R50).init(&device()),
        Depth::R50,
        &moco,
    )
    .unwrap();
    eprintln!("{}", report.line(&moco));
    assert_eq!(report.found.prefix, "state_dict.module.encoder_q.");
    assert_eq!((report.matched, report.missing), (265, 0));
    let ours = net.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let theirs: Vec<f32> = std::fs::read(&theirs)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let max_ref = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "MoCo v2 .pth.tar: max |ours - PyTorch| / max |PyTorch| = {:.2e}",
        max_diff / max_ref
    );
    assert!(max_diff / max_ref <= 1e-4, "{}", max_diff / max_ref);
}
