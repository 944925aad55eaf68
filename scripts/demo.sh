#!/usr/bin/env bash
# The built-in demo: sets up, builds, draws its own small image set (scenes of circles, squares and
# triangles, with their label maps), pretrains a ResNet-18 with MoCo v2 through the real loader
# daemon -> shared-memory ring -> trainer pair (`launch`), then evaluates it (`evaluate`):
# fine-tunes an FCN on the scenes' label maps from the pretrained backbone and from random init,
# validates both, and prints "mIoU: pretrained X vs random init Y". CPU only.
set -euo pipefail
cd "$(dirname "$0")/.."
# --libtorch: the trainer's default CPU backend is libtorch (burn-tch; BENCHMARKS.md), a 0.9 GB
# CPU-only install under .libtorch/.
bash scripts/setup.sh --libtorch
source scripts/env-libtorch.sh
echo "demo: building (release; the first build takes several minutes)" >&2
cargo build -q --release -p loader --bin loader -p trainer --features trainer/tch --bin trainer \
  -p tools --bin launch --bin make-demo-data --bin evaluate --bin export-weights
./target/release/make-demo-data --out runs/demo-data/images --count 96 \
  --voc runs/demo-data/voc --voc-train 64 --voc-val 16
RUST_LOG=${RUST_LOG:-warn} ./target/release/launch --config config/presets/demo.ron --out-dir runs/demo
python3 - <<'PY'
import json, math
l = [json.loads(x)["loss"] for x in open("runs/demo/metrics.jsonl")]
queue, batch = 64, 16
full = queue // batch  # steps until the queue holds only real keys
k = max(1, (len(l) - full) // 4)
print(f"demo: {len(l)} MoCo v2 steps. Once the queue is full of real keys (step {full}), the loss goes "
      f"from {sum(l[full:full + k]) / k:.3f} (first {k} steps; chance = ln(1 + {queue}) = {math.log(1 + queue):.3f}) "
      f"to {sum(l[-k:]) / k:.3f} (last {k}).")
print("demo: checkpoint runs/demo/last.ckpt, metrics runs/demo/metrics.jsonl, plot runs/demo/loss.png")
PY
echo "demo: evaluating on the scenes' segmentation (fine-tuning twice: pretrained and random init)" >&2
RUST_LOG=${RUST_LOG:-warn} ./target/release/evaluate --config config/presets/demo.ron \
  --backbone runs/demo/last.ckpt --out-dir runs/demo-eval | grep -v '^\[' || exit 1
# The pretrained backbone for PyTorch (README, "Use your backbone elsewhere").
./target/release/export-weights --from runs/demo/last.ckpt --format torchvision \
  --out runs/demo/export/resnet18_torchvision.pth
