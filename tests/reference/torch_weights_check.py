#!/usr/bin/env python3
"""PyTorch's side of the weight export/import checks (trainer/tests/weights_export.rs runs it).

Subcommands:

  key-fixtures OUT_DIR
      Writes the key names and shapes detectron2 and mmsegmentation expect for ResNet-50 (and
      SoCo's R50-FPN with its 4conv1fc box head), derived from each framework's own module
      structure — not by renaming torchvision's keys — so the exporter is checked against an
      independent account. Pure Python; no framework installed:
        detectron2 (modeling/backbone/resnet.py, fpn.py, roi_heads/box_head.py): BasicStem
          `stem.conv1` (Conv2d with `norm`), stages `res2..res5` of BottleneckBlocks `conv1..3`
          (each with `.norm`) and a `shortcut` (+ `.norm`) in the first block of each stage; FPN
          `fpn_lateral{2..5}` / `fpn_output{2..5}` (with norm, so no bias); FastRCNNConvFCHead
          `conv{1..4}` (+ `.norm`) and `fc1` (weight, bias). Norm = SyncBN (SoCo's and MoCo's
          detection configs): weight, bias, running_mean, running_var, num_batches_tracked.
        mmsegmentation (mmseg/models/backbones/resnet.py, style='pytorch', no deep stem):
          `backbone.conv1`, `backbone.bn1` (norm1_name), `backbone.layer{1..4}.{i}` Bottlenecks
          `conv1..3` / `bn1..3`, `downsample.0` (conv) / `downsample.1` (BN); BN buffers as torch.

  torchvision --arch resnet18|resnet50 --weights F.pth --input X.f32 --shape N,C,H,W --features Y.f32
      torch.load(weights_only=True), torchvision.models.<arch>() with fc = Identity,
      load_state_dict(strict=True), eval-mode C5 features on X compared with ours (Y):
      max |a - b| / max |b| must be <= 1e-4.

  make-moco --arch A --out F.pth.tar --input X.f32 --shape ... --features-out Y.f32
      A MoCo v2-style checkpoint from torchvision's module names (main_moco.py's layout:
      {'epoch', 'arch', 'state_dict': module.encoder_q.* with the 2-layer MLP fc.0/fc.2,
      module.encoder_k.*, module.queue, module.queue_ptr}, 'optimizer'}), weights and BN
      statistics random (fixed seed), and encoder_q's C5 features on X.

  detectron2 --arch resnet50 [--fpn] --weights F.pkl --input X.f32 --shape ... --features Y.f32
      Loads the .pkl as detectron2's Checkpointer does (pickle, latin1, numpy arrays), checks
      `matching_heuristics`, the exact key set and shapes of key-fixtures, then maps the backbone
      back to torchvision's names and compares features as above.

  mmseg --arch resnet50 --weights F.pth --input ... --features Y.f32
      torch.load like mmengine's CheckpointLoader, takes `state_dict`, checks the exact keys and
      shapes, strips `backbone.` and compares features as above.

Each check prints one JSON line and exits 1 on a mismatch.
"""
import argparse
import json
import pickle
import sys

try:
    import numpy as np  # not needed by key-fixtures
except ImportError:
    np = None

BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet50": [3, 4, 6, 3]}
BN_D2 = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def bn(prefix, c):
    return [(f"{prefix}.{p}", [] if p == "num_batches_tracked" else [c]) for p in BN_D2]


def detectron2_keys(arch, fpn):
    """detectron2's ResNet (+ FPN + box head) parameter names, from its module structure."""
    bottleneck = arch != "resnet18"
    keys = [("stem.conv1.weight", [64, 3, 7, 7])] + bn("stem.conv1.norm", 64)
    cin = 64
    for s, n in enumerate(BLOCKS[arch]):
        width = 64 * 2**s
        cout = width * 4 if bottleneck else width
        for i in range(n):
            p = f"res{s + 2}.{i}"
            if i == 0 and cin != cout:
                keys += [(f"{p}.shortcut.weight", [cout, cin, 1, 1])] + bn(f"{p}.shortcut.norm", cout)
            if bottleneck:
                convs = [(1, width, cin, 1), (2, width, width, 3), (3, cout, width, 1)]
            else:
                convs = [(1, width, cin, 3), (2, cout, width, 3)]
            for k, co, ci, ks in convs:
                keys += [(f"{p}.conv{k}.weight", [co, ci, ks, ks])] + bn(f"{p}.conv{k}.norm", co)
            cin = cout
    if fpn:
        ins = [256, 512, 1024, 2048]
        for lvl, c in zip(range(2, 6), ins):
            keys += [(f"fpn_lateral{lvl}.weight", [256, c, 1, 1])] + bn(f"fpn_lateral{lvl}.norm", 256)
            keys += [(f"fpn_output{lvl}.weight", [256, 256, 3, 3])] + bn(f"fpn_output{lvl}.norm", 256)
        for k in range(1, 5):
            keys += [(f"box_head.conv{k}.weight", [256, 256, 3, 3])] + bn(f"box_head.conv{k}.norm", 256)
        keys += [("box_head.fc1.weight", [1024, 256 * 7 * 7]), ("box_head.fc1.bias", [1024])]
    return keys


def mmseg_keys(arch):
    """mmseg's ResNet (style='pytorch') names under the segmentor's `backbone.`."""
    bottleneck = arch != "resnet18"
    keys = [("conv1.weight", [64, 3, 7, 7])] + bn("bn1", 64)
    cin = 64
    for s, n in enumerate(BLOCKS[arch]):
        width = 64 * 2**s
        cout = width * 4 if bottleneck else width
        for i in range(n):
            p = f"layer{s + 1}.{i}"
            if bottleneck:
                convs = [(1, width, cin, 1), (2, width, width, 3), (3, cout, width, 1)]
            else:
                convs = [(1, width, cin, 3), (2, cout, width, 3)]
            for k, co, ci, ks in convs:
                keys += [(f"{p}.conv{k}.weight", [co, ci, ks, ks])] + bn(f"{p}.bn{k}", co)
            if i == 0 and (cin != cout or s > 0):
                keys += [(f"{p}.downsample.0.weight", [cout, cin, 1, 1])] + bn(f"{p}.downsample.1", cout)
            cin = cout
    return [("backbone." + k, s) for k, s in keys]


def d2_to_torchvision(k):
    if k.startswith("stem."):
        k = k[len("stem."):]
    else:
        k = "layer%d%s" % (int(k[3]) - 1, k[4:])
    k = k.replace("shortcut.norm", "downsample.1").replace("shortcut", "downsample.0")
    for t in (1, 2, 3):
        k = k.replace(f"conv{t}.norm", f"bn{t}")
    return k


def load_input(args):
    shape = [int(v) for v in args.shape.split(",")]
    return np.fromfile(args.input, dtype="<f4").reshape(shape)


def c5(model, x):
    import torch

    with torch.no_grad():
        m = model.eval()
        y = m.maxpool(m.relu(m.bn1(m.conv1(torch.from_numpy(x)))))
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            y = layer(y)
    return y.numpy()


def compare(name, ours_path, theirs, extra, keys_ok=True):
    """Prints the check's JSON line; ok = keys as expected and features within 1e-4."""
    ours = np.fromfile(ours_path, dtype="<f4").reshape(theirs.shape)
    rel = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))
    ok = keys_ok and rel <= 1e-4
    print(json.dumps({"check": name, "ok": ok, "max_rel_diff": rel, **extra}))
    return ok


def torchvision_model(arch, sd):
    import torch
    import torchvision

    model = getattr(torchvision.models, arch)()
    model.fc = torch.nn.Identity()
    model.load_state_dict(sd, strict=True)
    return model


def check_keys(got, want):
    got_d = {k: list(v.shape) for k, v in got.items()}
    want_d = dict(want)
    missing = sorted(set(want_d) - set(got_d))
    extra = sorted(set(got_d) - set(want_d))
    wrong = sorted(k for k in set(want_d) & set(got_d) if got_d[k] != want_d[k])
    return missing, extra, wrong


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--weights")
    ap.add_argument("--out")
    ap.add_argument("--input")
    ap.add_argument("--shape")
    ap.add_argument("--features")
    ap.add_argument("--features-out")
    ap.add_argument("--fpn", action="store_true")
    args = ap.parse_args()

    if args.cmd == "key-fixtures":
        for name, keys in [
            ("detectron2_r50_keys.json", detectron2_keys("resnet50", False)),
            ("detectron2_r50_fpn_soco_keys.json", detectron2_keys("resnet50", True)),
            ("mmseg_r50_keys.json", mmseg_keys("resnet50")),
        ]:
            with open(f"{args.out_dir}/{name}", "w") as f:
                json.dump(dict(keys), f, indent=0)
        return 0

    import torch

    if args.cmd == "torchvision":
        sd = torch.load(args.weights, map_location="cpu", weights_only=True)
        model = torchvision_model(args.arch, sd)
        ok = compare("torchvision strict load + C5 features", args.features, c5(model, load_input(args)),
                     {"arch": args.arch, "tensors": len(sd)})
        return 0 if ok else 1

    if args.cmd == "make-moco":
        import torchvision

        torch.manual_seed(0)
        model = getattr(torchvision.models, args.arch)()
        # Random BN statistics and affine parameters, so eval-mode features depend on all four.
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                    m.num_batches_tracked.fill_(5004)
        dim = model.fc.in_features
        model.fc = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, 128))
        sd = {}
        for enc in ("encoder_q", "encoder_k"):
            for k, v in model.state_dict().items():
                sd[f"module.{enc}.{k}"] = v.clone()
        sd["module.queue"] = torch.nn.functional.normalize(torch.randn(128, 4096), dim=0)
        sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
        opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
        torch.save({"epoch": 200, "arch": args.arch, "state_dict": sd, "optimizer": opt.state_dict()}, args.out)
        c5(model, load_input(args)).astype("<f4").tofile(args.features_out)
        print(json.dumps({"made": args.out, "tensors": len(sd)}))
        return 0

    if args.cmd == "detectron2":
        with open(args.weights, "rb") as f:
            data = pickle.load(f, encoding="latin1")  # as fvcore/detectron2's Checkpointer
        ok = data.get("matching_heuristics") is True and "__author__" in data
        model = data["model"]
        missing, extra, wrong = check_keys(model, detectron2_keys(args.arch, args.fpn))
        ok = ok and not (missing or extra or wrong) and all(isinstance(v, np.ndarray) for v in model.values())
        backbone = {d2_to_torchvision(k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.items()
                    if k.startswith(("stem.", "res"))}
        tv = torchvision_model(args.arch, backbone)
        ok = compare("detectron2 keys + features", args.features, c5(tv, load_input(args)),
                     {"tensors": len(model), "missing": missing[:3], "extra": extra[:3], "wrong_shape": wrong[:3]}, ok)
        return 0 if ok else 1

    if args.cmd == "mmseg":
        ck = torch.load(args.weights, map_location="cpu", weights_only=True)
        sd = ck["state_dict"]
        missing, extra, wrong = check_keys(sd, mmseg_keys(args.arch))
        ok = not (missing or extra or wrong) and "meta" in ck
        tv = torchvision_model(args.arch, {k[len("backbone."):]: v for k, v in sd.items()})
        ok = compare("mmseg keys + features", args.features, c5(tv, load_input(args)),
                     {"tensors": len(sd), "missing": missing[:3], "extra": extra[:3], "wrong_shape": wrong[:3]}, ok)
        return 0 if ok else 1

    print(f"unknown command {args.cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
