//! SoCo (METHODS.md §3.4–3.6): BYOL at the level of selective-search boxes, with the modules a
//! detector will reuse. Online network: ResNet → FPN (P2–P5) → RoIAlign 7×7 of every box on every
//! level → 4conv1fc head → projector → predictor; target network: an EMA of everything but the
//! predictor, with τ rising from `momentum_base` to 1 on a per-step cosine. Each box enters the
//! loss only at the FPN level its size selects in its own view (levels come with the boxes from
//! the loader), so the same object is matched across scales. Loss: the box-level BYOL loss,
//! symmetrised over (V1, V2) and (V1, V3), and (V1, V4) for SoCo*.

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use config::{RunConfig, SocoConfig};
use proto_shm::schemas::{names, soco_box_set};
use proto_shm::Schema;

use crate::data::StepBatch;
use crate::ema;
use crate::loss::soco::{box_byol, correspondence};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::fpn::Fpn;
use crate::nn::heads::MlpBn;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::nn::roi_align::RoiPlan;
use crate::nn::roi_head::ConvFcHead;
use crate::weights::export::DetectorParts;

/// RoIAlign output side.
pub const ROI: usize = 7;

/// Boxes of one view, host side: `n` images × `k` boxes, normalised `[x1, y1, x2, y2]`, and the
/// FPN level (0 = P2 … 3 = P5) of each.
#[derive(Debug, Clone)]
pub struct ViewBoxes {
    pub n: usize,
    pub k: usize,
    pub coords: Vec<[f32; 4]>,
    pub levels: Vec<u8>,
}

impl ViewBoxes {
    /// Rows `sets` of a batch's `boxes`/`box_levels` (`[n, S, K, ·]`), concatenated per image.
    pub fn from_batch(
        batch: &StepBatch,
        n: usize,
        k: usize,
        num_sets: usize,
        sets: &[usize],
    ) -> ViewBoxes {
        let boxes = batch.f32s(names::BOXES);
        let levels = batch.bytes(names::BOX_LEVELS);
        let mut out = ViewBoxes {
            n,
            k: k * sets.len(),
            coords: Vec::new(),
            levels: Vec::new(),
        };
        for i in 0..n {
            for &s in sets {
                for slot in 0..k {
                    let j = (i * num_sets + s) * k + slot;
                    out.coords.push(boxes[j * 4..j * 4 + 4].try_into().unwrap());
                    out.levels.push(levels[j]);
                }
            }
        }
        out
    }
}

/// Ids of rows `set` of a batch (`[n, S, K]`) → `[n·K]`.
fn set_ids(ids: &[i32], n: usize, k: usize, num_sets: usize, set: usize) -> Vec<i32> {
    (0..n)
        .flat_map(|i| ids[(i * num_sets + set) * k..(i * num_sets + set) * k + k].to_vec())
        .collect()
}

/// What the target network copies: backbone, FPN, RoI head and projector.
#[derive(Module, Debug)]
pub struct SocoNet {
    pub backbone: ResNet,
    pub fpn: Fpn,
    pub head: ConvFcHead,
    pub projector: MlpBn,
}

impl SocoNet {
    pub fn new(depth: Depth, cfg: &SocoConfig, device: &Device) -> SocoNet {
        SocoNet {
            backbone: ResNetConfig::new(depth).init(device),
            fpn: Fpn::new(depth.stage_channels(), cfg.fpn_channels, device),
            head: ConvFcHead::new(cfg.fpn_channels, ROI, cfg.head_fc, device),
            projector: MlpBn::new([cfg.head_fc, cfg.proj_hidden, cfg.proj_dim], device),
        }
    }

    /// Images `[n, 3, s, s]` and their boxes → one projection per box at its level, `[n·k, d]`.
    /// With `all_levels` every box is pooled on all four levels (as SoCo does, so the head's BN
    /// sees all of them) and the rows of the other levels are dropped after the projector;
    /// otherwise each box is pooled on its own level only.
    pub fn forward_boxes(&self, x: Tensor<4>, boxes: &ViewBoxes, all_levels: bool) -> Tensor<2> {
        let device = x.device();
        let pyramid = self.fpn.forward(self.backbone.forward_features(x));
        let r = boxes.coords.len();
        // Per level: which boxes it pools (all, or those assigned to it).
        let members: Vec<Vec<usize>> = (0..4)
            .map(|l| {
                (0..r)
                    .filter(|&j| all_levels || boxes.levels[j].min(3) as usize == l)
                    .collect()
            })
            .collect();
        let mut pooled = Vec::new();
        for (p, which) in pyramid.into_iter().zip(&members) {
            if which.is_empty() {
                continue;
            }
            let [_, _, h, w] = p.dims();
            let scaled: Vec<[f32; 4]> = which
                .iter()
                .map(|&j| {
                    let b = boxes.coords[j];
                    [
                        b[0] * w as f32,
                        b[1] * h as f32,
                        b[2] * w as f32,
                        b[3] * h as f32,
                    ]
                })
                .collect();
            let batch: Vec<usize> = which.iter().map(|&j| j / boxes.k).collect();
            pooled.push(RoiPlan::new(&scaled, &batch, h, w, ROI).apply(p));
        }
        let z = self
            .projector
            .forward(self.head.forward(Tensor::cat(pooled, 0)));
        // Row of box j in `z`: its level's block, at its place among that level's members.
        let mut row_of = vec![0i64; r];
        let mut offset = 0;
        for (l, which) in members.iter().enumerate() {
            for (pos, &j) in which.iter().enumerate() {
                if boxes.levels[j].min(3) as usize == l {
                    row_of[j] = (offset + pos) as i64;
                }
            }
            offset += which.len();
        }
        z.select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(row_of, [r]), &device),
        )
    }
}

/// The trained part: the network plus the predictor.
#[derive(Module, Debug)]
pub struct Online {
    pub net: SocoNet,
    pub predictor: MlpBn,
}

impl Online {
    pub fn new(depth: Depth, cfg: &SocoConfig, device: &Device) -> Online {
        Online {
            net: SocoNet::new(depth, cfg, device),
            predictor: MlpBn::new([cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim], device),
        }
    }
}

/// τ at step `k` of `total`: `1 − (1 − τ_base)·(cos(πk/K) + 1)/2` (BYOL's schedule).
pub fn target_momentum(base: f64, k: usize, total: usize) -> f64 {
    let t = k as f64 / total.max(1) as f64;
    1.0 - (1.0 - base) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}

/// The parts of SoCo that the optimiser does not train.
pub struct Soco {
    pub cfg: SocoConfig,
    pub target: SocoNet,
}

/// The view pairs of the loss, by ring names: (V1's box set for the pair, the other view's box
/// set, the other view's image). V4 is V2 resized, so it pairs with V1's boxes for V2.
const PAIRS: [(&str, &str, &str); 3] = [
    ("v1_for_v2", "v2", names::VIEW2),
    ("v1_for_v3", "v3", names::VIEW3),
    ("v1_for_v2", "v4", names::VIEW4),
];

impl Soco {
    pub fn build(cfg: &SocoConfig, depth: Depth, device: &Device) -> (Online, Soco) {
        let online = Online::new(depth, cfg, device);
        let state = Soco {
            cfg: cfg.clone(),
            target: ema::copy_of(&online.net, SocoNet::new(depth, cfg, device)),
        };
        (online, state)
    }
}

impl Method for Soco {
    type Online = Online;
    type Target = SocoNet;

    fn new(run: &RunConfig, device: &Device) -> Result<(Online, Soco)> {
        let cfg = crate::method_config!(run, Soco);
        Ok(Soco::build(cfg, Depth::from(run.trainer.arch), device))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let s = crate::method_config!(run, Soco);
        Ok(proto_shm::schemas::soco(
            run.loader.batch_size,
            s.image_size,
            s.v3_size,
            s.star.then_some(s.v4_size),
            s.boxes_per_view,
        ))
    }

    fn target_mut(&mut self) -> Option<&mut SocoNet> {
        Some(&mut self.target)
    }
    fn target(&self) -> Option<&SocoNet> {
        Some(&self.target)
    }
    fn target_source(online: &Online) -> &SocoNet {
        &online.net
    }
    /// BYOL's τ, rising on a per-step cosine from `momentum_base` to 1.
    fn momentum(&self, ctx: StepCtx) -> f64 {
        target_momentum(self.cfg.momentum_base as f64, ctx.step, ctx.total)
    }

    /// The symmetrised box loss over (V1, V2), (V1, V3) and, for SoCo*, (V1, V4).
    fn loss(
        &mut self,
        online: &Online,
        batch: &StepBatch,
        _: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let k = self.cfg.boxes_per_view;
        let v1_image = batch.image(names::VIEW1);
        let n = v1_image.dims()[0];
        let num_sets = if self.cfg.star { 5 } else { 4 };
        let ids = batch.i32s(names::BOX_IDS);
        let device = v1_image.device();
        let set = |name: &str| soco_box_set(name).expect("a SoCo box set name");
        // V1 carries two box sets (paired with V2 and with V3): one forward for both.
        let v1_sets = [set("v1_for_v2"), set("v1_for_v3")];
        let v1 = ViewBoxes::from_batch(batch, n, k, num_sets, &v1_sets);
        let d = self.cfg.proj_dim;
        let all_levels = self.cfg.roi_all_levels;
        let online_view = |x: Tensor<4>, b: &ViewBoxes| {
            online
                .predictor
                .forward(online.net.forward_boxes(x, b, all_levels))
                .reshape([n, b.k, d])
        };
        let target_view = |x: Tensor<4>, b: &ViewBoxes| {
            self.target
                .forward_boxes(x, b, all_levels)
                .reshape([n, b.k, d])
                .detach()
        };
        // V1's outputs, split back into its two box sets (in `v1_sets` order).
        let split = |t: Tensor<3>| [t.clone().narrow(1, 0, k), t.narrow(1, k, k)];
        let p1 = split(online_view(v1_image.clone(), &v1));
        let z1 = split(target_view(v1_image, &v1));
        let mut total_loss: Option<Tensor<1>> = None;
        let mut terms = LossTerms::new();
        for (v1_set_name, other_set_name, image) in PAIRS {
            let other_set = set(other_set_name);
            if other_set >= num_sets {
                continue; // V4: SoCo* only
            }
            let v1_set = set(v1_set_name);
            let half = v1_sets.iter().position(|&s| s == v1_set).unwrap();
            let boxes = ViewBoxes::from_batch(batch, n, k, num_sets, &[other_set]);
            let x = batch.image(image);
            let pv = online_view(x.clone(), &boxes);
            let zv = target_view(x, &boxes);
            let ids_1 = set_ids(&ids, n, k, num_sets, v1_set);
            let ids_v = set_ids(&ids, n, k, num_sets, other_set);
            let fwd = box_byol(
                p1[half].clone(),
                zv,
                correspondence(&ids_1, &ids_v, n, &device),
            );
            let bwd = box_byol(
                pv,
                z1[half].clone(),
                correspondence(&ids_v, &ids_1, n, &device),
            );
            let pair = fwd + bwd;
            let name = match other_set_name {
                "v2" => "v1_v2",
                "v3" => "v1_v3",
                _ => "v1_v4",
            };
            terms.insert(name, pair.clone().into_scalar::<f32>() as f64);
            total_loss = Some(match total_loss {
                Some(t) => t + pair,
                None => pair,
            });
        }
        Ok((total_loss.expect("SoCo has at least one pair"), terms))
    }

    fn backbone(online: &Online) -> &ResNet {
        &online.net.backbone
    }
    fn backbone_mut(online: &mut Online) -> &mut ResNet {
        &mut online.net.backbone
    }
    fn detector_parts(online: &Online) -> Option<DetectorParts<'_>> {
        Some(DetectorParts {
            fpn: &online.net.fpn,
            box_head: &online.net.head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::target_momentum;

    #[test]
    fn target_momentum_rises_from_base_to_one() {
        assert!((target_momentum(0.99, 0, 100) - 0.99).abs() < 1e-12);
        assert!((target_momentum(0.99, 50, 100) - 0.995).abs() < 1e-12);
        assert!((target_momentum(0.99, 100, 100) - 1.0).abs() < 1e-12);
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Without autodiff BN uses its running statistics, so each RoI's output is independent of
    /// the others: pooling boxes on all levels and keeping their own level's row must give exactly
    /// what pooling them on their own level only gives.
    #[test]
    fn assigned_level_rows_equal_all_level_rows_in_inference() {
        let device = crate::backend::test_device();
        let cfg = SocoConfig {
            fpn_channels: 16,
            head_fc: 32,
            proj_hidden: 32,
            proj_dim: 8,
            ..SocoConfig::default()
        };
        let net = SocoNet::new(Depth::R18, &cfg, &device);
        let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let boxes = ViewBoxes {
            n: 2,
            k: 4,
            coords: (0..8)
                .map(|i| {
                    let a = i as f32 * 0.08;
                    [a, a * 0.5, (a + 0.1 + 0.1 * (i % 4) as f32).min(1.0), 0.9]
                })
                .collect(),
            levels: vec![0, 1, 2, 3, 3, 2, 1, 0],
        };
        let all: Vec<f32> = net
            .forward_boxes(x.clone(), &boxes, true)
            .into_data()
            .try_to_vec()
            .unwrap();
        let own: Vec<f32> = net
            .forward_boxes(x, &boxes, false)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(all.len(), 8 * 8);
        let worst = all
            .iter()
            .zip(&own)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "max difference {worst}");
    }
}
