#!/usr/bin/env python3
"""CP²'s copy-paste composites (METHODS.md §4.1) in Python with Pillow + numpy: two MoCo v2 views
of a foreground image, one MoCo v2 view of each of two other images as backgrounds, in each
background one RandomErasing rectangle (area 0.5–0.8, aspect 0.8–1.25, always placed) through
which the foreground view shows; the full-resolution masks and the OS16 cell-centre masks.
Three decodes and four augmentation chains per sample, as in the official three-loader setup.

Used by `tools/profile-throughput --method cp2` as the reference; prints one JSON line.
    .venv/bin/python tests/reference/cp2_pipeline.py DIR SAMPLES [SIZE]
"""
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from moco_pipeline import measure, view  # noqa: E402


def window(size, area=(0.5, 0.8), ratio=(0.8, 1.25)):
    """torchvision RandomErasing's draw; the last try is clamped instead of giving up."""
    for _ in range(10):
        a = size * size * random.uniform(*area)
        r = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        h, w = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < h < size and 0 < w < size:
            break
    h, w = min(max(h, 1), size - 1), min(max(w, 1), size - 1)
    return random.randint(0, size - w), random.randint(0, size - h), w, h


def composite(fg_view, bg_view, size, stride=16):
    x, y, w, h = window(size)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[y:y + h, x:x + w] = 1
    out = np.where(mask[..., None] == 1, fg_view, bg_view)
    grid = mask[stride // 2::stride, stride // 2::stride].copy()
    return out, mask, grid


def sample(files, i, size):
    fg = Image.open(files[i]).convert("RGB")
    v = [view(fg, size), view(fg, size)]
    out = []
    for c in range(2):
        j = random.randrange(len(files))
        bg = view(Image.open(files[j]).convert("RGB"), size)
        out.append(composite(v[c], bg, size))
    return out


def main():
    root, samples = Path(sys.argv[1]), int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.seed(0)
    for i in range(4):
        sample(files, i, size)

    def one(i):
        out = sample(files, i % len(files), size)
        return int(out[0][0][0, 0, 0]) + int(out[1][2].sum())
    measure(samples, one)


if __name__ == "__main__":
    main()
