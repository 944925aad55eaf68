#!/usr/bin/env bash
# Soak (issue 21; a measurement, never in CI): the real loader + trainer pair for $MINUTES in
# all, every method in turn on the shared photos (CPU, ResNet-18, small views), sampling the
# resident memory of both processes every $EVERY seconds. Each method's run is stopped with
# SIGINT at its share of the time (the pair's clean stop path). Writes $OUT/rss.csv
# (seconds, method, loader MiB, trainer MiB) and prints a markdown table per method: RSS after
# the first minute, at the end, the peak, and the drift over the second half (MiB/min).
#
#   scripts/soak.sh                       # an hour, five methods
#   MINUTES=5 METHODS="mocov2" scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-60}
EVERY=${EVERY:-5}
METHODS=${METHODS:-"mocov2 densecl soco cp2 patch_rotation"}
PHOTOS=$(cd "${PHOTOS:-../shared/data/photos}" && pwd)
OUT=${OUT:-runs/soak}

bash scripts/setup.sh --libtorch
source scripts/env-libtorch.sh
cargo build -q --release -p loader --bin loader -p trainer --features trainer/tch --bin trainer \
  -p tools --bin launch
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "seconds,method,loader_mib,trainer_mib" > "$OUT/rss.csv"

# A config per method: the *_small presets where they exist, with epochs no run reaches.
config_for() {
  local m=$1 cfg="$OUT/$1.ron"
  case $m in
    mocov2 | densecl)
      local method="MocoV2(view: (size: 96), proj_hidden: 512, proj_dim: 128, queue_size: 4096)"
      [ "$m" = densecl ] && method="DenseCl(moco: (view: (size: 96), proj_hidden: 512, proj_dim: 128, queue_size: 4096))"
      cat > "$cfg" <<EOF
RunConfig(
    name: "soak-$m", seed: 1,
    dataset: (root: "$PHOTOS", layout: Flat),
    loader: (workers: 2, ring_slots: 3, batch_size: 16),
    method: $method,
    trainer: (arch: ResNet18, epochs: 100000, optimizer: Sgd(lr: 0.03, momentum: 0.9, weight_decay: 1e-4),
              base_batch_size: 16, schedule: Constant, checkpoint_every: 200),
)
EOF
      ;;
    *)
      sed -e "s#\"../shared/data/photos\"#\"$PHOTOS\"#" -e 's/epochs: [0-9]*/epochs: 100000/' \
        "config/presets/${m}_small.ron" > "$cfg"
      ;;
  esac
  echo "$cfg"
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo ""; }

n=$(echo "$METHODS" | wc -w)
share=$(( MINUTES * 60 / n ))
start=$(date +%s)
for m in $METHODS; do
  cfg=$(config_for "$m")
  log="$OUT/$m.log"
  ./target/release/launch --config "$cfg" --out-dir "$OUT/$m" > "$log" 2>&1 &
  launch=$!
  # The children's pids, from launch's first line.
  for _ in $(seq 1 600); do
    line=$(grep -m1 '^launch: loader pid' "$log" || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  lpid=$(echo "$line" | awk '{print $4}' | tr -d ,)
  tpid=$(echo "$line" | awk '{print $7}' | tr -d ,)
  t0=$(date +%s)
  while [ $(( $(date +%s) - t0 )) -lt "$share" ] && kill -0 "$launch" 2>/dev/null; do
    echo "$(( $(date +%s) - start )),$m,$(rss_mib "$lpid"),$(rss_mib "$tpid")" >> "$OUT/rss.csv"
    sleep "$EVERY"
  done
  kill -INT "$launch" 2>/dev/null || true
  wait "$launch" || true
  echo "soak: $m done ($(grep -c '"loss"' "$OUT/$m/metrics.jsonl" 2>/dev/null || echo 0) steps); log $log" >&2
done

python3 - "$OUT/rss.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| method | minutes | loader MiB at 1 min → end (peak) | trainer MiB at 1 min → end (peak) | drift, 2nd half (MiB/min): loader / trainer |")
print("|---|---|---|---|---|")
for m in dict.fromkeys(r["method"] for r in rows):
    rs = [r for r in rows if r["method"] == m and r["loader_mib"] and r["trainer_mib"]]
    if len(rs) < 4:
        continue
    t = [float(r["seconds"]) for r in rs]
    t0 = t[0]
    def col(k):
        return [float(r[k]) for r in rs]
    def at_1min(v):
        return next((x for x, s in zip(v, t) if s - t0 >= 60), v[0])
    def drift(v):
        half = [(s, x) for s, x in zip(t, v) if s - t0 >= (t[-1] - t0) / 2]
        if len(half) < 2:
            return float("nan")
        n = len(half); ms = sum(s for s, _ in half) / n; mx = sum(x for _, x in half) / n
        var = sum((s - ms) ** 2 for s, _ in half)
        return 60 * sum((s - ms) * (x - mx) for s, x in half) / var if var else float("nan")
    lo, tr = col("loader_mib"), col("trainer_mib")
    print(f"| {m} | {(t[-1] - t0) / 60:.1f} | {at_1min(lo):.0f} → {lo[-1]:.0f} ({max(lo):.0f}) | "
          f"{at_1min(tr):.0f} → {tr[-1]:.0f} ({max(tr):.0f}) | {drift(lo):+.2f} / {drift(tr):+.2f} |")
PY
