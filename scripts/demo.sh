#!/usr/bin/env bash
# The built-in demo: sets up, builds, and runs the main job on small data made here.
# Today: a loader-side producer process and a trainer-side consumer process exchange 200 seeded
# batches through a shared-memory ring; the consumer verifies every byte and the order.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build -q -p e2e-tests --bin ring-peer
peer=target/debug/ring-peer
name="demo-ring-$$"
$peer produce --name "$name" --batches 200 --batch-size 16 --side 224 --threads 2 > /dev/null &
prod=$!
$peer consume --name "$name" --batches 200 --batch-size 16 --side 224 | tail -n 1
wait $prod
echo "demo: ok (segment /dev/shm/$name removed: $([ -e /dev/shm/$name ] && echo no || echo yes))"
