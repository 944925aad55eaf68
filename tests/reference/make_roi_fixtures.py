#!/usr/bin/env python3
"""Reference RoIAlign (torchvision `roi_align`, aligned=True, sampling_ratio=-1), written out in
numpy loops from torchvision's CPU kernel description, on random features and boxes that include
borders, boxes past the map's edge, boxes smaller than one bin and a degenerate (zero-size) box.
The trainer's RoIAlign must match within 1e-5 (trainer/tests/roi_align.rs).

If torch + torchvision happen to be importable, the numpy result is also checked against
`torchvision.ops.roi_align` (not required).

Regenerate:  .venv/bin/python tests/reference/make_roi_fixtures.py tests/reference/roi_align.json
"""
import json
import math
import sys

import numpy as np


def bilinear(f, y, x):
    """One bilinear sample of f [c, h, w]; zero outside [-1, h] x [-1, w]."""
    c, h, w = f.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(c)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * f[:, y_low, x_low] + hy * lx * f[:, y_low, x_high]
            + ly * hx * f[:, y_high, x_low] + ly * lx * f[:, y_high, x_high])


def roi_align(feat, rois, out):
    """feat [n, c, h, w]; rois [r, 5] = (batch, x1, y1, x2, y2) at spatial scale 1."""
    n, c, h, w = feat.shape
    res = np.zeros((len(rois), c, out, out))
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 - 0.5, y1 - 0.5
        rw, rh = (x2 - 0.5) - sx, (y2 - 0.5) - sy
        bw, bh = rw / out, rh / out
        gw, gh = max(math.ceil(rw / out), 0), max(math.ceil(rh / out), 0)
        count = max(gw * gh, 1)
        for py in range(out):
            for px in range(out):
                acc = np.zeros(c)
                for iy in range(gh):
                    y = sy + py * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + px * bw + (ix + 0.5) * bw / gw
                        acc += bilinear(feat[int(b)], y, x)
                res[r, :, py, px] = acc / count
    return res


def main(path):
    rng = np.random.default_rng(7)
    feat = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    h, w = 9, 11
    rois = [
        [0, 0.0, 0.0, 11.0, 9.0],      # the whole map
        [1, 2.3, 1.7, 8.9, 6.2],       # interior
        [0, 9.5, 7.5, 11.0, 9.0],      # bottom-right corner, smaller than a bin
        [1, -1.5, -0.8, 3.0, 2.5],     # past the top-left edge
        [0, 4.0, 4.0, 4.4, 4.3],       # far smaller than one bin
        [1, 6.0, 3.0, 6.0, 3.0],       # zero size
        [0, 10.2, 0.1, 14.0, 3.3],     # past the right edge
    ]
    for _ in range(9):
        x1, y1 = rng.uniform(-1, w), rng.uniform(-1, h)
        rois.append([int(rng.integers(0, 2)), x1, y1, x1 + rng.uniform(0.2, 8), y1 + rng.uniform(0.2, 7)])
    out = 7
    want = roi_align(feat.astype(np.float64), rois, out)
    try:
        import torch
        from torchvision.ops import roi_align as tv
        got = tv(torch.from_numpy(feat).double(), torch.tensor(rois, dtype=torch.float64), (out, out),
                 spatial_scale=1.0, sampling_ratio=-1, aligned=True).numpy()
        print(f"numpy vs torchvision: max |diff| {np.abs(got - want).max():.2e}")
    except ImportError:
        print("torchvision not importable: numpy reference only")
    json.dump({"features": feat.tolist(), "rois": rois, "out": out, "pooled": want.tolist()},
              open(path, "w"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1])
