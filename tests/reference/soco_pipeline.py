#!/usr/bin/env python3
"""SoCo's view pipeline (METHODS.md §3.3) in Python with Pillow + numpy, as the official code runs
it on PIL images: V1 = whole image → 224 (aspect not kept), V2 = RandomResizedCrop 224 (scale
0.5–1), V3 = independent RandomResizedCrop 112; K = 4 proposals chosen per view pair with the
overlap / retry / least-common rule, V1-side box jitter (p 0.5, r 0.1), clipping, padding with
shared ids, flips moving the boxes, normalised coordinates and FPN levels; colour: V1 jitter
(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, blur always; V2/V3 the same jitter, grayscale 0.2,
blur 0.1, solarize 0.2. Proposals come from SoCo's JSON ({basename: [[x, y, w, h], ...]}).

Used by `tools/profile-throughput --method soco` as the reference; prints one JSON line.
    .venv/bin/python tests/reference/soco_pipeline.py DIR SAMPLES PROPOSALS.json [SIZE]
"""
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from moco_pipeline import apply_color_jitter, color_jitter_params, measure, rrc_params  # noqa: E402

K = 4


def colour(img, blur_p, solarize_p):
    if random.random() < 0.8:
        img = apply_color_jitter(img, *color_jitter_params(saturation=0.2))
    if random.random() < 0.2:
        g = np.array(img.convert("L"))
        img = Image.fromarray(np.dstack([g, g, g]), "RGB")
    if random.random() < blur_p:
        img = img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))
    if random.random() < solarize_p:
        img = ImageOps.solarize(img, 128)
    return img


def overlaps(b, crop):
    x, y, w, h = crop
    return b[0] < x + w - 1 and b[2] > x and b[1] < y + h - 1 and b[3] > y


def select(boxes, crop):
    cand = [b for b in boxes if overlaps(b, crop)]
    return random.sample(cand, min(K, len(cand)))


def jitter(b):
    if random.random() >= 0.5:
        return b
    j = [random.uniform(-0.1, 0.1) for _ in range(4)]
    w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
    x1, y1 = b[0] + j[0] * w, b[1] + j[1] * h
    w, h = w * (1 + j[2]), h * (1 + j[3])
    return (x1, y1, x1 + w - 1, y1 + h - 1, b[4])


def to_view(boxes, crop):
    x, y, w, h = crop
    out = []
    for b in boxes:
        nb = (max(b[0], x) - x, max(b[1], y) - y, min(b[2], x + w - 1) - x, min(b[3], y + h - 1) - y, b[4])
        if nb[0] < nb[2] and nb[1] < nb[3]:
            out.append(nb)
    return out or [(0, 0, w - 1, h - 1, 0)]


def pad(a, b):
    for s, o in ((a, b), (b, a)):
        ids = {x[4] for x in o}
        pool = [x for x in s if x[4] in ids] or list(s)
        while len(s) < K:
            s.append(random.choice(pool))


def normalise(boxes, crop, size, flip):
    _, _, w, h = crop
    out = []
    for b in boxes:
        x1, y1, x2, y2 = b[0] / w, b[1] / h, b[2] / w, b[3] / h
        if flip:
            x1, x2 = 1 - x2, 1 - x1
        s = math.sqrt(((x2 - x1) * size + 1) * ((y2 - y1) * size + 1))
        level = 0 if s <= 48 else 1 if s <= 96 else 2 if s <= 192 else 3
        out.append((x1, y1, x2, y2, b[4], level))
    return np.array(out, dtype=np.float32)


def render(img, crop, size, blur_p, solarize_p):
    x, y, w, h = crop
    v = img.crop((x, y, x + w, y + h)).resize((size, size), Image.BILINEAR)
    v = colour(v, blur_p, solarize_p)
    flip = random.random() < 0.5
    if flip:
        v = v.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(v, dtype=np.uint8), flip


def sample(img, rects, size):
    W, H = img.size
    boxes = [(r[0], r[1], r[0] + r[2] - 1, r[1] + r[3] - 1, i + 1) for i, r in enumerate(rects)] or [(0, 0, W - 1, H - 1, 1)]
    least = max(K // 2, 1)
    for _ in range(5):
        c2 = rrc_params(W, H, scale=(0.5, 1.0))
        c3 = rrc_params(W, H, scale=(0.5, 1.0))
        s2, s3 = select(boxes, c2), select(boxes, c3)
        if len(s2) >= least and len(s3) >= least:
            break
        least = max(least // 2, 1)
    full = (0, 0, W, H)
    v1, f1 = render(img, full, size, 1.0, 0.0)
    v2, f2 = render(img, c2, size, 0.1, 0.2)
    v3, f3 = render(img, c3, size // 2, 0.1, 0.2)
    b12, b2 = to_view([jitter(b) for b in s2], full), to_view(s2, c2)
    b13, b3 = to_view([jitter(b) for b in s3], full), to_view(s3, c3)
    pad(b12, b2)
    pad(b13, b3)
    sets = [normalise(b12, full, size, f1), normalise(b2, c2, size, f2),
            normalise(b13, full, size, f1), normalise(b3, c3, size // 2, f3)]
    return (v1, v2, v3), sets


def main():
    root, samples, props = Path(sys.argv[1]), int(sys.argv[2]), json.load(open(sys.argv[3]))
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.seed(0)
    order = [files[i % len(files)] for i in range(samples)]
    for p in files[:4]:
        sample(Image.open(p).convert("RGB"), props.get(p.stem, []), size)

    def one(i):
        views, sets = sample(Image.open(order[i]).convert("RGB"), props.get(order[i].stem, []), size)
        return int(views[0][0, 0, 0]) + len(sets)
    measure(samples, one)


if __name__ == "__main__":
    main()
