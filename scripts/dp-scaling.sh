#!/usr/bin/env bash
# Data-parallel scaling on this CPU (issue 19's figure): MoCo v2 R-18 on the shared photos, the
# same global batch either as 1 rank × 2 trainer threads or as 2 ranks × 1 thread (c10d / Gloo),
# in paired rounds; prints the median step time of each and their ratio, with each launch's peak
# RSS (the largest process of the run, from GNU time). Usage:
#   scripts/dp-scaling.sh [ROUNDS] [STEPS] [GLOBAL_BATCH] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2} STEPS=${2:-14} BATCH=${3:-32} SIZE=${4:-128}
PHOTOS=${PHOTOS:-../shared/data/photos}
# shellcheck source=scripts/env-libtorch.sh
source scripts/env-libtorch.sh
cargo build -q --release -p tools --bin launch -p loader --bin loader -p trainer --bin trainer --features trainer/tch
OUT=$(mktemp -d)
cfg() { # ranks → config with the per-rank batch and threads
    local ranks=$1 per=$((BATCH / $1)) threads=$((2 / $1)) workers=$((2 / $1))
    cat > "$OUT/r$ranks.ron" <<RON
RunConfig(
    name: "dp-scaling", seed: 1,
    dataset: (root: "$(cd "$PHOTOS" && pwd)", layout: Flat),
    loader: (workers: $workers, ring_slots: 4, batch_size: $per),
    method: MocoV2(view: (size: $SIZE), queue_size: 4096, key_bn: ShuffledSubBatches(1)),
    trainer: (arch: ResNet18, threads: Some($threads), epochs: 100, base_batch_size: $BATCH, checkpoint_every: 100000),
)
RON
}
cfg 1; cfg 2
median_ms() { # metrics.jsonl → median step_ms after the first 4 steps
    python3 -c '
import json, statistics, sys
ms = [json.loads(l)["step_ms"] for l in open(sys.argv[1])][4:]
print(f"{statistics.median(ms):.0f}")' "$1"
}
for round in $(seq "$ROUNDS"); do
    for ranks in 1 2; do
        d="$OUT/round$round-r$ranks"
        /usr/bin/time -f "%M" -o "$d.rss" ./target/release/launch --config "$OUT/r$ranks.ron" --out-dir "$d" \
            --max-steps "$STEPS" --nproc-per-node "$ranks" --master-port $((29700 + round)) > "$d.log" 2>&1
        echo "round $round, $ranks rank(s): $(median_ms "$d/metrics.jsonl") ms/step, peak RSS $(( $(cat "$d.rss") / 1024 )) MiB, $(grep -o 'waiting for data' "$d.log" >/dev/null && grep -h 'trainer summary' "$d.log" | head -1 | sed 's/.*ms\/step, //')"
    done
done | tee "$OUT/summary.txt"
python3 - "$OUT/summary.txt" <<'PY'
import re, statistics, sys
one, two = [], []
for l in open(sys.argv[1]):
    m = re.search(r"(\d) rank\(s\): (\d+) ms/step", l)
    (one if m.group(1) == "1" else two).append(int(m.group(2)))
print(f"median over rounds: 1 rank x 2 threads {statistics.median(one):.0f} ms, 2 ranks x 1 thread {statistics.median(two):.0f} ms; ratio (2 ranks / 1 rank) {statistics.median(two) / statistics.median(one):.2f}")
PY
echo "(runs in $OUT)"
