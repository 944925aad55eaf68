#!/usr/bin/env bash
# Installs what the project needs on a fresh machine (idempotent; quick when everything is there).
# Used by demo.sh and test.sh; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# System libraries the crates link against (see README, "Setup").
for pkg in ${APT_PACKAGES:-}; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
