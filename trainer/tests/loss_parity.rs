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

fn assert_close(name: &str, ours: f64, want: f64) {
    assert!(
        (ours - want).abs() < 1e-5,
        "{name}: ours {ours} numpy {want}"
    );
}

#[test]
fn patch_rotation_loss_matches_numpy() {
    use trainer::loss::rotation::rotation_loss;
    let f = &fixtures()["patch_rotation"];
    let device = trainer::backend::test_device();
    let (mut values, mut shape) = (Vec::new(), Vec::new());
    flat(&f["rotation"], &mut values, &mut shape, 0);
    let rotation: Vec<u8> = values.iter().map(|&r| r as u8).collect();
    let size = f["size"].as_u64().unwrap() as usize;
    let (loss, accuracy) = rotation_loss(tensor(&f["logits"], &device), &rotation, 3, size);
    assert_close(
        "loss",
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
    assert_close("accuracy", accuracy, f["accuracy"].as_f64().unwrap());
}

#[test]
fn edmoco_pooled_decoder_infonce_matches_numpy() {
    use burn::module::Param;
    use trainer::loss::{infonce::info_nce, l2_normalize};
    use trainer::methods::edmoco::EdEncoder;
    use trainer::methods::mocov2::MocoEncoder;
    let f = &fixtures()["edmoco"];
    let device = trainer::backend::test_device();
    let run = config::RunConfig::from_str(
        r#"RunConfig(name: "t", dataset: (root: "."), trainer: (arch: ResNet18),
            method: EdMoco(moco: (proj_hidden: 10, proj_dim: 8), decoder: MocoFcn(channels: 6),
                           output_stride: 16))"#,
        "test",
    )
    .unwrap();
    let mut enc = EdEncoder::build(&run, &device).unwrap();
    enc.head.fc1.weight = Param::from_tensor(tensor(&f["w1"], &device));
    enc.head.fc1.bias = Some(Param::from_tensor(tensor(&f["b1"], &device)));
    enc.head.fc2.weight = Param::from_tensor(tensor(&f["w2"], &device));
    enc.head.fc2.bias = Some(Param::from_tensor(tensor(&f["b2"], &device)));
    let q = l2_normalize(enc.embed(tensor(&f["dq"], &device)), 1);
    let k = l2_normalize(enc.embed(tensor(&f["dk"], &device)), 1);
    let loss = info_nce(q, k, tensor(&f["queue"], &device), 0.2);
    assert_close(
        "edmoco",
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
}

#[test]
fn plmoco_matched_cell_infonce_matches_numpy() {
    use trainer::loss::{l2_normalize, patch_infonce::matched_cell_info_nce};
    let f = &fixtures()["plmoco"];
    let device = trainer::backend::test_device();
    let matches: Vec<i32> = ints(&f["matches"]);
    let (loss, matched) = matched_cell_info_nce(
        l2_normalize(tensor::<3>(&f["q"], &device), 1),
        l2_normalize(tensor::<3>(&f["k"], &device), 1),
        &matches,
        tensor(&f["queue"], &device),
        0.2,
    )
    .expect("the fixture has matched cells");
    assert_eq!(matched as u64, f["matched"].as_u64().unwrap());
    assert_close(
        "plmoco",
        loss.into_scalar::<f32>() as f64,
        f["loss"].as_f64().unwrap(),
    );
}

/// A view pair whose correspondence is known by construction: view 1's cells are view 0's in a
/// mirrored order (a horizontal flip of the same crop), so the matched key of every cell is its
/// own embedding and each positive logit is exactly 1/T; cells of view 0 that the match leaves
/// out do not move the loss, and wrong matches raise it.
#[test]
fn plmoco_positives_are_the_matched_cells() {
    use burn::tensor::{Distribution, Tensor};
    use trainer::loss::{l2_normalize, patch_infonce::matched_cell_info_nce};
    let device = trainer::backend::test_device();
    let (n, d, g) = (2usize, 16usize, 4usize);
    let cells = g * g;
    let mirror = |c: usize| (c / g) * g + (g - 1 - c % g);
    let q: Vec<f32> = Tensor::<3>::random([n, d, cells], Distribution::Normal(0.0, 1.0), &device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let mut k = vec![0f32; q.len()];
    for i in 0..n {
        for ch in 0..d {
            for c in 0..cells {
                k[(i * d + ch) * cells + mirror(c)] = q[(i * d + ch) * cells + c];
            }
        }
    }
    // The right half of view 0 falls outside view 1 in image 1.
    let matches: Vec<i32> = (0..n * cells)
        .map(|r| {
            let c = r % cells;
            if r / cells == 1 && c % g >= g / 2 {
                -1
            } else {
                mirror(c) as i32
            }
        })
        .collect();
    let t = |v: &[f32]| {
        l2_normalize(
            Tensor::<3>::from_data(TensorData::new(v.to_vec(), [n, d, cells]), &device),
            1,
        )
    };
    let queue = l2_normalize(
        Tensor::<2>::random([32, d], Distribution::Normal(0.0, 1.0), &device),
        1,
    );
    let loss = |q: &[f32], m: &[i32]| {
        let (l, matched) = matched_cell_info_nce(t(q), t(&k), m, queue.clone(), 0.2).unwrap();
        (l.into_scalar::<f32>() as f64, matched)
    };
    let (ours, matched) = loss(&q, &matches);
    assert_eq!(matched, cells + cells / 2);
    // By hand: mean over matched cells of logsumexp([1/T, q·queue/T]) − 1/T.
    let qn: Vec<f32> = t(&q).into_data().try_to_vec::<f32>().unwrap();
    let qu: Vec<f32> = queue.clone().into_data().try_to_vec::<f32>().unwrap();
    let mut want = 0.0;
    for (r, &m) in matches.iter().enumerate() {
        if m < 0 {
            continue;
        }
        let (i, c) = (r / cells, r % cells);
        let cell: Vec<f64> = (0..d)
            .map(|ch| qn[(i * d + ch) * cells + c] as f64)
            .collect();
        let mut logits = vec![1.0 / 0.2];
        for row in qu.chunks(d) {
            logits.push(
                cell.iter()
                    .zip(row)
                    .map(|(a, &b)| a * b as f64)
                    .sum::<f64>()
                    / 0.2,
            );
        }
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        want += max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() - logits[0];
    }
    want /= matched as f64;
    assert_close("mirrored positives", ours, want);
    // Unmatched cells of view 0 are left out: changing them changes nothing.
    let mut q2 = q.clone();
    for ch in 0..d {
        for c in (0..cells).filter(|c| c % g >= g / 2) {
            q2[(d + ch) * cells + c] = -q2[(d + ch) * cells + c] * 3.0;
        }
    }
    assert_close("unmatched left out", loss(&q2, &matches).0, ours);
    // Positives taken from the wrong cells (unflipped) give a higher loss.
    let wrong: Vec<i32> = matches
        .iter()
        .enumerate()
        .map(|(r, &m)| if m < 0 { -1 } else { (r % cells) as i32 })
        .collect();
    assert!(
        loss(&q, &wrong).0 > ours + 0.5,
        "wrong cells should not be positives"
    );
}
