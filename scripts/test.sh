#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup (including the CPU-only libtorch), then every crate's
# unit and integration tests built as the README's commands build them — the trainer on libtorch,
# its default CPU backend (`--features tch`; the e2e tests spawn those trainer binaries too) — and
# then the trainer's own tests again on flex, the zero-install backend a plain `cargo build` gives.
# Both backends are also checked against each other step for step (trainer/tests/backends_agree.rs,
# trainer/tests/tch_native_ops.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --libtorch
# shellcheck source=scripts/env-libtorch.sh
source scripts/env-libtorch.sh
status=0
cargo test --workspace --features e2e-tests/tch,trainer/tch --no-fail-fast "$@" || status=$?
cargo test -p trainer --no-fail-fast "$@" || status=$?
exit $status
