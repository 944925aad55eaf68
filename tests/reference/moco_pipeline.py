#!/usr/bin/env python3
"""The MoCo v2 two-view pipeline in Python with Pillow + numpy, as torchvision runs it on PIL
images (METHODS.md §1.1): RandomResizedCrop(224, scale=(0.2, 1)), ColorJitter(0.4, 0.4, 0.4, 0.1)
with p=0.8 in random order, RandomGrayscale(0.2), GaussianBlur(σ~U[0.1, 2]) with p=0.5, flip 0.5,
ending in a uint8 HWC array (normalisation happens on the trainer's device in our design too).
torchvision itself is not installed: each step below is the code its PIL backend runs.

Used by `tools/profile-throughput` as the reference; prints one JSON line.
    .venv/bin/python tests/reference/moco_pipeline.py DIR SAMPLES [SIZE]
"""
import json
import math
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def rrc_params(w, h, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * random.uniform(*scale)
        ar = math.exp(random.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return random.randint(0, w - cw), random.randint(0, h - ch), cw, ch
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def adjust_hue(img, hue_factor):
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        np_h += np.array(hue_factor * 255).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


def color_jitter_params(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
    order = list(range(4))
    random.shuffle(order)
    b = random.uniform(1 - brightness, 1 + brightness)
    c = random.uniform(1 - contrast, 1 + contrast)
    s = random.uniform(1 - saturation, 1 + saturation)
    h = random.uniform(-hue, hue)
    return order, b, c, s, h


def apply_color_jitter(img, order, b, c, s, h):
    for op in order:
        if op == 0:
            img = ImageEnhance.Brightness(img).enhance(b)
        elif op == 1:
            img = ImageEnhance.Contrast(img).enhance(c)
        elif op == 2:
            img = ImageEnhance.Color(img).enhance(s)
        else:
            img = adjust_hue(img, h)
    return img


def color_jitter(img):
    return apply_color_jitter(img, *color_jitter_params())


def view(img, size):
    x, y, cw, ch = rrc_params(*img.size)
    img = img.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BILINEAR)
    if random.random() < 0.8:
        img = color_jitter(img)
    if random.random() < 0.2:
        g = np.array(img.convert("L"))
        img = Image.fromarray(np.dstack([g, g, g]), "RGB")
    if random.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))
    if random.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img, dtype=np.uint8)


def measure(samples, one_sample):
    """Times `one_sample(i)` (returning a checksum contribution) for i < samples; prints the JSON
    line profile-throughput reads."""
    start = time.perf_counter()
    checksum = 0
    for i in range(samples):
        checksum += one_sample(i)
    dt = time.perf_counter() - start
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"samples": samples, "seconds": dt, "samples_per_s": samples / dt, "peak_rss_mib": rss_mib,
                      "checksum": checksum}))


def main():
    root, samples = Path(sys.argv[1]), int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.seed(0)
    order = [files[i % len(files)] for i in range(samples)]
    # Warm the page cache and the code paths.
    for p in files[:8]:
        view(Image.open(p).convert("RGB"), size)

    def one(i):
        img = Image.open(order[i]).convert("RGB")
        v0, v1 = view(img, size), view(img, size)
        return int(v0[0, 0, 0]) + int(v1[0, 0, 0])
    measure(samples, one)


if __name__ == "__main__":
    main()
