#!/usr/bin/env python3
"""OpenCV's selective search in "fast" mode (opencv-contrib-python-headless), for comparison with
ours: proposals and ms/image on a folder of images, and — with --camvid — the ground-truth boxes
of CamVid's thing classes (connected components of pole 2, sign 6, car 8, pedestrian 9,
bicyclist 10; components under 64 px ignored) for a recall comparison.

    .venv/bin/python tests/reference/opencv_proposals.py DIR COUNT OUT.json [--camvid]
"""
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

THINGS = (2, 6, 8, 9, 10)


def gt_boxes(label_png):
    lab = np.array(Image.open(label_png))
    boxes = []
    for c in THINGS:
        comp, n = ndimage.label(lab == c)
        for sl in ndimage.find_objects(comp):
            if sl is None:
                continue
            ys, xs = sl
            if (ys.stop - ys.start) * (xs.stop - xs.start) < 64:
                continue
            boxes.append([xs.start, ys.start, xs.stop - 1 - xs.start, ys.stop - 1 - ys.start])
    return boxes


def main():
    root, count, out = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    camvid = "--camvid" in sys.argv
    cv2.setNumThreads(1)
    if camvid:
        names = (root / "ImageSets/Segmentation/train.txt").read_text().split()[:count]
        files = [root / "JPEGImages" / f"{n}.jpg" for n in names]
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    res = {}
    for p in files:
        bgr = cv2.imread(str(p))
        ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        ss.setBaseImage(bgr)
        ss.switchToSelectiveSearchFast()
        t = time.perf_counter()
        rects = ss.process()
        ms = (time.perf_counter() - t) * 1e3
        entry = {"opencv": [list(map(int, r)) for r in rects], "opencv_ms": ms}
        if camvid:
            entry["gt"] = gt_boxes(root / "SegmentationClass" / f"{p.stem}.png")
        res[str(p.relative_to(root))] = entry
        print(f"{p.name}: {len(rects)} rects, {ms:.0f} ms", file=sys.stderr)
    Path(out).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
