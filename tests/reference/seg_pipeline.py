#!/usr/bin/env python3
"""mmseg's segmentation train pipeline in Python with OpenCV + numpy, as mmseg 0.x runs it
(configs/_base_/datasets/pascal_voc12.py; mmseg/datasets/pipelines/{loading,transforms}.py;
METHODS.md §2.5): LoadImageFromFile (cv2), LoadAnnotations (the PNG's stored values),
Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio) — bilinear image, nearest label
(mmcv.imrescale) —, RandomCrop(crop, cat_max_ratio=0.75) with up to 10 redraws,
RandomFlip(0.5), PhotoMetricDistortion (brightness 32, contrast 0.5–1.5, saturation 0.5–1.5,
hue 18, through cv2's 8-bit HSV), Pad(crop, img 0, seg 255). Ends in uint8 HWC image + uint8 label
(normalisation happens on the trainer's device in our design too). mmcv itself is not installed:
each step below is the code it runs.

Used by `tools/profile-throughput --method segmentation` as the reference; prints one JSON line.
    .venv/bin/python tests/reference/seg_pipeline.py VOC_ROOT SAMPLES [CROP]
"""
import json
import random
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

cv2.setNumThreads(1)  # one process, one thread: the per-core reference


def rescale(img, seg, scale):
    h, w = img.shape[:2]
    long_edge, short_edge = max(scale), min(scale)
    f = min(long_edge / max(h, w), short_edge / min(h, w))
    size = (int(w * f + 0.5), int(h * f + 0.5))
    return (cv2.resize(img, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(seg, size, interpolation=cv2.INTER_NEAREST))


def crop_bbox(img, crop):
    margin_h = max(img.shape[0] - crop[0], 0)
    margin_w = max(img.shape[1] - crop[1], 0)
    oy, ox = np.random.randint(0, margin_h + 1), np.random.randint(0, margin_w + 1)
    return oy, oy + crop[0], ox, ox + crop[1]


def random_crop(img, seg, crop, cat_max_ratio=0.75, ignore=255):
    box = crop_bbox(img, crop)
    for _ in range(10):
        s = seg[box[0]:box[1], box[2]:box[3]]
        labels, cnt = np.unique(s, return_counts=True)
        cnt = cnt[labels != ignore]
        if len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < cat_max_ratio:
            break
        box = crop_bbox(img, crop)
    return img[box[0]:box[1], box[2]:box[3]], seg[box[0]:box[1], box[2]:box[3]]


def convert(img, alpha=1.0, beta=0.0):
    img = img.astype(np.float32) * alpha + beta
    return np.clip(img, 0, 255).astype(np.uint8)


def photometric(img):
    if np.random.randint(2):
        img = convert(img, beta=np.random.uniform(-32, 32))
    mode = np.random.randint(2)
    if mode == 1 and np.random.randint(2):
        img = convert(img, alpha=np.random.uniform(0.5, 1.5))
    if np.random.randint(2):
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 1] = convert(hsv[:, :, 1], alpha=np.random.uniform(0.5, 1.5))
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if np.random.randint(2):
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + np.random.randint(-18, 18)) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if mode == 0 and np.random.randint(2):
        img = convert(img, alpha=np.random.uniform(0.5, 1.5))
    return img


def pad(img, seg, crop):
    out_img = np.zeros((crop[0], crop[1], 3), np.uint8)
    out_seg = np.full((crop[0], crop[1]), 255, np.uint8)
    out_img[:img.shape[0], :img.shape[1]] = img
    out_seg[:seg.shape[0], :seg.shape[1]] = seg
    return out_img, out_seg


def sample(img_path, seg_path, crop):
    img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    seg = cv2.imread(str(seg_path), cv2.IMREAD_UNCHANGED)
    ratio = np.random.random_sample() * 1.5 + 0.5
    img, seg = rescale(img, seg, (int(2048 * ratio), int(512 * ratio)))
    img, seg = random_crop(img, seg, crop)
    if np.random.rand() < 0.5:
        img, seg = img[:, ::-1], seg[:, ::-1]
    img = photometric(np.ascontiguousarray(img))
    img, seg = pad(img, np.ascontiguousarray(seg), crop)
    return np.ascontiguousarray(img[:, :, ::-1]), seg  # RGB, as the ring carries


def main():
    root, samples = Path(sys.argv[1]), int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    names = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    pairs = [(root / "JPEGImages" / f"{n}.jpg", root / "SegmentationClass" / f"{n}.png") for n in names]
    random.seed(0)
    np.random.seed(0)
    start = time.perf_counter()
    checksum = 0
    for i in range(samples):
        img, seg = sample(*pairs[i % len(pairs)], (size, size))
        checksum += int(img[0, 0, 0]) + int(seg[0, 0])
    secs = time.perf_counter() - start
    print(json.dumps({
        "samples_per_s": samples / secs,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checksum": checksum,
    }))


if __name__ == "__main__":
    main()
