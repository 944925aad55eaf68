#!/usr/bin/env python3
"""The SSL4DP training steps of `trainer-bench --method plr|edmoco|edmoco-psp|plmoco|pledmoco` in
PyTorch, for a side-by-side ms/step on the same synthetic input (METHODS.md §9, §1).

Backbone: torchvision ResNet with dilated stages (OS8: layer3 and layer4; OS16: layer4).
Decoders: MoCoFCN (two 3×3 conv-BN-ReLU of 512 at dilation 6) or PSP (adaptive pooling to 1, 2, 3,
6, a 1×1 conv-BN-ReLU of 512 each, bilinear upsampling, concatenation with the input, 3×3
conv-BN-ReLU of 512).
- plr: OS8 + MoCoFCN + 1×1 classifier (4), logits upsampled to the input, per-pixel CE on a 4×4
  grid of patch classes.
- edmoco / edmoco-psp: OS8 + decoder, spatial mean, MLP 512→2048→128; EMA key network on 2
  shuffled sub-batches; InfoNCE (T 0.2) on a 4096-key queue; PSP with the backbone at lr/100.
- plmoco / pledmoco: OS16 (+ MoCoFCN, backbone at lr/100), 1×1-conv MLP →2048→128 per cell,
  every third cell of view 0 unmatched, the others matched to the same cell of view 1; InfoNCE per
  matched cell on a 4096-key queue of cell embeddings (one per image per step).
SGD momentum 0.9, weight decay 1e-4; loss read back.

    python tests/reference/torch_ssl4dp_step.py --method edmoco --arch r50 --res 96 --batch 8 --threads 2
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


def conv_bn_relu(cin, cout, k, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def backbone(arch, os):
    dil = [False, True, True] if os == 8 else [False, False, True]
    r = getattr(torchvision.models, "resnet18" if arch == "r18" else "resnet50")(
        zero_init_residual=True, replace_stride_with_dilation=dil)
    return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4), r.fc.in_features


class Psp(nn.Module):
    def __init__(self, cin, ch):
        super().__init__()
        self.scales = (1, 2, 3, 6)
        self.stages = nn.ModuleList([conv_bn_relu(cin, ch, 1) for _ in self.scales])
        self.bottleneck = conv_bn_relu(cin + 4 * ch, ch, 3)

    def forward(self, x):
        h, w = x.shape[-2:]
        outs = [x] + [F.interpolate(st(F.adaptive_avg_pool2d(x, s)), size=(h, w), mode="bilinear", align_corners=False)
                      for s, st in zip(self.scales, self.stages)]
        return self.bottleneck(torch.cat(outs, 1))


def decoder(kind, cin, ch=512):
    if kind == "psp":
        return Psp(cin, ch)
    return nn.Sequential(conv_bn_relu(cin, ch, 3, 6), conv_bn_relu(ch, ch, 3, 6))


class Net(nn.Module):
    """Backbone → optional decoder → head; `pool` averages before a linear head."""

    def __init__(self, arch, os, dec, head, pool):
        super().__init__()
        self.backbone, c = backbone(arch, os)
        self.decoder = decoder(dec, c) if dec else nn.Identity()
        width = 512 if dec else c
        self.pool = pool
        self.head = head(width)

    def forward(self, x):
        f = self.decoder(self.backbone(x))
        return self.head(f.mean((2, 3)) if self.pool else f)


def sgd(net, lr, encoder_scale):
    enc = list(net.backbone.parameters())
    ids = {id(p) for p in enc}
    rest = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.SGD([{"params": enc, "lr": lr * encoder_scale}, {"params": rest, "lr": lr}],
                           lr=lr, momentum=0.9, weight_decay=1e-4)


def ema(k_net, q_net):
    with torch.no_grad():
        for pk, pq in zip(k_net.parameters(), q_net.parameters()):
            pk.mul_(0.999).add_(pq.detach(), alpha=0.001)


def keys(k_net, x):
    with torch.no_grad():
        n = x.shape[0]
        perm = torch.randperm(n, device=x.device)
        xs = x[perm]
        return torch.cat([k_net(xs[: n // 2]), k_net(xs[n // 2:])])[torch.argsort(perm)]


def infonce(q, k, queue):
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def step_plr(a, dev):
    net = Net(a.arch, 8, "mocofcn", lambda c: nn.Conv2d(c, 4, 1), pool=False).to(dev)
    opt = sgd(net, 0.03, 1.0)
    n, g, p = a.batch, 4, a.res // 4
    x = torch.randn(n, 3, a.res, a.res, device=dev)
    rot = (torch.arange(n * g * g) * 7 % 4).reshape(n, g, g)
    target = rot.repeat_interleave(p, 1).repeat_interleave(p, 2).to(dev)

    def step():
        logits = F.interpolate(net(x), size=(a.res, a.res), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def step_edmoco(a, dev, dec, scale):
    mlp = lambda c: nn.Sequential(nn.Linear(c, 2048), nn.ReLU(inplace=True), nn.Linear(2048, 128))
    q_net = Net(a.arch, 8, dec, mlp, pool=True).to(dev)
    k_net = copy.deepcopy(q_net)
    for p in k_net.parameters():
        p.requires_grad = False
    opt = sgd(q_net, 0.03, scale)
    n = a.batch
    x0, x1 = torch.randn(n, 3, a.res, a.res, device=dev), torch.randn(n, 3, a.res, a.res, device=dev)
    state = {"queue": F.normalize(torch.randn(4096, 128, device=dev), dim=1)}

    def step():
        ema(k_net, q_net)
        q = F.normalize(q_net(x0), dim=1)
        k = F.normalize(keys(k_net, x1), dim=1)
        loss = infonce(q, k, state["queue"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["queue"] = torch.cat([k, state["queue"][: 4096 - n]])
        return loss.item()
    return step


def step_plmoco(a, dev, dec, scale):
    mlp = lambda c: nn.Sequential(nn.Conv2d(c, 2048, 1), nn.ReLU(inplace=True), nn.Conv2d(2048, 128, 1))
    q_net = Net(a.arch, 16, dec, mlp, pool=False).to(dev)
    k_net = copy.deepcopy(q_net)
    for p in k_net.parameters():
        p.requires_grad = False
    opt = sgd(q_net, 0.03, scale)
    n, cells = a.batch, (a.res // 16) ** 2
    x0, x1 = torch.randn(n, 3, a.res, a.res, device=dev), torch.randn(n, 3, a.res, a.res, device=dev)
    rows = torch.arange(n * cells)
    matched = rows[rows % 3 != 0].to(dev)  # view-0 rows with a match: the same cell of view 1
    state = {"queue": F.normalize(torch.randn(4096, 128, device=dev), dim=1)}

    def step():
        ema(k_net, q_net)
        q = F.normalize(q_net(x0), dim=1).flatten(2).transpose(1, 2).reshape(n * cells, -1)
        k = F.normalize(keys(k_net, x1), dim=1).flatten(2).transpose(1, 2).reshape(n * cells, -1)
        loss = infonce(q[matched], k[matched], state["queue"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        pick = torch.arange(n, device=dev) * cells + torch.randint(0, cells, (n,), device=dev)
        state["queue"] = torch.cat([k[pick], state["queue"][: 4096 - n]])
        return loss.item()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="edmoco")
    ap.add_argument("--arch", default="r50")
    ap.add_argument("--res", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.cuda else "cpu")
    torch.manual_seed(0)
    step = {
        "plr": lambda: step_plr(a, dev),
        "edmoco": lambda: step_edmoco(a, dev, "mocofcn", 1.0),
        "edmoco-psp": lambda: step_edmoco(a, dev, "psp", 0.01),
        "plmoco": lambda: step_plmoco(a, dev, None, 1.0),
        "pledmoco": lambda: step_plmoco(a, dev, "mocofcn", 0.01),
    }[a.method]()
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
