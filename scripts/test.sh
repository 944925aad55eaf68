#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup (including the CPU-only libtorch), every crate's unit
# and integration tests on the default backend (flex), then the trainer's tests again on libtorch
# (`--features tch`: Device::default() is libtorch there, and tests/backends_agree.rs checks both
# backends take the same steps).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --libtorch
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# shellcheck source=scripts/env-libtorch.sh
source scripts/env-libtorch.sh
cargo test -p trainer --features tch --no-fail-fast "$@" || status=$?
exit $status
