//! detectron2's names and `.pkl` layout, as MoCo's `convert-pretrain-to-detectron2.py` and SoCo's
//! `convert_detectron2_Head.py` write them: `{"model": {name: numpy array}, "__author__": …,
//! "matching_heuristics": True}`, where the heuristics let detectron2 match `stem.conv1.weight`
//! to `backbone.bottom_up.stem.conv1.weight` and `fpn_lateral2.weight` to
//! `backbone.fpn_lateral2.weight` by suffix.

use anyhow::{bail, Context, Result};

use super::numpy::NdValues;
use super::pickle;
use super::pickle_writer::Writer;
use super::{Entry, StateDict, Values};

/// torchvision's backbone name → detectron2's, by the converters' own string rules: anything
/// outside the four stages belongs to the stem; `layerN` is `res(N+1)`; `bnK` is `convK.norm`;
/// `downsample.0/1` is `shortcut` / `shortcut.norm`.
pub fn from_torchvision(name: &str) -> String {
    let mut k = name.to_string();
    if !k.contains("layer") {
        k = format!("stem.{k}");
    }
    for t in 1..=4 {
        k = k.replace(&format!("layer{t}"), &format!("res{}", t + 1));
    }
    for t in 1..=3 {
        k = k.replace(&format!("bn{t}"), &format!("conv{t}.norm"));
    }
    k.replace("downsample.0", "shortcut")
        .replace("downsample.1", "shortcut.norm")
}

/// detectron2's backbone name → torchvision's (the inverse of [`from_torchvision`]); None for
/// a name that is not a ResNet backbone's (FPN, heads).
pub fn to_torchvision(name: &str) -> Option<String> {
    let k = if let Some(rest) = name.strip_prefix("stem.") {
        rest.to_string()
    } else if name.starts_with("res") {
        let stage: usize = name.get(3..4)?.parse().ok()?;
        if !(2..=5).contains(&stage) || name.get(4..5) != Some(".") {
            return None;
        }
        format!("layer{}{}", stage - 1, &name[4..])
    } else {
        return None;
    };
    let mut k = k
        .replace("shortcut.norm", "downsample.1")
        .replace("shortcut", "downsample.0");
    for t in 1..=3 {
        k = k.replace(&format!("conv{t}.norm"), &format!("bn{t}"));
    }
    Some(k)
}

/// SoCo's FPN (ours: `lateral.{i}` / `output.{i}`, each `conv` + `bn`, levels P2..P5) in
/// detectron2's names: `fpn_lateral{i+2}` / `fpn_output{i+2}`, the BN as `.norm`.
pub fn fpn_name(ours: &str) -> Option<String> {
    let (kind, rest) = if let Some(r) = ours.strip_prefix("lateral.") {
        ("fpn_lateral", r)
    } else if let Some(r) = ours.strip_prefix("output.") {
        ("fpn_output", r)
    } else {
        return None;
    };
    let (level, rest) = rest.split_once('.')?;
    let level: usize = level.parse().ok()?;
    let rest = conv_bn(rest)?;
    Some(format!("{kind}{}.{rest}", level + 2))
}

/// A conv + BN pair's tensor in detectron2's naming: the conv's own, the BN's under `norm.`.
fn conv_bn(rest: &str) -> Option<String> {
    rest.strip_prefix("conv.")
        .map(str::to_string)
        .or_else(|| rest.strip_prefix("bn.").map(|r| format!("norm.{r}")))
}

/// SoCo's 4conv1fc box head (ours: `convs.{i}.conv/bn`, `fc`) in detectron2's
/// `FastRCNNConvFCHead` names: `box_head.conv{i+1}` (+ `.norm`), `box_head.fc1`.
pub fn box_head_name(ours: &str) -> Option<String> {
    if let Some(rest) = ours.strip_prefix("fc.") {
        return Some(format!("box_head.fc1.{rest}"));
    }
    let rest = ours.strip_prefix("convs.")?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let rest = conv_bn(rest)?;
    Some(format!("box_head.conv{}.{rest}", i + 1))
}

/// The `.pkl` bytes of `model` (names already detectron2's), as the converters pickle it.
pub fn pkl_bytes(model: &StateDict, author: &str) -> Vec<u8> {
    let mut w = Writer::new(3);
    w.empty_dict();
    w.mark();
    w.str("model");
    w.empty_dict();
    w.mark();
    for e in model {
        w.str(&e.name);
        ndarray(&mut w, e);
    }
    w.setitems();
    w.str("__author__");
    w.str(author);
    w.str("matching_heuristics");
    w.bool(true);
    w.setitems();
    w.finish()
}

/// A C-ordered numpy array, pickled as numpy pickles it: `_reconstruct(ndarray, (0,), b'b')`,
/// then `__setstate__((1, shape, dtype, False, raw bytes))`. The module path is numpy 1's, which
/// numpy 2 still resolves, so both load the file.
fn ndarray(w: &mut Writer, e: &Entry) {
    w.global("numpy.core.multiarray", "_reconstruct");
    w.mark();
    w.global("numpy", "ndarray");
    w.int_tuple(&[0]);
    w.bytes(b"b");
    w.tuple();
    w.reduce();
    w.mark();
    w.int(1);
    w.int_tuple(&e.shape);
    let descr = match e.values {
        Values::F32(_) => "f4",
        Values::I64(_) => "i8",
    };
    w.global("numpy", "dtype");
    w.mark();
    w.str(descr);
    w.bool(false);
    w.bool(true);
    w.tuple();
    w.reduce();
    w.mark();
    w.int(3);
    w.str("<");
    w.none();
    w.none();
    w.none();
    w.int(-1);
    w.int(-1);
    w.int(0);
    w.tuple();
    w.build();
    w.bool(false);
    w.bytes(&e.values.le_bytes());
    w.tuple();
    w.build();
}

/// Every numpy array in the pickle `bytes`, named by its dotted path through the dicts
/// (`model.res2.0.conv1.weight`); None when the file holds no numpy array at all (a torch
/// pickle, say, which the torch reader handles).
pub fn read_arrays(bytes: &[u8], what: &str) -> Result<Option<StateDict>> {
    let u = pickle::read(bytes).with_context(|| format!("{what}: not a readable pickle"))?;
    let mut out = StateDict::new();
    let mut todo = vec![(String::new(), u.root, 0usize)];
    while let Some((path, i, depth)) = todo.pop() {
        if depth > 8 {
            continue;
        }
        if let Some((shape, values)) = u
            .ndarray(i)
            .with_context(|| format!("{what}: entry {path}"))?
        {
            let values = match values {
                NdValues::F32(v) => Values::F32(v),
                NdValues::I64(v) => Values::I64(v),
            };
            out.push(Entry {
                name: path,
                shape,
                values,
            });
            continue;
        }
        if let Some(entries) = u.dict_entries(i) {
            for (k, v) in entries.into_iter().rev() {
                let name = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                todo.push((name, v, depth + 1));
            }
        }
    }
    if out.is_empty() {
        if matches!(u.get(u.root), pickle::Obj::Dict(_)) {
            return Ok(None);
        }
        bail!("{what}: the pickle's root is not a dict of arrays");
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_converters_rules_both_ways() {
        for (tv, d2) in [
            ("conv1.weight", "stem.conv1.weight"),
            ("bn1.running_var", "stem.conv1.norm.running_var"),
            ("layer1.0.conv3.weight", "res2.0.conv3.weight"),
            ("layer1.0.bn3.bias", "res2.0.conv3.norm.bias"),
            ("layer4.2.bn2.weight", "res5.2.conv2.norm.weight"),
            ("layer2.0.downsample.0.weight", "res3.0.shortcut.weight"),
            (
                "layer3.0.downsample.1.running_mean",
                "res4.0.shortcut.norm.running_mean",
            ),
            (
                "layer3.0.downsample.1.num_batches_tracked",
                "res4.0.shortcut.norm.num_batches_tracked",
            ),
        ] {
            assert_eq!(from_torchvision(tv), d2);
            assert_eq!(to_torchvision(d2).as_deref(), Some(tv));
        }
        assert_eq!(to_torchvision("fpn_lateral2.weight"), None);
        assert_eq!(to_torchvision("res6.0.conv1.weight"), None);
        assert_eq!(
            fpn_name("lateral.0.bn.running_mean").as_deref(),
            Some("fpn_lateral2.norm.running_mean")
        );
        assert_eq!(
            fpn_name("output.3.conv.weight").as_deref(),
            Some("fpn_output5.weight")
        );
        assert_eq!(
            box_head_name("convs.3.bn.weight").as_deref(),
            Some("box_head.conv4.norm.weight")
        );
        assert_eq!(
            box_head_name("fc.bias").as_deref(),
            Some("box_head.fc1.bias")
        );
    }

    #[test]
    fn pkl_round_trip() {
        let sd = vec![
            Entry {
                name: "stem.conv1.weight".into(),
                shape: vec![2, 1, 1, 2],
                values: Values::F32(vec![1.5, -2.0, 3.25, f32::MIN_POSITIVE]),
            },
            Entry {
                name: "stem.conv1.norm.num_batches_tracked".into(),
                shape: vec![],
                values: Values::I64(vec![42]),
            },
        ];
        let bytes = pkl_bytes(&sd, "test");
        let back = read_arrays(&bytes, "x").unwrap().unwrap();
        let want: Vec<Entry> = sd
            .iter()
            .map(|e| Entry {
                name: format!("model.{}", e.name),
                ..e.clone()
            })
            .collect();
        assert_eq!(back, want);
    }
}
