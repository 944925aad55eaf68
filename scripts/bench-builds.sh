#!/usr/bin/env bash
# Two builds side by side (issue 15: "no slowdown beyond noise"): the trainer's step
# (`trainer-bench`, libtorch CPU, 2 threads) and the loader's one-worker pipeline
# (`profile-throughput --one rust --one-workers 1`), run alternately OLD, NEW for ROUNDS rounds.
# Prints the medians of each and the median of the per-round ratios NEW / OLD, with peak RSS.
#   scripts/bench-builds.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS (5)] [DATA (../shared/data/photos)]
# ONLY=trainer or ONLY=loader runs one half.
# Each BIN_DIR holds `trainer-bench` and `profile-throughput` release binaries (built with
# `cargo build --release -p tools --bin profile-throughput -p trainer --features tch --bin
# trainer-bench` at each commit); run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-5} data=${4:-../shared/data/photos}
source scripts/env-libtorch.sh
for r in $(seq "$rounds"); do
  for build in old new; do
    dir=$old; [ $build = new ] && dir=$new
    trainer_methods="mocov2 soco cp2" loader_methods="mocov2 cp2"
    [ "${ONLY:-}" = loader ] && trainer_methods=""
    [ "${ONLY:-}" = trainer ] && loader_methods=""
    for m in $trainer_methods; do
      # SoCo's step is ~15 s here: fewer of them.
      steps="--steps 6 --warmup 3"; [ $m = soco ] && steps="--steps 3 --warmup 1"
      line=$(RAYON_NUM_THREADS=2 "$dir/trainer-bench" --arch r18 --method $m $steps --backend tch | tail -1)
      echo "{\"build\": \"$build\", \"what\": \"trainer $m r18\", \"round\": $r, \"value\": $(echo "$line" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([d["median_ms"], d["peak_rss_mib"]]))')}"
    done
    for m in $loader_methods; do
      line=$("$dir/profile-throughput" --data "$data" --samples 600 --method $m --one rust --one-workers 1 |
        tail -1)
      echo "{\"build\": \"$build\", \"what\": \"loader $m 1 worker\", \"round\": $r, \"value\": $(echo "$line" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([d["samples_per_s"], d["peak_rss_mib"]]))')}"
    done
  done
done | tee "${RAW:-/dev/null}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
for what in dict.fromkeys(r["what"] for r in rows):
    get = lambda b: {r["round"]: r["value"] for r in rows if r["what"] == what and r["build"] == b}
    o, n = get("old"), get("new")
    ratios = [n[k][0] / o[k][0] for k in o if k in n]
    unit = "ms/step" if what.startswith("trainer") else "samples/s"
    print(f"{what:22s} old {statistics.median(v[0] for v in o.values()):8.1f}  new {statistics.median(v[0] for v in n.values()):8.1f} {unit}"
          f"  new/old median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
          f"  peak RSS old/new {max(v[1] for v in o.values()):.0f}/{max(v[1] for v in n.values()):.0f} MiB")
'
