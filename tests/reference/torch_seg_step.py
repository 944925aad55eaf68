#!/usr/bin/env python3
"""The segmentation fine-tuning step of `trainer-bench --method seg` in PyTorch, for a side-by-side
ms/step: mmseg's fcn_r{18,50}-d8 — torchvision's ResNet with layer3/layer4 dilated (output stride
8; replace_stride_with_dilation, which is mmseg's contract_dilation layout), FCNHead (2 convs,
concat_input, dropout 0.1) on C5 and an auxiliary FCNHead (1 conv) on C4 at weight 0.4, 21 classes
(tests/reference/make_seg_head_fixtures.py has the heads) — logits upsampled bilinearly to the crop,
cross-entropy with ignore 255, SGD (momentum 0.9, wd 5e-4), loss read back.

    .venv-torch/bin/python tests/reference/torch_seg_step.py --arch r18 --res 256 --batch 4 --threads 2
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from make_seg_head_fixtures import FCNHead  # noqa: E402


class Segmentor(torch.nn.Module):
    def __init__(self, arch):
        super().__init__()
        fn = torchvision.models.resnet18 if arch == "r18" else torchvision.models.resnet50
        if arch == "r18":
            # torchvision's BasicBlock refuses dilation; dilate the R18 by hand, in our layout
            # (trainer/src/nn/resnet.rs): stride 1 in layer3/layer4, their first block at the
            # previous dilation (1, 2), the others at 2 and 4.
            net = fn()
            for layer, d in ((net.layer3, 2), (net.layer4, 4)):
                for i, b in enumerate(layer):
                    first = d // 2 if i == 0 else d
                    b.conv1.stride = (1, 1)
                    b.conv1.dilation, b.conv1.padding = (first, first), (first, first)
                    b.conv2.dilation, b.conv2.padding = (first, first), (first, first)
                    if b.downsample is not None:
                        b.downsample[0].stride = (1, 1)
        else:
            net = fn(replace_stride_with_dilation=[False, True, True])
        self.net = net
        c4, c5 = (256, 512) if arch == "r18" else (1024, 2048)
        ch, aux = (128, 64) if arch == "r18" else (512, 256)
        self.decode = FCNHead(c5, ch, 2, True, 21)
        self.aux = FCNHead(c4, aux, 1, False, 21)

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        c4 = n.layer3(n.layer2(n.layer1(x)))
        c5 = n.layer4(c4)
        return self.decode(c5), self.aux(c4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="r18")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.cuda else "cpu")
    torch.manual_seed(0)
    model = Segmentor(a.arch).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.res, a.res, device=dev)
    y = torch.randint(0, 21, (a.batch, a.res, a.res), device=dev)
    y[torch.rand(y.shape, device=dev) < 0.1] = 255
    times = []
    for step in range(a.warmup + a.steps):
        t = time.perf_counter()
        dec, aux = model(x)
        up = lambda z: F.interpolate(z, size=(a.res, a.res), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up(dec), y, ignore_index=255) + 0.4 * F.cross_entropy(up(aux), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = loss.item()
        if step >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "impl": "pytorch", "arch": a.arch, "res": a.res, "batch": a.batch,
        "median_ms": times[len(times) // 2], "times_ms": times, "last_loss": value,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
