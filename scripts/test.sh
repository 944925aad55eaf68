#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, then every crate's unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --no-fail-fast "$@"
