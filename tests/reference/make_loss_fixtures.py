#!/usr/bin/env python3
"""Reference values of the trainer's losses, computed with numpy (float64) straight from the
formulas in METHODS.md, on fixed random inputs. The trainer's tests compare against these.

Regenerate:  .venv/bin/python tests/reference/make_loss_fixtures.py tests/reference/losses.json
"""
import json
import sys

import numpy as np

rng = np.random.default_rng(1234)


def normalize(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def cross_entropy_first(logits):
    m = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - logits[:, 0]))


def info_nce(q, k, queue, t):
    """MoCo (§1.3): logits = [q·k, q·queueᵀ]/T, CE with label 0."""
    l_pos = (q * k).sum(axis=1, keepdims=True)
    l_neg = q @ queue.T
    return cross_entropy_first(np.concatenate([l_pos, l_neg], axis=1) / t)


def densecl_dense(bq, bk, zq, zk, queue, t):
    """DenseCL (§2.3): match on backbone features, positives from the dense head, queue negatives."""
    bq, bk = normalize(bq, 1), normalize(bk, 1)
    zq, zk = normalize(zq, 1), normalize(zk, 1)
    n, c, s2 = zq.shape
    rows = []
    for i in range(n):
        sim = bq[i].T @ bk[i]  # [S²q, S²k]
        match = sim.argmax(axis=1)
        for x in range(s2):
            pos = float(zq[i, :, x] @ zk[i, :, match[x]])
            neg = zq[i, :, x] @ queue.T
            rows.append(np.concatenate([[pos], neg]))
    return cross_entropy_first(np.array(rows) / t)


def soco_box_byol(p, z, ids_a, ids_b):
    """SoCo (§3.5), one direction A→B: per image −2·Σ_ab C[a,b]⟨p̂_a, ẑ_b⟩ / (ΣC + 1e−6), C[a,b] =
    [ids_a[a] == ids_b[b]]; averaged over the batch."""
    p, z = normalize(p, 2), normalize(z, 2)
    total = 0.0
    for i in range(p.shape[0]):
        c = (ids_a[i][:, None] == ids_b[i][None, :]).astype(np.float64)
        total += -2.0 * float((c * (p[i] @ z[i].T)).sum()) / (c.sum() + 1e-6)
    return total / p.shape[0]


def cp2_losses(q, k, mq, mk, queue, t):
    """CP² (§4.3). q, k [n, d, cells] (normalised here); mq, mk [n, cells] 0/1 foreground masks.
    Instance: InfoNCE of the foreground-pooled, normalised q̄, k̄ against the queue.
    Dense: s[x, y] = ⟨q_x, k_y⟩ (τ = 1); log-softmax over query cells x for each key cell y;
    mean over foreground×foreground pairs, then over images."""
    q, k = normalize(q, 1), normalize(k, 1)
    qbar = normalize(np.einsum("ndx,nx->nd", q, mq), 1)
    kbar = normalize(np.einsum("ndx,nx->nd", k, mk), 1)
    ins = info_nce(qbar, kbar, queue, t)
    dense = 0.0
    for i in range(q.shape[0]):
        s = q[i].T @ k[i]                      # [x, y]
        m = s.max(axis=0, keepdims=True)
        logsm = s - (np.log(np.exp(s - m).sum(axis=0, keepdims=True)) + m)
        pos = np.outer(mq[i], mk[i])
        dense += float(-(logsm * pos).sum() / pos.sum())
    dense /= q.shape[0]
    return ins, dense


def bilinear_half_pixel(x, out_h, out_w):
    """PyTorch's F.interpolate(mode="bilinear", align_corners=False) on [n, c, h, w]."""
    n, c, h, w = x.shape

    def axis(out, size):
        src = np.maximum((np.arange(out) + 0.5) * size / out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), size - 1)
        i1 = np.minimum(i0 + 1, size - 1)
        return i0, i1, src - i0

    y0, y1, ly = axis(out_h, h)
    x0, x1, lx = axis(out_w, w)
    top = x[:, :, y0][:, :, :, x0] * (1 - lx) + x[:, :, y0][:, :, :, x1] * lx
    bot = x[:, :, y1][:, :, :, x0] * (1 - lx) + x[:, :, y1][:, :, :, x1] * lx
    return top * (1 - ly)[:, None] + bot * ly[:, None]


def patch_rotation(logits, rotation, size):
    """SSL4DP PLR (§9): logits [n, 4, h, w] upsampled to size² (bilinear, half-pixel centres);
    every pixel's target is the rotation class of its patch in the [n, g, g] map; mean CE."""
    n, g = rotation.shape[0], rotation.shape[1]
    up = bilinear_half_pixel(logits, size, size)
    patch = size // g
    total, correct = 0.0, 0
    for i in range(n):
        for y in range(size):
            for x in range(size):
                z = up[i, :, y, x]
                t = rotation[i, y // patch, x // patch]
                m = z.max()
                total += np.log(np.exp(z - m).sum()) + m - z[t]
                correct += int(z.argmax() == t)
    return total / (n * size * size), correct / (n * size * size)


def mlp2(x, w1, b1, w2, b2):
    """MoCo v2's projection: Linear → ReLU → Linear (weights as [in, out])."""
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def edmoco(dq, dk, w1, b1, w2, b2, queue, t):
    """SSL4DP EDMoCo (§9): decoder outputs [n, c, h, w] average-pooled, projected, normalised;
    MoCo's InfoNCE against the queue."""
    q = normalize(mlp2(dq.mean(axis=(2, 3)), w1, b1, w2, b2), 1)
    k = normalize(mlp2(dk.mean(axis=(2, 3)), w1, b1, w2, b2), 1)
    return info_nce(q, k, queue, t)


def plmoco(q, k, matches, queue, t):
    """SSL4DP PLMoCo (§9): q, k [n, d, cells] normalised along d; each view-0 cell x with
    matches[i, x] >= 0 is a query whose positive is view-1 cell matches[i, x] of the same image,
    negatives the queue; unmatched cells are left out; mean over matched cells."""
    q, k = normalize(q, 1), normalize(k, 1)
    rows = []
    for i in range(q.shape[0]):
        for x in range(q.shape[2]):
            m = matches[i, x]
            if m < 0:
                continue
            pos = float(q[i, :, x] @ k[i, :, m])
            rows.append(np.concatenate([[pos], q[i, :, x] @ queue.T]))
    return cross_entropy_first(np.array(rows) / t), len(rows)


def main(out):
    n, d, K = 6, 8, 20
    q = normalize(rng.normal(size=(n, d)), 1)
    k = normalize(rng.normal(size=(n, d)), 1)
    queue = normalize(rng.normal(size=(K, d)), 1)
    fx = {"infonce": {"q": q.tolist(), "k": k.tolist(), "queue": queue.tolist(), "t": 0.2,
                      "loss": info_nce(q, k, queue, 0.2)}}
    n, C, S2, D = 2, 10, 9, 8
    bq, bk = rng.normal(size=(n, C, S2)), rng.normal(size=(n, C, S2))
    zq, zk = rng.normal(size=(n, D, S2)), rng.normal(size=(n, D, S2))
    q2 = normalize(rng.normal(size=(K, D)), 1)
    fx["densecl_dense"] = {"bq": bq.tolist(), "bk": bk.tolist(), "zq": zq.tolist(), "zk": zk.tolist(),
                           "queue": q2.tolist(), "t": 0.2, "loss": densecl_dense(bq, bk, zq, zk, q2, 0.2)}
    # SoCo: K = 4 slots per view; padded duplicates and ids without a partner (−1, 0, 7).
    n, k4, D = 3, 4, 8
    p, z = rng.normal(size=(n, k4, D)), rng.normal(size=(n, k4, D))
    ids_a = np.array([[1, 2, 2, 3], [5, 5, 5, 5], [0, 1, 2, 7]])
    ids_b = np.array([[2, 1, 4, 2], [5, 6, 5, 6], [0, 9, 9, 9]])
    fx["soco"] = {"p": p.tolist(), "z": z.tolist(), "ids_a": ids_a.tolist(), "ids_b": ids_b.tolist(),
                  "loss": soco_box_byol(p, z, ids_a, ids_b)}
    # CP²: 4×4 cells, windows of different sizes, one with a single foreground cell.
    n, D, cells = 3, 8, 16
    q, k = rng.normal(size=(n, D, cells)), rng.normal(size=(n, D, cells))
    mq = np.zeros((n, cells)); mk = np.zeros((n, cells))
    mq[0, [5, 6, 9, 10]] = 1; mk[0, [0, 1, 4, 5, 8, 9]] = 1
    mq[1, :12] = 1; mk[1, 3:15] = 1
    mq[2, [15]] = 1; mk[2, [2, 3]] = 1
    q3 = normalize(rng.normal(size=(K, D)), 1)
    ins, dense = cp2_losses(q, k, mq, mk, q3, 0.2)
    fx["cp2"] = {"q": q.tolist(), "k": k.tolist(), "mq": mq.tolist(), "mk": mk.tolist(), "queue": q3.tolist(),
                 "t": 0.2, "instance": ins, "dense": dense}
    # PLR: 3×3 grid of 4-px patches on a 12-px view, logits at 3×3 (output stride 4).
    n, size = 2, 12
    logits = rng.normal(size=(n, 4, 3, 3)) * 2.0
    rotation = rng.integers(0, 4, size=(n, 3, 3))
    plr_loss, plr_acc = patch_rotation(logits, rotation, size)
    fx["patch_rotation"] = {"logits": logits.tolist(), "rotation": rotation.tolist(), "size": size,
                            "loss": plr_loss, "accuracy": plr_acc}
    # EDMoCo: decoder outputs of 6 channels at 3×4, MLP 6 → 10 → 8.
    n, c, hid, D = 4, 6, 10, 8
    dq, dk = rng.normal(size=(n, c, 3, 4)), rng.normal(size=(n, c, 3, 4))
    w1, b1 = rng.normal(size=(c, hid)) * 0.5, rng.normal(size=hid) * 0.1
    w2, b2 = rng.normal(size=(hid, D)) * 0.5, rng.normal(size=D) * 0.1
    q4 = normalize(rng.normal(size=(K, D)), 1)
    fx["edmoco"] = {"dq": dq.tolist(), "dk": dk.tolist(), "w1": w1.tolist(), "b1": b1.tolist(),
                    "w2": w2.tolist(), "b2": b2.tolist(), "queue": q4.tolist(), "t": 0.2,
                    "loss": edmoco(dq, dk, w1, b1, w2, b2, q4, 0.2)}
    # PLMoCo: 3×3 cells; image 0 half matched (scrambled order), image 1 fully, image 2 not at all.
    n, D, cells = 3, 8, 9
    q, k = rng.normal(size=(n, D, cells)), rng.normal(size=(n, D, cells))
    matches = np.full((n, cells), -1)
    matches[0, [0, 1, 3, 4]] = [4, 5, 7, 8]
    matches[1] = rng.permutation(cells)
    q5 = normalize(rng.normal(size=(K, D)), 1)
    pl_loss, pl_matched = plmoco(q, k, matches, q5, 0.2)
    fx["plmoco"] = {"q": q.tolist(), "k": k.tolist(), "matches": matches.tolist(), "queue": q5.tolist(),
                    "t": 0.2, "loss": pl_loss, "matched": pl_matched}
    with open(out, "w") as f:
        json.dump(fx, f)
    print(f"wrote {out}: infonce {fx['infonce']['loss']:.6f}, dense {fx['densecl_dense']['loss']:.6f}, "
          f"soco {fx['soco']['loss']:.6f}, cp2 {ins:.6f} / {dense:.6f}, plr {plr_loss:.6f}, "
          f"edmoco {fx['edmoco']['loss']:.6f}, plmoco {pl_loss:.6f}")


if __name__ == "__main__":
    main(sys.argv[1])
