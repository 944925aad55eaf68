#!/usr/bin/env python3
"""Reference proposals from the Python `selectivesearch` package (the algorithm SoCo's code copies),
with SoCo's parameters (scale 300, sigma 0.9, min_size 100) on full-resolution images, before any
filtering. Writes JSON {file: {"rects": [[x, y, w, h], ...], "ms": t}}.

    scripts/setup.sh --python   (installs selectivesearch, scikit-image, Pillow, numpy)
    .venv/bin/python tests/reference/selective_search_reference.py DIR COUNT OUT.json
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import selectivesearch
from PIL import Image


def main():
    root, count, out = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    res = {}
    for p in files:
        img = np.array(Image.open(p).convert("RGB"))
        t = time.perf_counter()
        _, regions = selectivesearch.selective_search(img, scale=300, sigma=0.9, min_size=100)
        ms = (time.perf_counter() - t) * 1e3
        res[p.name] = {"rects": [list(map(int, r["rect"])) for r in regions], "ms": ms}
        print(f"{p.name}: {len(regions)} regions, {ms:.0f} ms", file=sys.stderr)
    Path(out).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
