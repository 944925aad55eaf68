#!/usr/bin/env python3
"""OpenCV's 8-bit colour conversions that mmseg's PhotoMetricDistortion goes through
(cv2.COLOR_BGR2HSV and COLOR_HSV2BGR on uint8 images), on 4096 random colours plus the corners of
the cube and grey ramps; loader/tests/photometric_vs_opencv.rs checks the loader's conversions
against them.

Regenerate:  .venv/bin/python tests/reference/make_hsv_fixtures.py tests/reference/hsv.json
"""
import json
import sys

import cv2
import numpy as np

rng = np.random.default_rng(7)
rgb = rng.integers(0, 256, (4096, 3), dtype=np.uint8)
extra = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]
                 + [[v, v, v] for v in range(0, 256, 17)] + [[255, 0, 1], [1, 0, 255], [0, 1, 255]],
                 dtype=np.uint8)
rgb = np.concatenate([rgb, extra])
hsv = cv2.cvtColor(rgb[None, :, ::-1].copy(), cv2.COLOR_BGR2HSV)[0]
hsv_in = np.stack([rng.integers(0, 180, 4096), rng.integers(0, 256, 4096), rng.integers(0, 256, 4096)],
                  axis=1).astype(np.uint8)
back = cv2.cvtColor(hsv_in[None], cv2.COLOR_HSV2BGR)[0][:, ::-1]
json.dump({"rgb": rgb.tolist(), "hsv": hsv.tolist(), "hsv_in": hsv_in.tolist(), "rgb_out": back.tolist()},
          open(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/hsv.json", "w"))
