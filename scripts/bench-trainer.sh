#!/usr/bin/env bash
# Trainer ms/step side by side (BENCHMARKS.md, issue 6): burn-flex, burn-tch (libtorch) and
# PyTorch on the same MoCo v2 step, model, batch and threads, interleaved ROUNDS times so a
# machine whose speed drifts still gives paired figures. Needs `scripts/setup.sh --libtorch
# --torch` (libtorch for burn-tch, .venv-torch for the PyTorch reference).
#   scripts/bench-trainer.sh [ARCHS (r18,r50)] [ROUNDS (3)] [BACKENDS (flex,tch)]
set -euo pipefail
cd "$(dirname "$0")/.."
archs=${1:-r18,r50}
rounds=${2:-3}
backends=${3:-flex,tch}
threads=2
source scripts/env-libtorch.sh
cargo build -q --release -p trainer --features tch --bin trainer-bench
py=${PYTHON:-.venv-torch/bin/python}
for arch in ${archs//,/ }; do
  for round in $(seq "$rounds"); do
    for b in ${backends//,/ }; do
      RAYON_NUM_THREADS=$threads ./target/release/trainer-bench --arch "$arch" --steps 6 --warmup 3 \
        --backend "$b" | tail -1
    done
    "$py" tests/reference/torch_step.py --arch "$arch" --threads $threads --steps 6 --warmup 3 | tail -1
  done
done | tee "${RAW:-/dev/null}" | python3 <(cat <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["arch"], r["impl"]), []).append(r)
for arch in dict.fromkeys(r["arch"] for r in rows):
    ref = by[(arch, "pytorch-cpu")]
    for impl in [k[1] for k in by if k[0] == arch]:
        rs = by[(arch, impl)]
        ratios = [a["median_ms"] / b["median_ms"] for a, b in zip(rs, ref)]
        med = statistics.median(r["median_ms"] for r in rs)
        rss = max(r["peak_rss_mib"] for r in rs)
        print(f"{arch} {impl:12s} median {med:7.0f} ms/step"
              f"  / PyTorch (median of per-round ratios) {statistics.median(ratios):.2f}"
              f"  rounds {[round(r['median_ms']) for r in rs]}  peak RSS {rss:.0f} MiB")
PY
)
