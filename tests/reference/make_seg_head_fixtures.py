#!/usr/bin/env python3
"""Reference segmentation heads, written in PyTorch after mmseg 0.x's source (mmseg/models/
decode_heads/{fcn_head,aspp_head,decode_head}.py, mmcv's ConvModule = conv without bias + BN +
ReLU) and the SSL4DP draft's MoCoFCN (two 3x3 conv-BN-ReLU at dilation 6 + classifier):

1. parameter counts of the R50 configurations (fcn_r50-d8: FCNHead 2048->512, 2 convs,
   concat_input, 21 classes, auxiliary FCNHead 1024->256, 1 conv; deeplabv3_r50-d8: ASPPHead
   2048->512, dilations (1, 12, 24, 36)), which trainer/tests/seg_heads.rs writes down;
2. forward passes in eval mode (BN on running statistics, dropout off) of small heads on fixed
   random weights and inputs, plus a bilinear resize (align_corners=False) of the logits, which
   the trainer's heads must match within 1e-4.

Regenerate:  .venv-torch/bin/python tests/reference/make_seg_head_fixtures.py tests/reference/seg_heads.json
(`scripts/setup.sh --torch` makes .venv-torch.)
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvModule(nn.Sequential):
    def __init__(self, cin, cout, k, dilation=1):
        super().__init__(
            nn.Conv2d(cin, cout, k, padding=(k // 2) * dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class FCNHead(nn.Module):
    def __init__(self, cin, channels, num_convs, concat_input, classes):
        super().__init__()
        self.convs = nn.Sequential(*[ConvModule(cin if i == 0 else channels, channels, 3)
                                     for i in range(num_convs)])
        self.concat_input = concat_input
        if concat_input:
            self.conv_cat = ConvModule(cin + channels, channels, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(self.dropout(out))


class ASPPHead(nn.Module):
    def __init__(self, cin, channels, dilations, classes):
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(cin, channels, 1))
        self.aspp_modules = nn.ModuleList(
            [ConvModule(cin, channels, 1 if d == 1 else 3, dilation=d) for d in dilations])
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        pooled = F.interpolate(self.image_pool(x), size=x.shape[2:], mode="bilinear",
                               align_corners=False)
        outs = [pooled] + [m(x) for m in self.aspp_modules]
        return self.conv_seg(self.dropout(self.bottleneck(torch.cat(outs, dim=1))))


class MoCoFCN(nn.Module):
    def __init__(self, cin, channels, classes):
        super().__init__()
        self.convs = nn.Sequential(ConvModule(cin, channels, 3, 6), ConvModule(channels, channels, 3, 6))
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        return self.conv_seg(self.dropout(self.convs(x)))


def count(m):
    return sum(p.numel() for p in m.parameters())


def randomise(m, rng):
    """Fixed random weights, BN statistics included; returns them by name, flattened."""
    state = {}
    for name, t in m.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            v = rng.uniform(0.5, 1.5, t.shape)
        elif name.endswith("running_mean"):
            v = rng.normal(0, 0.2, t.shape)
        elif name.endswith(".weight") and t.dim() == 1:  # BN gamma
            v = rng.uniform(0.5, 1.5, t.shape)
        else:
            v = rng.normal(0, 0.15, t.shape)
        t.copy_(torch.tensor(v, dtype=torch.float32))
        state[name] = [float(x) for x in t.flatten()]
    return state


def main(out):
    counts = {
        "fcn_r50_d8": count(FCNHead(2048, 512, 2, True, 21)),
        "fcn_r50_d8_aux": count(FCNHead(1024, 256, 1, False, 21)),
        "aspp_r50_d8": count(ASPPHead(2048, 512, (1, 12, 24, 36), 21)),
        "mocofcn_r50": count(MoCoFCN(2048, 512, 21)),
    }
    rng = np.random.default_rng(2026)
    cin, ch, classes = 6, 4, 5
    x = torch.tensor(rng.normal(0, 1, (2, cin, 9, 11)), dtype=torch.float32)
    heads = {
        "fcn": FCNHead(cin, ch, 2, True, classes),
        "fcn_aux": FCNHead(cin, ch, 1, False, classes),
        "aspp": ASPPHead(cin, ch, (1, 2, 3, 4), classes),
        "mocofcn": MoCoFCN(cin, ch, classes),
    }
    cases = {}
    with torch.no_grad():
        for name, m in heads.items():
            m.eval()
            weights = randomise(m, rng)
            y = m(x)
            cases[name] = {
                "weights": weights,
                "shapes": {k: list(v.shape) for k, v in m.state_dict().items()},
                "output": [float(v) for v in y.flatten()],
                "output_shape": list(y.shape),
            }
        up = F.interpolate(m(x), size=(17, 23), mode="bilinear", align_corners=False)
    fixture = {
        "param_counts": counts,
        "input": [float(v) for v in x.flatten()],
        "input_shape": list(x.shape),
        "classes": classes,
        "channels": ch,
        "cases": cases,
        "resize_of": "mocofcn",
        "resized": [float(v) for v in up.flatten()],
        "resized_shape": list(up.shape),
    }
    with open(out, "w") as f:
        json.dump(fixture, f)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/seg_heads.json")
