#!/usr/bin/env bash
# Selective search speed against the Python `selectivesearch` package (BENCHMARKS.md, issue 4):
# ROUNDS times, the package on the first COUNT photos, then ours on the same photos against the
# boxes it just wrote, so every round is a paired comparison on a machine whose speed drifts.
# Prints each round and the medians (ms/image, and of the per-round speed-ups). Needs
# `scripts/setup.sh --python` (.venv with selectivesearch, scikit-image).
#   scripts/bench-proposals.sh [DATA (../shared/data/photos)] [COUNT (40)] [ROUNDS (5)]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/photos}
count=${2:-40}
rounds=${3:-5}
py=${PYTHON:-.venv/bin/python}
cargo build -q --release -p tools --bin compare-proposals
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  "$py" tests/reference/selective_search_reference.py "$data" "$count" "$work/ref.json" 2>/dev/null
  ./target/release/compare-proposals --reference "$work/ref.json" --data "$data" | tail -2
done | tee "${RAW:-/dev/null}" | python3 <(cat <<'PY'
import re, statistics, sys
ours, theirs, matched = [], [], []
for line in sys.stdin:
    m = re.search(r"ours ([\d.]+), Python package ([\d.]+)", line)
    if m:
        ours.append(float(m[1]))
        theirs.append(float(m[2]))
        print(f"round {len(ours)}: ours {ours[-1]:.1f} ms/image, package {theirs[-1]:.1f}, "
              f"{theirs[-1] / ours[-1]:.1f}x")
    m = re.search(r"matched by ours at IoU ≥ [\d.]+: ([\d.]+); ours matched by it: ([\d.]+)", line)
    if m:
        matched.append((float(m[1]), float(m[2])))
print(f"median of {len(ours)} rounds: ours {statistics.median(ours):.1f} ms/image, package "
      f"{statistics.median(theirs):.1f}; speed-up (median of per-round ratios) "
      f"{statistics.median(t / o for t, o in zip(theirs, ours)):.1f}x; boxes matched both ways "
      f"(worst round) {min(a for a, _ in matched):.3f} / {min(b for _, b in matched):.3f}")
PY
)
