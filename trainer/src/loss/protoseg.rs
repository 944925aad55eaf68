//! ProtoSeg's prototype learning and losses (METHODS.md §5.2–5.3; tfzhou/ProtoSeg
//! `lib/models/nets/hrnet.py` `prototype_learning`, `lib/models/modules/sinkhorn.py`,
//! `lib/loss/loss_proto.py`).
//!
//! The assignment and the momentum update run on the host in fp32, class by class as the reference
//! does: they select pixels by label (a ragged set per class), they take no gradient, and
//! exp(S/ε) reaches e^20 (fp16 overflows, METHODS.md §5.5). PPC and PPD are tensor losses on the
//! device.

use burn::tensor::{Int, Tensor};

use super::pixel_ce::{pixel_cross_entropy, IGNORE};

/// Sinkhorn-Knopp as `distributed_sinkhorn` computes it on one device: `scores` `[n, m]` (the
/// cosines of `n` pixels to `m` prototypes) → the transport plan `[n, m]`, whose rows (pixels)
/// sum to 1 and whose columns (prototypes) share the pixels equally. The reference's loop is
/// kept in its order (prototype sums, then pixel sums), in its `m × n` orientation.
pub fn sinkhorn(scores: &[f32], n: usize, m: usize, epsilon: f32, iterations: usize) -> Vec<f32> {
    assert_eq!(scores.len(), n * m);
    // l[j][i]: prototype j, pixel i (the reference transposes first).
    let mut l = vec![0f32; m * n];
    for i in 0..n {
        for j in 0..m {
            l[j * n + i] = (scores[i * m + j] / epsilon).exp();
        }
    }
    let total: f32 = l.iter().sum();
    l.iter_mut().for_each(|v| *v /= total);
    for _ in 0..iterations {
        for row in l.chunks_exact_mut(n) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v = *v / s / m as f32);
        }
        for i in 0..n {
            let s: f32 = (0..m).map(|j| l[j * n + i]).sum();
            for j in 0..m {
                l[j * n + i] = l[j * n + i] / s / n as f32;
            }
        }
    }
    let mut q = vec![0f32; n * m];
    for i in 0..n {
        for j in 0..m {
            q[i * m + j] = l[j * n + i] * n as f32;
        }
    }
    q
}

/// The index of the first largest value (PyTorch's `argmax`).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Labels `[n, h, w]` resampled to the feature grid `[n, fh, fw]` as
/// `F.interpolate(mode='nearest')` does: source index `floor(dst · (in / out))` in fp32.
pub fn nearest_labels(
    labels: &[u8],
    n: usize,
    (h, w): (usize, usize),
    (fh, fw): (usize, usize),
) -> Vec<i64> {
    let (sy, sx) = (h as f32 / fh as f32, w as f32 / fw as f32);
    let mut out = Vec::with_capacity(n * fh * fw);
    for i in 0..n {
        for y in 0..fh {
            let ys = ((y as f32 * sy).floor() as usize).min(h - 1);
            for x in 0..fw {
                let xs = ((x as f32 * sx).floor() as usize).min(w - 1);
                out.push(labels[(i * h + ys) * w + xs] as i64);
            }
        }
    }
    out
}

/// What prototype learning gives a step.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Per pixel, `k·M + m` of its class `k`'s assigned prototype `m`; [`IGNORE`] where unlabelled.
    pub targets: Vec<i64>,
    /// The prototypes after the momentum update and re-normalisation, `[K, M, D]` flattened.
    pub prototypes: Vec<f32>,
    /// Prototypes moved this step (those with at least one correctly predicted pixel).
    pub updated: usize,
}

/// The inputs of [`assign`], all host-side and flattened row-major.
pub struct ProtoBatch<'a> {
    /// Cosines of each pixel's embedding to every prototype, `[P, K, M]`.
    pub similarity: &'a [f32],
    /// Pixel embeddings, `[P, D]` (L2-normalised).
    pub embeddings: &'a [f32],
    /// Labels on the feature grid, `[P]` (class ids or [`IGNORE`]).
    pub labels: &'a [i64],
    /// The head's predicted class per pixel (argmax of its class scores), `[P]`.
    pub predictions: &'a [i64],
    /// The current prototypes, `[K, M, D]` (L2-normalised).
    pub prototypes: &'a [f32],
    pub classes: usize,
    pub per_class: usize,
}

/// How [`assign`] runs: the Sinkhorn parameters, the update's momentum, and the Gumbel noise of
/// the update's one-hot sample (`[P, M]`; None: the update uses the argmax too).
pub struct AssignParams<'a> {
    pub epsilon: f32,
    pub iterations: usize,
    pub gamma: f32,
    pub gumbel: Option<&'a [f32]>,
}

/// `prototype_learning` on one device: per class with labelled pixels, the Sinkhorn plan of its
/// pixels over its prototypes gives each pixel's PPC target (argmax); the prototypes then move
/// toward the normalised sum of the correctly predicted pixels assigned to them (by the Gumbel
/// sample, or the argmax), `p ← γ·p + (1−γ)·f̂`, and every prototype is re-normalised.
pub fn assign(b: &ProtoBatch, p: &AssignParams) -> Assignment {
    let (k_n, m_n) = (b.classes, b.per_class);
    let pixels = b.labels.len();
    let d = b.embeddings.len() / pixels.max(1);
    assert_eq!(b.similarity.len(), pixels * k_n * m_n);
    assert_eq!(b.prototypes.len(), k_n * m_n * d);
    let mut targets = vec![IGNORE; pixels];
    let mut protos = b.prototypes.to_vec();
    let mut updated = 0;
    for k in 0..k_n {
        let members: Vec<usize> = (0..pixels).filter(|&i| b.labels[i] == k as i64).collect();
        if members.is_empty() {
            continue;
        }
        let scores: Vec<f32> = members
            .iter()
            .flat_map(|&i| {
                let at = (i * k_n + k) * m_n;
                b.similarity[at..at + m_n].iter().copied()
            })
            .collect();
        let plan = sinkhorn(&scores, members.len(), m_n, p.epsilon, p.iterations);
        let mut sums = vec![0f32; m_n * d];
        let mut counts = vec![0usize; m_n];
        for (r, &i) in members.iter().enumerate() {
            let row = &plan[r * m_n..(r + 1) * m_n];
            let chosen = argmax(row);
            targets[i] = (k * m_n + chosen) as i64;
            if b.predictions[i] != k as i64 {
                continue;
            }
            let sampled = match p.gumbel {
                Some(g) => {
                    let noisy: Vec<f32> = row
                        .iter()
                        .zip(&g[i * m_n..(i + 1) * m_n])
                        .map(|(q, g)| q + g)
                        .collect();
                    argmax(&noisy)
                }
                None => chosen,
            };
            counts[sampled] += 1;
            for (s, e) in sums[sampled * d..(sampled + 1) * d]
                .iter_mut()
                .zip(&b.embeddings[i * d..(i + 1) * d])
            {
                *s += e;
            }
        }
        for m in 0..m_n {
            if counts[m] == 0 {
                continue;
            }
            let f = normalized(&sums[m * d..(m + 1) * d]);
            let proto = &mut protos[(k * m_n + m) * d..(k * m_n + m + 1) * d];
            for (v, f) in proto.iter_mut().zip(f) {
                *v = p.gamma * *v + (1.0 - p.gamma) * f;
            }
            updated += 1;
        }
    }
    for proto in protos.chunks_exact_mut(d.max(1)) {
        let v = normalized(proto);
        proto.copy_from_slice(&v);
    }
    Assignment {
        targets,
        prototypes: protos,
        updated,
    }
}

/// `F.normalize(x, dim=-1)`: x / max(‖x‖, 1e-12).
fn normalized(x: &[f32]) -> Vec<f32> {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    x.iter().map(|v| v / norm).collect()
}

/// Pixel-prototype contrast: cross-entropy of each labelled pixel's cosines to all `K·M`
/// prototypes (`logits` `[P, K·M]`, divided by `temperature` where one is set) against its
/// assigned prototype; mean over the labelled pixels, 0 when there is none (PyTorch gives NaN).
/// It is [`pixel_cross_entropy`] with the pixels as a batch of 1×1 maps.
pub fn ppc_loss(logits: Tensor<2>, targets: Tensor<1, Int>, temperature: Option<f64>) -> Tensor<1> {
    let [p, km] = logits.dims();
    let logits = match temperature {
        Some(t) => logits.div_scalar(t),
        None => logits,
    };
    pixel_cross_entropy(logits.reshape([p, km, 1, 1]), targets.reshape([p, 1, 1]))
}

/// Pixel-prototype distance: mean over labelled pixels of (1 − cos(pixel, assigned prototype))².
pub fn ppd_loss(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [p, _] = logits.dims();
    let keep = targets.clone().not_equal_elem(IGNORE);
    let safe = targets
        .mask_fill(keep.clone().bool_not(), 0)
        .reshape([p, 1]);
    let cos = logits.gather(1, safe).reshape([p]);
    let weight = keep.float();
    let count = weight.clone().sum().clamp_min(1.0);
    ((cos.neg() + 1.0).powf_scalar(2.0) * weight).sum() / count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: the plan's pixel rows sum to 1; the prototype columns, only 3 iterations from
    /// a peaked exp(S/0.05), are pulled toward n / m: closer than the per-pixel softmax's.
    #[test]
    fn sinkhorn_plan_has_the_reference_marginals() {
        let s = [0.9, 0.1, -0.2, 0.3, 0.8, 0.1, 0.5, 0.5, 0.0, -0.1, 0.2, 0.7];
        let q = sinkhorn(&s, 4, 3, 0.05, 3);
        let q0 = sinkhorn(&s, 4, 3, 0.05, 0);
        for i in 0..4 {
            let r: f32 = q[i * 3..i * 3 + 3].iter().sum();
            assert!((r - 1.0).abs() < 1e-5, "row {i} sums to {r}");
        }
        let imbalance = |q: &[f32]| -> f32 {
            (0..3)
                .map(|j| ((0..4).map(|i| q[i * 3 + j]).sum::<f32>() - 4.0 / 3.0).abs())
                .sum()
        };
        assert!(
            imbalance(&q) < imbalance(&q0) * 0.8,
            "{} vs {}",
            imbalance(&q),
            imbalance(&q0)
        );
    }

    #[test]
    fn nearest_labels_take_pytorchs_source_pixels() {
        // 4×6 → 2×3: rows 0, 2 and columns 0, 2, 4.
        let l: Vec<u8> = (0..24).collect();
        assert_eq!(
            nearest_labels(&l, 1, (4, 6), (2, 3)),
            vec![0, 2, 4, 12, 14, 16]
        );
        // 5 → 2: floor(1 · 2.5) = 2.
        let l: Vec<u8> = (0..5).collect();
        assert_eq!(nearest_labels(&l, 1, (1, 5), (1, 2)), vec![0, 2]);
    }
}
