#!/usr/bin/env python3
"""Reference scores of the segmentation evaluation, computed independently with numpy the way
mmsegmentation's IoUMetric does (areas accumulated over the dataset with np.bincount, IoU and
accuracy as float64 ratios, NaN where undefined, means over the defined classes), on fixed label
maps with ignore pixels (255), a class predicted but absent from the ground truth, a class neither
present nor predicted, and a class present but never predicted. The trainer's test compares
against these exactly.

Regenerate:  .venv/bin/python tests/reference/make_miou_fixtures.py tests/reference/miou.json
"""
import json
import math
import sys

import numpy as np

rng = np.random.default_rng(2026)


def areas(gt, pred, classes):
    keep = gt != 255
    g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    inter = p[p == g]
    a_inter = np.bincount(inter, minlength=classes).astype(np.float64)
    a_pred = np.bincount(p, minlength=classes).astype(np.float64)
    a_label = np.bincount(g, minlength=classes).astype(np.float64)
    return a_inter, a_pred + a_label - a_inter, a_label


def case(classes, images):
    tot = [np.zeros(classes) for _ in range(3)]
    for gt, pred in images:
        for t, a in zip(tot, areas(gt, pred, classes)):
            t += a
    inter, union, label = tot
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
        acc = inter / label
    aacc = inter.sum() / label.sum()

    def mean(v):
        d = [float(x) for x in v if not math.isnan(x)]
        return sum(d) / len(d)

    opt = lambda v: [None if math.isnan(x) else float(x) for x in v]
    return {
        "classes": classes,
        "images": [{"gt": gt.ravel().tolist(), "pred": pred.ravel().tolist()} for gt, pred in images],
        "iou": opt(iou),
        "acc": opt(acc),
        "miou": mean(iou),
        "macc": mean(acc),
        "aacc": float(aacc),
    }


def noisy(gt, classes, flip):
    pred = gt.copy()
    pred[pred == 255] = rng.integers(0, classes, size=int((pred == 255).sum()))
    noise = rng.random(gt.shape) < flip
    pred[noise] = rng.integers(0, classes, size=int(noise.sum()))
    return pred.astype(np.uint8)


cases = []
# 6 classes: 4 never in the ground truth but predicted, 5 neither present nor predicted,
# 2 present but never predicted; 10 % ignore.
gt = rng.integers(0, 4, size=(30, 40)).astype(np.uint8)
gt[rng.random(gt.shape) < 0.1] = 255
pred = noisy(gt, 4, 0.3)
pred[pred == 2] = 4
cases.append(case(6, [(gt, pred)]))
# CamVid's 11 classes over three images of different sizes, accumulated.
imgs = []
for h, w in [(24, 32), (36, 48), (12, 20)]:
    gt = rng.integers(0, 11, size=(h, w)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.05] = 255
    imgs.append((gt, noisy(gt, 11, 0.4)))
cases.append(case(11, imgs))
# All pixels ignored but one.
gt = np.full((4, 4), 255, np.uint8)
gt[1, 2] = 1
cases.append(case(3, [(gt, np.ones((4, 4), np.uint8))]))

with open(sys.argv[1], "w") as f:
    json.dump(cases, f)
