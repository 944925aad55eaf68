#!/usr/bin/env python3
"""The MoCo v2 training step of `trainer-bench` in PyTorch, for a side-by-side ms/step:
EMA of the key encoder, query forward + backward, key forward in 2 shuffled sub-batches (BN per
sub-batch), InfoNCE against a 4096-key queue, SGD (momentum 0.9, wd 1e-4), loss read back.
torchvision's resnet18/50 with fc replaced by the MoCo v2 MLP.

    python tests/reference/torch_step.py --arch r18 --res 112 --batch 32 --threads 2 [--cuda]
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


def encoder(arch):
    net = getattr(torchvision.models, "resnet18" if arch == "r18" else "resnet50")(zero_init_residual=True)
    dim = net.fc.in_features
    net.fc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 128))
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="r18")
    ap.add_argument("--res", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.cuda else "cpu")
    torch.manual_seed(0)
    q_enc = encoder(a.arch).to(dev)
    k_enc = copy.deepcopy(q_enc)
    for p in k_enc.parameters():
        p.requires_grad = False
    queue = F.normalize(torch.randn(4096, 128, device=dev), dim=1)
    opt = torch.optim.SGD(q_enc.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    x0 = torch.randn(a.batch, 3, a.res, a.res, device=dev)
    x1 = torch.randn(a.batch, 3, a.res, a.res, device=dev)
    times = []
    for step in range(a.warmup + a.steps):
        t = time.perf_counter()
        with torch.no_grad():
            for pk, pq in zip(k_enc.parameters(), q_enc.parameters()):
                pk.mul_(0.999).add_(pq.detach(), alpha=0.001)
        q = F.normalize(q_enc(x0), dim=1)
        with torch.no_grad():
            perm = torch.randperm(a.batch, device=dev)
            half = a.batch // 2
            xs = x1[perm]
            k = torch.cat([k_enc(xs[:half]), k_enc(xs[half:])])
            k = F.normalize(k[torch.argsort(perm)], dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / 0.2
        loss = F.cross_entropy(logits, torch.zeros(a.batch, dtype=torch.long, device=dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        queue = torch.cat([k, queue[: 4096 - a.batch]])
        value = loss.item()
        if step >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    s = sorted(times)
    print(json.dumps({"impl": "pytorch-" + ("cuda" if a.cuda else "cpu"), "arch": a.arch, "res": a.res, "batch": a.batch,
                      "median_ms": s[len(s) // 2], "times_ms": times, "loss": value, "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
