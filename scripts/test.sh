#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup (including the CPU-only libtorch), then every crate's
# unit and integration tests built as the README's commands build them — the trainer on libtorch,
# its default CPU backend (`--features tch`; the e2e tests spawn those trainer binaries too) — and
# then the trainer's own test binaries again on flex, the zero-install backend a plain `cargo build`
# gives. burn dispatches on the device at run time, so one build carries both backends and
# TRAINER_TEST_BACKEND=flex switches the tests' device (trainer::backend::test_device). Both
# backends are also checked against each other step for step (trainer/tests/backends_agree.rs,
# trainer/tests/tch_native_ops.rs). Extra arguments go to the first `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --libtorch
# shellcheck source=scripts/env-libtorch.sh
source scripts/env-libtorch.sh
# One build, no incremental caches (≈ 0.9 GB): CI's disk is small — stop 4's run, which built
# the trainer a second time for flex, ran out of it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
features=e2e-tests/tch,trainer/tch
status=0
cargo test --workspace --features "$features" --no-fail-fast "$@" || status=$?

echo "== the trainer's test binaries again, on flex (TRAINER_TEST_BACKEND=flex)"
trainer_tests=$(cargo test --workspace --features "$features" --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and m["package_id"].split("#")[0].endswith("/trainer"):
        print(m["executable"])
') || status=1
[ -n "$trainer_tests" ] || { echo "test.sh: found no trainer test binaries" >&2; status=1; }
for exe in $trainer_tests; do
    echo "-- $(basename "$exe")"
    (cd trainer && TRAINER_TEST_BACKEND=flex "$exe") || status=$?
done

echo "== import loops inside the trainer crate (scripts/check-import-cycles.py)"
python3 scripts/check-import-cycles.py trainer/src || status=1

echo "== disk: target $(du -sh target 2>/dev/null | cut -f1), libtorch $(du -sh .libtorch 2>/dev/null | cut -f1), $(df -h . | awk 'NR==2 {print $4}') free"
exit $status
