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
    with open(out, "w") as f:
        json.dump(fx, f)
    print(f"wrote {out}: infonce {fx['infonce']['loss']:.6f}, dense {fx['densecl_dense']['loss']:.6f}")


if __name__ == "__main__":
    main(sys.argv[1])
