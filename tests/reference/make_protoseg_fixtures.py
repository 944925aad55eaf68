"""Fixtures for ProtoSeg's prototype learning and losses, and ContrastiveSeg's pixel contrast
loss (trainer/tests/protoseg.rs).

A numpy transcription, in float64, of the reference code paths (tfzhou/ProtoSeg, METHODS.md §5):
`lib/models/modules/sinkhorn.py` `distributed_sinkhorn`, `lib/models/nets/hrnet.py`
`HRNet_W48_Proto.prototype_learning` (masks laid out 'nmk' as its einsum makes them; ignore = -1)
and `lib/loss/loss_proto.py` (`PPC`, `PPD`); tfzhou/ContrastiveSeg `lib/loss/loss_contrast.py`
(`PixelContrastLoss._contrastive`). The Gumbel-softmax sample of the update is
`argmax(L + g)` for hard=True (τ only scales), with the noise `g` written into the fixture so the
trainer can be fed the same draw.

    python3 tests/reference/make_protoseg_fixtures.py tests/reference/protoseg.json
"""

import json
import sys

import numpy as np


def l2n(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def distributed_sinkhorn(out, sinkhorn_iterations=3, epsilon=0.05):
    L = np.exp(out / epsilon).T  # K x B (K: prototypes, B: pixels)
    B = L.shape[1]
    K = L.shape[0]
    L = L / np.sum(L)
    for _ in range(sinkhorn_iterations):
        L = L / np.sum(L, axis=1, keepdims=True)
        L = L / K
        L = L / np.sum(L, axis=0, keepdims=True)
        L = L / B
    L = L * B
    L = L.T
    indexs = np.argmax(L, axis=1)
    return L, indexs


def prototype_learning(_c, pred_seg, gt_seg, masks, prototypes, gamma, gumbel):
    """`gumbel`: noise [P, M] for the hard Gumbel-softmax sample, or None for the argmax one-hot."""
    num_classes, num_prototype, _ = prototypes.shape
    mask = gt_seg == pred_seg
    proto_target = gt_seg.astype(np.float64).copy()
    protos = prototypes.copy()
    for k in range(num_classes):
        sel = gt_seg == k
        init_q = masks[..., k][sel, ...]
        if init_q.shape[0] == 0:
            continue
        L, indexs = distributed_sinkhorn(init_q)
        if gumbel is None:
            chosen = indexs
        else:
            chosen = np.argmax(L + gumbel[sel], axis=1)
        q = np.eye(num_prototype)[chosen]
        m_k = mask[sel]
        c_k = _c[sel, ...]
        m_q = q * m_k[:, None]
        c_q = c_k * m_k[:, None]
        f = m_q.T @ c_q
        n = np.sum(m_q, axis=0)
        if np.sum(n) > 0:
            f = l2n(f)
            protos[k, n != 0, :] = gamma * protos[k, n != 0, :] + (1 - gamma) * f[n != 0, :]
        proto_target[sel] = indexs + num_prototype * k
    return proto_target, l2n(protos)


def ppc(contrast_logits, contrast_target, temperature=None):
    logits = contrast_logits if temperature is None else contrast_logits / temperature
    keep = contrast_target != -1
    lg = logits[keep]
    t = contrast_target[keep].astype(int)
    m = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - lg[np.arange(len(t)), t]))


def ppd(contrast_logits, contrast_target):
    keep = contrast_target != -1
    lg = contrast_logits[keep]
    t = contrast_target[keep].astype(int)
    return float(np.mean((1 - lg[np.arange(len(t)), t]) ** 2))


def contrastive(feats_, labels_, temperature=0.1, base_temperature=0.07):
    """ContrastiveSeg's `PixelContrastLoss._contrastive`, line by line."""
    anchor_num, n_view = feats_.shape[0], feats_.shape[1]
    labels_ = labels_.reshape(-1, 1)
    mask = (labels_ == labels_.T).astype(np.float64)
    contrast_count = n_view
    contrast_feature = np.concatenate([feats_[:, v] for v in range(n_view)], axis=0)
    anchor_feature = contrast_feature
    anchor_count = contrast_count
    anchor_dot_contrast = (anchor_feature @ contrast_feature.T) / temperature
    logits = anchor_dot_contrast - anchor_dot_contrast.max(axis=1, keepdims=True)
    mask = np.tile(mask, (anchor_count, contrast_count))
    neg_mask = 1 - mask
    logits_mask = np.ones_like(mask)
    logits_mask[np.arange(anchor_num * anchor_count), np.arange(anchor_num * anchor_count)] = 0
    mask = mask * logits_mask
    neg_logits = (np.exp(logits) * neg_mask).sum(1, keepdims=True)
    exp_logits = np.exp(logits)
    log_prob = logits - np.log(exp_logits + neg_logits)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return float(loss.mean())


def pixel_contrast_fixture():
    rng = np.random.default_rng(23)
    P, D, A, V = 60, 8, 5, 3
    emb = l2n(rng.normal(size=(P, D)))
    pixels = rng.permutation(P)[: A * V].reshape(A, V)
    classes = np.array([1, 2, 1, 3, 2])  # class 3: one anchor, positives only among its views
    return {
        "embeddings": emb.tolist(),
        "pixels": pixels.tolist(),
        "classes": classes.tolist(),
        "loss": contrastive(emb[pixels], classes),
    }


def main(path):
    rng = np.random.default_rng(17)
    P, K, M, D = 48, 4, 3, 6  # class 3 never labelled: an absent class
    gamma = 0.9  # larger than 0.999 so that the update is visible in float32
    _c = l2n(rng.normal(size=(P, D)))
    prototypes = l2n(rng.normal(size=(K, M, D)))
    gt = rng.choice([0, 1, 2, -1], size=P, p=[0.35, 0.3, 0.2, 0.15])
    pred = np.where(rng.random(P) < 0.6, np.maximum(gt, 0), rng.integers(0, K, size=P))
    masks = np.einsum("nd,kmd->nmk", _c, prototypes)
    gumbel = -np.log(-np.log(rng.uniform(np.finfo(np.float32).eps, 1.0, size=(P, M))))
    target_argmax, protos_argmax = prototype_learning(_c, pred, gt, masks, prototypes, gamma, None)
    target_gumbel, protos_gumbel = prototype_learning(_c, pred, gt, masks, prototypes, gamma, gumbel)
    assert np.array_equal(target_argmax, target_gumbel)
    # The losses read the cosines to the prototypes as they were before the update.
    contrast_logits = _c @ prototypes.reshape(-1, D).T
    sel0 = gt == 0
    plan0, _ = distributed_sinkhorn(masks[..., 0][sel0])
    ours = lambda t: [255 if v == -1 else int(v) for v in t]  # the trainer's ignore label
    fx = {
        "classes": K,
        "per_class": M,
        "gamma": gamma,
        "embeddings": _c.tolist(),
        "prototypes": prototypes.tolist(),
        # [P, K, M], the trainer's layout of the same cosines.
        "similarity": masks.transpose(0, 2, 1).tolist(),
        "labels": ours(gt),
        "predictions": [int(v) for v in pred],
        "gumbel": gumbel.tolist(),
        "sinkhorn_class0_scores": masks[..., 0][sel0].tolist(),
        "sinkhorn_class0_plan": plan0.tolist(),
        "targets": ours(target_argmax),
        "prototypes_after_argmax": protos_argmax.tolist(),
        "prototypes_after_gumbel": protos_gumbel.tolist(),
        "gumbel_differs_from_argmax": bool(not np.allclose(protos_argmax, protos_gumbel)),
        "ppc": ppc(contrast_logits, target_argmax),
        "ppc_t01": ppc(contrast_logits, target_argmax, 0.1),
        "ppd": ppd(contrast_logits, target_argmax),
        "pixel_contrast": pixel_contrast_fixture(),
    }
    with open(path, "w") as f:
        json.dump(fx, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/protoseg.json")
