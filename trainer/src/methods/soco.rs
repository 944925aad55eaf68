//! SoCo (METHODS.md §3.4–3.6): BYOL at the level of selective-search boxes, with the modules a
//! detector will reuse. Online network: ResNet → FPN (P2–P5) → RoIAlign 7×7 of every box on every
//! level → 4conv1fc head → projector → predictor; target network: an EMA of everything but the
//! predictor, with τ rising from `momentum_base` to 1 on a per-step cosine. Each box enters the
//! loss only at the FPN level its size selects in its own view (levels come with the boxes from
//! the loader), so the same object is matched across scales. Loss: the box-level BYOL loss,
//! symmetrised over (V1, V2) and (V1, V3), and (V1, V4) for SoCo*.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use config::SocoConfig;

use super::LossTerms;
use crate::data::StepBatch;
use crate::ema;
use crate::loss::soco::{box_byol, correspondence};
use crate::nn::fpn::Fpn;
use crate::nn::heads::MlpBn;
use crate::nn::resnet::{Depth, ResNet, ResNetConfig};
use crate::nn::roi_align::RoiPlan;
use crate::nn::roi_head::ConvFcHead;

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
        let boxes = batch.f32s("boxes");
        let levels = batch.bytes("box_levels");
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
    /// τ used at the last step (for the metrics log).
    pub last_momentum: f64,
}

impl Soco {
    pub fn new(cfg: &SocoConfig, depth: Depth, online: &Online, device: &Device) -> Soco {
        Soco {
            cfg: cfg.clone(),
            target: ema::copy_of(&online.net, SocoNet::new(depth, cfg, device)),
            last_momentum: cfg.momentum_base as f64,
        }
    }

    /// One step's loss on a batch of V1, V2, V3 (and V4).
    pub fn loss(
        &mut self,
        online: &Online,
        batch: &StepBatch,
        step: usize,
        total: usize,
    ) -> (Tensor<1>, LossTerms) {
        let tau = target_momentum(self.cfg.momentum_base as f64, step, total);
        self.last_momentum = tau;
        ema::update(&mut self.target, &online.net, tau);
        let k = self.cfg.boxes_per_view;
        let n = batch.views[0].dims()[0];
        let num_sets = if self.cfg.star { 5 } else { 4 };
        let ids = batch.i32s("box_ids");
        let device = batch.views[0].device();
        // V1 carries two box sets (paired with V2 and with V3): one forward for both.
        let v1 = ViewBoxes::from_batch(batch, n, k, num_sets, &[0, 2]);
        let others: Vec<(usize, ViewBoxes)> = (1..num_sets)
            .filter(|&s| s != 2)
            .map(|s| (s, ViewBoxes::from_batch(batch, n, k, num_sets, &[s])))
            .collect();
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
        let split = |t: Tensor<3>| (t.clone().narrow(1, 0, k), t.narrow(1, k, k));
        let (p1_2, p1_3) = split(online_view(batch.views[0].clone(), &v1));
        let (z1_2, z1_3) = split(target_view(batch.views[0].clone(), &v1));
        let mut total_loss: Option<Tensor<1>> = None;
        let mut terms = LossTerms::new();
        for (s, boxes) in &others {
            // Set 1 = V2, 3 = V3, 4 = V4; V1's partner set is 0 for V2 and V4, 2 for V3.
            let view = match s {
                1 => 1,
                3 => 2,
                _ => 3,
            };
            let v1_set = if *s == 3 { 2 } else { 0 };
            let (p1, z1) = if *s == 3 {
                (&p1_3, &z1_3)
            } else {
                (&p1_2, &z1_2)
            };
            let pv = online_view(batch.views[view].clone(), boxes);
            let zv = target_view(batch.views[view].clone(), boxes);
            let ids_1 = set_ids(&ids, n, k, num_sets, v1_set);
            let ids_v = set_ids(&ids, n, k, num_sets, *s);
            let fwd = box_byol(p1.clone(), zv, correspondence(&ids_1, &ids_v, n, &device));
            let bwd = box_byol(pv, z1.clone(), correspondence(&ids_v, &ids_1, n, &device));
            let pair = fwd + bwd;
            let name = ["", "v1_v2", "", "v1_v3", "v1_v4"][*s];
            terms.insert(name, pair.clone().into_scalar::<f32>() as f64);
            total_loss = Some(match total_loss {
                Some(t) => t + pair,
                None => pair,
            });
        }
        (total_loss.expect("SoCo has at least one pair"), terms)
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
