#!/usr/bin/env python3
"""Reference outputs of the augmentation ops, computed with Pillow + numpy exactly as torchvision
applies them to PIL images (torchvision itself is not needed: each call below is what its PIL
backend does). The loader's tests compare our uint8 ops against these files.

Regenerate (needs the project venv from scripts/setup.sh --python):
    .venv/bin/python tests/reference/make_op_fixtures.py ../shared/data/photos tests/reference/ops
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

PHOTOS = ["0000_alpaca_v0.jpg", "0037_", "0101_", "0200_"]
SRC_SIZE = (128, 96)


def find(photos: Path, prefix: str) -> Path:
    return sorted(p for p in photos.iterdir() if p.name.startswith(prefix))[0]


def adjust_hue(img, hue_factor):
    # torchvision.transforms.functional_pil.adjust_hue
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        np_h += np.array(hue_factor * 255).astype(np.uint8)
    h = Image.fromarray(np_h, "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


HUE_SHIFTS = [0, 1, 13, 77, 128, 250]


def hue_all_colours(out: Path) -> None:
    """SHA-256 of torchvision's PIL hue shift applied to all 2^24 colours (a 4096×4096 image whose
    pixel i is the colour i, red the most significant byte), for several 8-bit shifts: the loader
    must give the same bytes for every colour, not only for the colours of a few photos."""
    i = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(i >> 16) & 255, (i >> 8) & 255, i & 255], -1).astype(np.uint8)
    img = Image.fromarray(rgb.reshape(4096, 4096, 3), "RGB")
    h, s, v = img.convert("HSV").split()
    hashes = {}
    for shift in HUE_SHIFTS:
        np_h = np.array(h, dtype=np.uint8)
        with np.errstate(over="ignore"):
            np_h += np.uint8(shift)
        shifted = Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")
        hashes[str(shift)] = hashlib.sha256(np.asarray(shifted).tobytes()).hexdigest()
    (out / "hue_all_colours.json").write_text(json.dumps({"pillow": Image.__version__, "sha256_by_shift": hashes}, indent=1))


def grayscale3(img):
    g = np.array(img.convert("L"))
    return Image.fromarray(np.dstack([g, g, g]), "RGB")


def main(photos: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for k, prefix in enumerate(PHOTOS):
        path = find(photos, prefix)
        full = Image.open(path).convert("RGB")
        # Decoder reference: a 64×64 patch of Pillow's decode (libjpeg-turbo inside Pillow's wheel).
        patch = full.crop((40, 40, 104, 104))
        patch.save(out / f"decode_{k}.png")
        cases.append({"op": "decode", "photo": path.name, "out": f"decode_{k}.png", "x": 40, "y": 40,
                      "width": full.width, "height": full.height})
        # Resize straight from the full-resolution photo (what RandomResizedCrop does).
        for j, (box, size) in enumerate([((17, 33, 17 + 301, 33 + 250), (64, 56)),
                                         ((100, 80, 100 + 45, 80 + 30), (60, 40))]):
            box = (box[0], box[1], min(box[2], full.width), min(box[3], full.height))
            r = full.crop(box).resize(size, Image.BILINEAR)
            name = f"rrc_{k}_{j}.png"
            r.save(out / name)
            cases.append({"op": "crop_resize_full", "photo": path.name, "box": list(box), "size": list(size),
                          "out": name})
        src = full.resize(SRC_SIZE, Image.BILINEAR)
        src.save(out / f"src_{k}.png")
        def emit(op, img, **params):
            name = f"{op}_{k}_{len([c for c in cases if c['op'] == op and c['src'] == k])}.png"
            img.save(out / name)
            cases.append({"op": op, "src": k, "out": name, **params})
        for box, size in [((10, 5, 130 - 10, 105 - 5), (64, 48)), ((30, 20, 55, 50), (64, 64)),
                          ((0, 0, 128, 96), (100, 75)), ((3, 7, 99, 88), (96, 41))]:
            emit("resize", src.crop(box).resize(size, Image.BILINEAR) if box[2] <= 128 and box[3] <= 96
                 else src.crop((box[0], box[1], min(box[2], 128), min(box[3], 96))).resize(size, Image.BILINEAR),
                 box=[box[0], box[1], min(box[2], 128), min(box[3], 96)], size=list(size))
        for f in (0.6, 1.4):
            emit("brightness", ImageEnhance.Brightness(src).enhance(f), factor=f)
            emit("contrast", ImageEnhance.Contrast(src).enhance(f), factor=f)
            emit("saturation", ImageEnhance.Color(src).enhance(f), factor=f)
        for h in (-0.1, 0.07, 0.5):
            emit("hue", adjust_hue(src, h), factor=h)
        emit("grayscale", grayscale3(src))
        emit("solarize", ImageOps.solarize(src, 128), threshold=128)
        for s in (0.1, 0.5, 1.3, 2.0):
            emit("blur", src.filter(ImageFilter.GaussianBlur(radius=s)), sigma=s)
        emit("flip", src.transpose(Image.FLIP_LEFT_RIGHT))
    # Odd JPEGs found in real ImageNet: CMYK (Adobe, stored inverted) and greyscale. Pillow's
    # decode of each, as RGB, is the expected output.
    small = Image.open(find(photos, PHOTOS[0])).convert("RGB").resize((64, 48), Image.BILINEAR)
    small.convert("CMYK").save(out / "cmyk.jpg", quality=90)
    Image.open(out / "cmyk.jpg").convert("RGB").save(out / "cmyk_rgb.png")
    small.convert("L").save(out / "gray.jpg", quality=90)
    Image.open(out / "gray.jpg").convert("RGB").save(out / "gray_rgb.png")
    cases.append({"op": "decode_file", "file": "cmyk.jpg", "out": "cmyk_rgb.png"})
    cases.append({"op": "decode_file", "file": "gray.jpg", "out": "gray_rgb.png"})
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    hue_all_colours(out)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
