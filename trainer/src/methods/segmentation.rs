//! Downstream semantic segmentation as a method of the loop (METHODS.md §2.5, §4.5): fine-tuning
//! a `SegNet` (dilated ResNet + decode head + optional auxiliary FCN head) on the ring's crops with
//! per-pixel cross-entropy (ignore 255), the auxiliary loss weighted by `aux_weight`, and with
//! ProtoSeg's prototype head its PPC and PPD terms and the prototypes' momentum update; with
//! ContrastiveSeg's pixel contrast its cross-image loss. The backbone
//! starts from `backbone` (any checkpoint of ours, a backbone record or a PyTorch-world weights file)
//! or random init; with `frozen_backbone` it stays as loaded (the linear probe). The schedule is
//! iteration-based (mmseg's IterBasedRunner): poly over exactly `trainer.max_steps`.
//!
//! Padding follows mmseg: its pixels are 0 *after* normalisation (the ring pads u8 zeros, which
//! would normalise to −2.1), and their labels are ignore.

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use config::{ProtoSegConfig, ProtoUpdate, RunConfig, SegPhase};
use proto_shm::schemas::names;
use proto_shm::Schema;
use rand::{Rng, SeedableRng};

use crate::backend::host_f32;
use crate::data::StepBatch;
use crate::loss::pixel_ce::pixel_cross_entropy;
use crate::loss::pixel_contrast::{pixel_contrast_loss, sample_anchors};
use crate::loss::protoseg::{assign, nearest_labels, ppc_loss, ppd_loss, AssignParams, ProtoBatch};
use crate::method::{LossTerms, Method, StepCtx};
use crate::nn::decoder::DecoderSlot;
use crate::nn::proto_head::{ProtoHead, ProtoOut};
use crate::nn::resnet::{Depth, ResNet};
use crate::nn::seg_heads::{resize, SegNet};

pub struct Segmentation {
    pub cfg: config::SegmentationConfig,
    /// ProtoSeg: the prototypes after this step's momentum update, written into the network once
    /// the optimiser has stepped ([`Method::after_step`]).
    pending_prototypes: Option<Tensor<3>>,
}

/// The (height, width) of each sample's real content, from the ring's `extent`.
pub fn extents(batch: &StepBatch) -> Vec<(usize, usize)> {
    batch
        .i32s(names::EXTENT)
        .chunks_exact(2)
        .map(|e| (e[0] as usize, e[1] as usize))
        .collect()
}

/// `[n, 1, h, w]`: 1 inside each sample's extent, 0 in its padding.
pub fn content_mask(ext: &[(usize, usize)], h: usize, w: usize, device: &Device) -> Tensor<4> {
    let mut m = vec![0f32; ext.len() * h * w];
    for (i, &(eh, ew)) in ext.iter().enumerate() {
        for y in 0..eh.min(h) {
            m[i * h * w + y * w..i * h * w + y * w + ew.min(w)].fill(1.0);
        }
    }
    Tensor::from_data(TensorData::new(m, [ext.len(), 1, h, w]), device)
}

impl Method for Segmentation {
    type Online = SegNet;
    type Target = SegNet;

    fn new(run: &RunConfig, device: &Device) -> Result<(SegNet, Segmentation)> {
        let cfg = crate::method_config!(run, Segmentation);
        let net = SegNet::new(Depth::from(run.trainer.arch), cfg, device);
        Ok((
            net,
            Segmentation {
                cfg: cfg.clone(),
                pending_prototypes: None,
            },
        ))
    }

    fn schema(run: &RunConfig) -> Result<Schema> {
        let c = crate::method_config!(run, Segmentation);
        let (name, (h, w), batch) = match c.phase {
            SegPhase::Finetune => ("segmentation", c.crop, run.loader.batch_size),
            SegPhase::Validate { .. } => ("segmentation-val", c.val_slot, run.loader.batch_size),
        };
        Ok(proto_shm::schemas::segmentation(name, batch, h, w).attr("classes", c.classes))
    }

    fn target_mut(&mut self) -> Option<&mut SegNet> {
        None
    }
    fn target(&self) -> Option<&SegNet> {
        None
    }
    fn target_source(online: &SegNet) -> &SegNet {
        online
    }
    fn momentum(&self, _: StepCtx) -> f64 {
        0.0
    }

    /// Uniform predictions over the classes: ln C; with prototypes, plus PPC's ln(K·M) and PPD's
    /// (1 − 0)² at their weights.
    fn chance_loss(&self) -> Option<f64> {
        let classes = self.cfg.classes as f64;
        Some(match &self.cfg.prototypes {
            None => classes.ln(),
            Some(p) => {
                classes.ln() + p.ppc_weight * (classes * p.per_class as f64).ln() + p.ppd_weight
            }
        })
    }

    fn after_step(&mut self, net: &mut SegNet) {
        if let (Some(p), Some(head)) = (self.pending_prototypes.take(), &mut net.proto) {
            head.set_prototypes(p);
        }
    }

    fn loss(
        &mut self,
        net: &SegNet,
        batch: &StepBatch,
        ctx: StepCtx,
    ) -> Result<(Tensor<1>, LossTerms)> {
        let x = batch.image(names::VIEW0);
        let [n, _, h, w] = x.dims();
        let device = x.device();
        let x = x * content_mask(&extents(batch), h, w, &device);
        let labels: Vec<i64> = batch
            .bytes(names::SEG_LABEL)
            .iter()
            .map(|&v| v as i64)
            .collect();
        let target = Tensor::<3, Int>::from_data(TensorData::new(labels, [n, h, w]), &device);
        let contrast = self
            .cfg
            .pixel_contrast
            .as_ref()
            .filter(|c| ctx.step >= c.start_step);
        let (out, proto, embedding) = net.forward_train(x, contrast.is_some());
        let feature_logits = out.decode.clone();
        let logits = resize(out.decode, h, w);
        let decode = pixel_cross_entropy(logits.clone(), target.clone());
        let mut terms = LossTerms::new();
        let keep = target.clone().not_equal_elem(crate::loss::pixel_ce::IGNORE);
        let correct = logits
            .argmax(1)
            .reshape([n, h, w])
            .equal(target.clone())
            .bool_and(keep.clone())
            .int()
            .sum()
            .into_scalar::<i64>() as f64;
        let labelled = keep.int().sum().into_scalar::<i64>().max(1) as f64;
        terms.insert("pixel_accuracy", correct / labelled);
        let mut loss = match out.aux {
            Some(aux) => {
                let aux = pixel_cross_entropy(resize(aux, h, w), target);
                terms.insert("decode_loss", decode.clone().into_scalar::<f32>() as f64);
                terms.insert("aux_loss", aux.clone().into_scalar::<f32>() as f64);
                decode + aux.mul_scalar(self.cfg.aux_weight)
            }
            None => decode,
        };
        if proto.is_none() && embedding.is_none() {
            return Ok((loss, terms));
        }
        let grid = FeatureGrid::new(batch, feature_logits);
        if let (Some(proto), Some(head), Some(p)) = (proto, &net.proto, &self.cfg.prototypes) {
            let (pl, pending) = prototype_terms(head, p, proto, &grid, ctx.seed, &mut terms);
            // Every rank's update, averaged (ProtoSeg's all-reduce of the new prototypes).
            self.pending_prototypes = Some(ctx.world.mean(pending)?);
            loss = loss + pl;
        }
        if let (Some(embedding), Some(c)) = (embedding, contrast) {
            let [_, d, fh, fw] = embedding.dims();
            let flat = embedding.permute([0, 2, 3, 1]).reshape([n * fh * fw, d]);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x434f_4e54_5241_5354);
            let anchors = sample_anchors(
                &grid.labels,
                &grid.predictions,
                n,
                c.max_samples,
                c.max_views,
                &mut rng,
            );
            // A batch with no class of more than max_views pixels per image has no anchor.
            if let Some(anchors) = anchors {
                let pc = pixel_contrast_loss(flat, &anchors, c.temperature, c.base_temperature);
                terms.insert(
                    "pixel_contrast_loss",
                    pc.clone().into_scalar::<f32>() as f64,
                );
                terms.insert("pixel_contrast_anchors", anchors.classes.len() as f64);
                loss = loss + pc.mul_scalar(c.weight);
            }
        }
        Ok((loss, terms))
    }

    fn backbone(online: &SegNet) -> &ResNet {
        &online.backbone
    }
    fn backbone_mut(online: &mut SegNet) -> &mut ResNet {
        &mut online.backbone
    }

    /// The pretrained backbone to fine-tune (None: random init, the floor); heads start fresh.
    fn init_from(run: &RunConfig) -> Option<(&'static str, &Path, &'static [&'static str])> {
        match &run.method {
            config::MethodConfig::Segmentation(s) => s.backbone.as_deref().map(|p| {
                let fresh: &'static [&'static str] =
                    match (s.prototypes.is_some(), s.pixel_contrast.is_some()) {
                        (false, false) => &["decode", "aux"],
                        (true, false) => &["decode", "aux", "proto"],
                        (false, true) => &["decode", "aux", "contrast"],
                        (true, true) => &["decode", "aux", "proto", "contrast"],
                    };
                ("fine-tuning", p, fresh)
            }),
            _ => None,
        }
    }

    /// The head's decoder, where the config takes a pretrained one (the classifier stays fresh).
    fn decoder_slot<'a>(run: &RunConfig, net: &'a mut SegNet) -> Option<DecoderSlot<'a>> {
        let config::MethodConfig::Segmentation(s) = &run.method else {
            return None;
        };
        if !s.pretrained_decoder {
            return None;
        }
        if let Some(h) = &mut net.decode.mocofcn {
            Some(DecoderSlot::MocoFcn(&mut h.convs))
        } else {
            net.decode
                .psp
                .as_mut()
                .map(|h| DecoderSlot::Psp(&mut h.psp))
        }
    }

    fn schedule_steps(run: &RunConfig) -> Option<usize> {
        run.trainer.max_steps
    }

    /// The linear probe: no gradient into the backbone and BN on its running statistics, so the
    /// backbone stays exactly as loaded.
    fn prepare(run: &RunConfig, mut net: SegNet) -> SegNet {
        if matches!(&run.method, config::MethodConfig::Segmentation(s) if s.frozen_backbone) {
            net.backbone = net.backbone.freeze();
        }
        net
    }
}

/// The step's labels nearest-downsampled to the feature grid and the head's predictions there
/// (argmax of its feature-resolution logits), both `[n · fh · fw]` — what prototype learning and
/// the pixel contrast's anchor sampling read.
struct FeatureGrid {
    labels: Vec<i64>,
    predictions: Vec<i64>,
}

impl FeatureGrid {
    fn new(batch: &StepBatch, feature_logits: Tensor<4>) -> FeatureGrid {
        let [n, _, fh, fw] = feature_logits.dims();
        let image = batch.image(names::VIEW0).dims();
        let labels = nearest_labels(
            batch.bytes(names::SEG_LABEL),
            n,
            (image[2], image[3]),
            (fh, fw),
        );
        let predictions = host_f32(feature_logits.detach().argmax(1).float())
            .into_iter()
            .map(|v| v as i64)
            .collect();
        FeatureGrid {
            labels,
            predictions,
        }
    }
}

/// ProtoSeg's prototype learning and its losses on one step (METHODS.md §5.2–5.3): labels
/// nearest-downsampled to the feature grid, the assignment and momentum update on the host, then
/// `ppc_weight`·PPC + `ppd_weight`·PPD. Returns that loss and the updated prototypes.
fn prototype_terms(
    head: &ProtoHead,
    cfg: &ProtoSegConfig,
    out: ProtoOut,
    grid: &FeatureGrid,
    seed: u64,
    terms: &mut crate::method::LossTerms,
) -> (Tensor<1>, Tensor<3>) {
    let k = head.classes;
    let device = out.similarity.device();
    let (labels, predictions) = (&grid.labels, &grid.predictions);
    let similarity = host_f32(out.similarity.clone().detach());
    let embeddings = host_f32(out.embeddings.detach());
    let prototypes = head.prototypes();
    let [_, m, d] = prototypes.dims();
    let gumbel = matches!(cfg.update, ProtoUpdate::Gumbel).then(|| {
        // −log(−log U), U uniform in (0, 1): torch's `-empty_like().exponential_().log()`.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5052_4f54_4f53_4547);
        (0..labels.len() * m)
            .map(|_| {
                let u: f32 = rng.random_range(f32::EPSILON..1.0);
                -(-u.ln()).ln()
            })
            .collect::<Vec<f32>>()
    });
    let a = assign(
        &ProtoBatch {
            similarity: &similarity,
            embeddings: &embeddings,
            labels,
            predictions,
            prototypes: &host_f32(prototypes),
            classes: k,
            per_class: m,
        },
        &AssignParams {
            epsilon: cfg.sinkhorn_epsilon as f32,
            iterations: cfg.sinkhorn_iterations,
            gamma: cfg.gamma as f32,
            gumbel: gumbel.as_deref(),
        },
    );
    let pixels = a.targets.len();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(a.targets, [pixels]), &device);
    let ppc = ppc_loss(out.similarity.clone(), targets.clone(), cfg.ppc_temperature);
    let ppd = ppd_loss(out.similarity, targets);
    terms.insert("ppc_loss", ppc.clone().into_scalar::<f32>() as f64);
    terms.insert("ppd_loss", ppd.clone().into_scalar::<f32>() as f64);
    terms.insert("prototypes_updated", a.updated as f64);
    let updated = Tensor::<3>::from_data(TensorData::new(a.prototypes, [k, m, d]), &device);
    (
        ppc.mul_scalar(cfg.ppc_weight) + ppd.mul_scalar(cfg.ppd_weight),
        updated,
    )
}
