#!/usr/bin/env python3
"""The segmentation fine-tuning step of `trainer-bench --method seg` in PyTorch, for a side-by-side
ms/step: mmseg's fcn_r{18,50}-d8 — torchvision's ResNet with layer3/layer4 dilated (output stride
8; replace_stride_with_dilation, which is mmseg's contract_dilation layout), FCNHead (2 convs,
concat_input, dropout 0.1) on C5 and an auxiliary FCNHead (1 conv) on C4 at weight 0.4, 21 classes
(tests/reference/make_seg_head_fixtures.py has the heads) — logits upsampled bilinearly to the crop,
cross-entropy with ignore 255, SGD (momentum 0.9, wd 5e-4), loss read back.

    .venv-torch/bin/python tests/reference/torch_seg_step.py --arch r18 --res 256 --batch 4 --threads 2

With --proto, the step of `trainer-bench --method seg-proto`: the FCN head's classifier becomes the
first 1×1 conv of ProtoSeg's projection and `ProtoHead` below follows it — a transcription of
tfzhou/ProtoSeg's `HRNet_W48_Proto` forward, `prototype_learning`, `distributed_sinkhorn` and the
PPC/PPD losses (METHODS.md §5), with the same weights (0.01, 0.001) and 10 prototypes per class.
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


def l2n(x, dim=-1):
    return F.normalize(x, p=2, dim=dim)


def distributed_sinkhorn(out, sinkhorn_iterations=3, epsilon=0.05):
    L = torch.exp(out / epsilon).t()
    B, K = L.shape[1], L.shape[0]
    L /= torch.sum(L)
    for _ in range(sinkhorn_iterations):
        L /= torch.sum(L, dim=1, keepdim=True)
        L /= K
        L /= torch.sum(L, dim=0, keepdim=True)
        L /= B
    L *= B
    L = L.t()
    indexs = torch.argmax(L, dim=1)
    L = F.gumbel_softmax(L, tau=0.5, hard=True)
    return L, indexs


class ProtoHead(torch.nn.Module):
    """Everything after the projection's first 1×1 conv (the FCN head's conv_seg, D → D)."""

    def __init__(self, dim, classes, per_class=10, gamma=0.999):
        super().__init__()
        self.proj = torch.nn.Conv2d(dim, dim, 1)
        self.feat_norm = torch.nn.LayerNorm(dim)
        self.mask_norm = torch.nn.LayerNorm(classes)
        self.prototypes = torch.nn.Parameter(torch.zeros(classes, per_class, dim), requires_grad=False)
        torch.nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.k, self.m, self.gamma = classes, per_class, gamma

    def prototype_learning(self, _c, out_seg, gt_seg, masks):
        pred_seg = torch.max(out_seg, 1)[1]
        mask = gt_seg == pred_seg.view(-1)
        proto_logits = torch.mm(_c, self.prototypes.view(-1, self.prototypes.shape[-1]).t())
        proto_target = gt_seg.clone().float()
        protos = self.prototypes.data.clone()
        for k in range(self.k):
            init_q = masks[..., k][gt_seg == k, ...]
            if init_q.shape[0] == 0:
                continue
            q, indexs = distributed_sinkhorn(init_q)
            m_k = mask[gt_seg == k]
            c_k = _c[gt_seg == k, ...]
            m_q = q * m_k.unsqueeze(1).float()
            c_q = c_k * m_k.unsqueeze(1).float()
            f = m_q.transpose(0, 1) @ c_q
            n = torch.sum(m_q, dim=0)
            if torch.sum(n) > 0:
                f = l2n(f)
                protos[k, n != 0, :] = self.gamma * protos[k, n != 0, :] + (1 - self.gamma) * f[n != 0, :]
            proto_target[gt_seg == k] = indexs.float() + self.m * k
        self.prototypes = torch.nn.Parameter(l2n(protos), requires_grad=False)
        return proto_logits, proto_target

    def forward(self, x, gt):
        b, _, h, w = x.shape
        c = l2n(self.proj(F.relu(x)), dim=1)
        _c = c.permute(0, 2, 3, 1).reshape(b * h * w, -1)
        _c = l2n(self.feat_norm(_c))
        self.prototypes.data.copy_(l2n(self.prototypes))
        masks = torch.einsum("nd,kmd->nmk", _c, self.prototypes)
        out_seg = self.mask_norm(torch.amax(masks, dim=1))
        out_seg = out_seg.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        gt_seg = F.interpolate(gt[:, None].float(), size=(h, w), mode="nearest").view(-1)
        gt_seg[gt_seg == 255] = -1
        logits, target = self.prototype_learning(_c, out_seg, gt_seg, masks)
        return out_seg, logits, target


class Segmentor(torch.nn.Module):
    def __init__(self, arch, proto=False):
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
        self.decode = FCNHead(c5, ch, 2, True, ch if proto else 21)
        self.aux = FCNHead(c4, aux, 1, False, 21)
        self.proto = ProtoHead(ch, 21) if proto else None

    def forward(self, x, gt=None):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        c4 = n.layer3(n.layer2(n.layer1(x)))
        c5 = n.layer4(c4)
        if self.proto is None:
            return self.decode(c5), self.aux(c4), None
        seg, logits, target = self.proto(self.decode(c5), gt)
        return seg, self.aux(c4), (logits, target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="r18")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--proto", action="store_true", help="ProtoSeg's prototype head")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.cuda else "cpu")
    torch.manual_seed(0)
    model = Segmentor(a.arch, a.proto).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.res, a.res, device=dev)
    y = torch.randint(0, 21, (a.batch, a.res, a.res), device=dev)
    y[torch.rand(y.shape, device=dev) < 0.1] = 255
    times = []
    for step in range(a.warmup + a.steps):
        t = time.perf_counter()
        dec, aux, proto = model(x, y)
        up = lambda z: F.interpolate(z, size=(a.res, a.res), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up(dec), y, ignore_index=255) + 0.4 * F.cross_entropy(up(aux), y, ignore_index=255)
        if proto is not None:
            logits, target = proto
            ppc = F.cross_entropy(logits, target.long(), ignore_index=-1)
            keep = target != -1
            ppd = (1 - torch.gather(logits[keep], 1, target[keep][:, None].long())).pow(2).mean()
            loss = loss + 0.01 * ppc + 0.001 * ppd
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = loss.item()
        if step >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "impl": "pytorch", "proto": a.proto, "arch": a.arch, "res": a.res, "batch": a.batch,
        "median_ms": times[len(times) // 2], "times_ms": times, "last_loss": value,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
