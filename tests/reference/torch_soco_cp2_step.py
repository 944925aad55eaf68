#!/usr/bin/env python3
"""The SoCo and CP² training steps of `trainer-bench --method soco|cp2` in PyTorch, for a
side-by-side ms/step on the same synthetic input (METHODS.md §3.4–3.6, §4.2–4.4).

SoCo: torchvision ResNet → FPN (BN in lateral and output convs, nearest upsampling) → roi_align
(aligned, 7×7) of every box on P2–P5 → 4conv1fc head → projector → predictor (BN1d); EMA target
without predictor; V1 with 8 boxes/image, V2 and V3 (half resolution) with 4; the symmetrised box
BYOL loss; SGD momentum step (LARS scaling is a few elementwise ops per tensor; omitted).
CP²: torchvision ResNet with a dilated layer4 (OS16) → ASPP (512, rates 6/12/18) → projection
512→512→128; EMA key network on 2 shuffled sub-batches; instance (InfoNCE, 4096-key queue, T 0.2)
plus 0.2 × dense loss; SGD.

    python tests/reference/torch_soco_cp2_step.py --method soco --arch r50 --res 64 --batch 8 --threads 2
"""
import argparse
import copy
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import roi_align


def conv_bn(cin, cout, k, dilation=1, relu=False):
    layers = [nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def mlp_bn(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, o))


class Backbone(nn.Module):
    def __init__(self, arch, dilate=False):
        super().__init__()
        kw = {"replace_stride_with_dilation": [False, False, True]} if dilate else {}
        r = getattr(torchvision.models, "resnet18" if arch == "r18" else "resnet50")(zero_init_residual=True, **kw)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layers = nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])

    def forward(self, x):
        x = self.stem(x)
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class SocoNet(nn.Module):
    def __init__(self, arch, ch=256, fc=1024, hid=4096, dim=256):
        super().__init__()
        self.backbone = Backbone(arch)
        cins = [64, 128, 256, 512] if arch == "r18" else [256, 512, 1024, 2048]
        self.lateral = nn.ModuleList([conv_bn(c, ch, 1) for c in cins])
        self.output = nn.ModuleList([conv_bn(ch, ch, 3) for _ in cins])
        self.head = nn.Sequential(*[conv_bn(ch, ch, 3, relu=True) for _ in range(4)])
        self.fc = nn.Linear(ch * 49, fc)
        self.projector = mlp_bn(fc, hid, dim)

    def forward(self, x, boxes, levels):
        """boxes [r, 5] = (image, x1, y1, x2, y2) normalised; levels [r] → projections [r, dim]."""
        c = self.backbone(x)
        inner = [l(f) for l, f in zip(self.lateral, c)]
        for i in range(2, -1, -1):
            inner[i] = inner[i] + F.interpolate(inner[i + 1], size=inner[i].shape[-2:], mode="nearest")
        pyramid = [o(f) for o, f in zip(self.output, inner)]
        pooled = []
        for p in pyramid:
            h, w = p.shape[-2:]
            b = boxes.clone()
            b[:, 1::2] *= w
            b[:, 2::2] *= h
            pooled.append(roi_align(p, b, (7, 7), spatial_scale=1.0, sampling_ratio=-1, aligned=True))
        r = boxes.shape[0]
        z = self.projector(F.relu(self.fc(self.head(torch.cat(pooled)).flatten(1))))
        return z[levels * r + torch.arange(r, device=z.device)]


def byol(p, z, ida, idb):
    p, z = F.normalize(p, dim=2), F.normalize(z, dim=2)
    c = (ida[:, :, None] == idb[:, None, :]).float()
    return (-2 * (c * (p @ z.transpose(1, 2))).sum((1, 2)) / (c.sum((1, 2)) + 1e-6)).mean()


def soco_inputs(n, res, dev, g):
    def boxes(k, size):
        xy = torch.rand(n, k, 2, generator=g) * 0.6
        wh = 0.1 + torch.rand(n, k, 2, generator=g) * 0.3
        b = torch.cat([xy, xy + wh], 2)
        side = ((wh[..., 0] * size + 1) * (wh[..., 1] * size + 1)).sqrt()
        lev = (side > 48).long() + (side > 96).long() + (side > 192).long()
        img = torch.arange(n)[:, None].expand(n, k)
        return torch.cat([img[..., None].float(), b], 2).reshape(-1, 5).to(dev), lev.reshape(-1).to(dev)
    ids = torch.tensor([1, 2, 10, 11]).repeat(n, 1).to(dev)
    return [torch.randn(n, 3, r, r, generator=g).to(dev) for r in (res, res, res // 2)], boxes, ids


def step_soco(a, dev):
    g = torch.Generator().manual_seed(0)
    online = SocoNet(a.arch).to(dev)
    predictor = mlp_bn(256, 4096, 256).to(dev)
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad = False
    opt = torch.optim.SGD(list(online.parameters()) + list(predictor.parameters()), lr=0.1, momentum=0.9, weight_decay=1e-5)
    (v1, v2, v3), boxes, ids = soco_inputs(a.batch, a.res, dev, g)
    n = a.batch
    b1, l1 = boxes(8, a.res)
    b2, l2 = boxes(4, a.res)
    b3, l3 = boxes(4, a.res // 2)
    ids1 = torch.cat([ids, ids + 100], 1)

    def step():
        with torch.no_grad():
            for pt, po in zip(target.parameters(), online.parameters()):
                pt.mul_(0.99).add_(po.detach(), alpha=0.01)
        p1 = predictor(online(v1, b1, l1)).reshape(n, 8, -1)
        p2 = predictor(online(v2, b2, l2)).reshape(n, 4, -1)
        p3 = predictor(online(v3, b3, l3)).reshape(n, 4, -1)
        with torch.no_grad():
            z1 = target(v1, b1, l1).reshape(n, 8, -1)
            z2 = target(v2, b2, l2).reshape(n, 4, -1)
            z3 = target(v3, b3, l3).reshape(n, 4, -1)
        loss = (byol(p1[:, :4], z2, ids1[:, :4], ids) + byol(p2, z1[:, :4], ids, ids1[:, :4])
                + byol(p1[:, 4:], z3, ids1[:, 4:], ids) + byol(p3, z1[:, 4:], ids, ids1[:, 4:]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


class Segmentor(nn.Module):
    def __init__(self, arch, ch=512, dim=128):
        super().__init__()
        self.backbone = Backbone(arch, dilate=True)
        cin = 512 if arch == "r18" else 2048
        self.pool = conv_bn(cin, ch, 1, relu=True)
        self.branches = nn.ModuleList([conv_bn(cin, ch, 1, relu=True)] + [conv_bn(cin, ch, 3, d, relu=True) for d in (6, 12, 18)])
        self.bottleneck = conv_bn(5 * ch, ch, 3, relu=True)
        self.proj = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, dim, 1))

    def forward(self, x):
        f = self.backbone(x)[-1]
        h, w = f.shape[-2:]
        pooled = self.pool(f.mean((2, 3), keepdim=True)).expand(-1, -1, h, w)
        y = self.bottleneck(torch.cat([pooled] + [b(f) for b in self.branches], 1))
        y = self.proj(y)
        return F.normalize(y.flatten(2), dim=1)


def step_cp2(a, dev):
    torch.manual_seed(0)
    q_net = Segmentor(a.arch).to(dev)
    k_net = copy.deepcopy(q_net)
    for p in k_net.parameters():
        p.requires_grad = False
    queue = F.normalize(torch.randn(4096, 128, device=dev), dim=1)
    opt = torch.optim.SGD(q_net.parameters(), lr=0.015, momentum=0.9, weight_decay=1e-4)
    n, gs = a.batch, a.res // 16
    x0, x1 = torch.randn(n, 3, a.res, a.res, device=dev), torch.randn(n, 3, a.res, a.res, device=dev)
    r = torch.arange(gs)
    inside = ((r >= gs // 5) & (r < gs - gs // 5)).float()
    m = (inside[:, None] * inside[None, :]).flatten().repeat(n, 1).to(dev)
    state = {"queue": queue}

    def step():
        with torch.no_grad():
            for pk, pq in zip(k_net.parameters(), q_net.parameters()):
                pk.mul_(0.999).add_(pq.detach(), alpha=0.001)
        q = q_net(x0)
        with torch.no_grad():
            perm = torch.randperm(n, device=dev)
            xs = x1[perm]
            k = torch.cat([k_net(xs[: n // 2]), k_net(xs[n // 2:])])[torch.argsort(perm)]
        qb = F.normalize((q * m[:, None]).sum(2), dim=1)
        kb = F.normalize((k * m[:, None]).sum(2), dim=1)
        logits = torch.cat([(qb * kb).sum(1, keepdim=True), qb @ state["queue"].T], 1) / 0.2
        ins = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=dev))
        s = q.transpose(1, 2) @ k
        logsm = F.log_softmax(s, dim=1)
        pos = m[:, :, None] * m[:, None, :]
        dense = (-(logsm * pos).sum((1, 2)) / pos.sum((1, 2))).mean()
        loss = ins + 0.2 * dense
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["queue"] = torch.cat([kb, state["queue"][: 4096 - n]])
        return loss.item()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="soco")
    ap.add_argument("--arch", default="r50")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.cuda else "cpu")
    step = (step_soco if a.method == "soco" else step_cp2)(a, dev)
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        value = step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    s = sorted(times)
    print(json.dumps({"impl": "pytorch-" + ("cuda" if a.cuda else "cpu"), "method": a.method, "arch": a.arch, "res": a.res,
                      "batch": a.batch, "median_ms": s[len(s) // 2], "times_ms": times, "loss": value,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
