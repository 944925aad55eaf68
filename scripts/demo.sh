#!/usr/bin/env bash
# The built-in demo: sets up, builds, and runs the main job on small data it makes itself.
# Today: the loader daemon serves MoCo v2 two-view batches of a generated image set through a
# shared-memory ring to a consumer process that checks every batch. (Grows into pretrain +
# evaluate as the trainer lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build -q --release -p loader --bin loader -p e2e-tests --bin ring-inspect -p tools --bin make-demo-data
data=runs/demo-data
./target/release/make-demo-data --out "$data/images" --count 96
cfg=config/presets/demo.ron
name="demo-$$"
./target/release/loader --config "$cfg" --shm-name "$name" --epochs 2 &
loader=$!
./target/release/ring-inspect --config "$cfg" --shm-name "$name" | tail -n 1
wait $loader
echo "demo: ok (segment /dev/shm/$name removed: $([ -e /dev/shm/$name ] && echo no || echo yes))"
