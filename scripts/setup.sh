#!/usr/bin/env bash
# Installs what the project needs on a fresh machine (idempotent; quick when everything is there).
# Used by demo.sh and test.sh; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools for the vendored libjpeg-turbo (turbojpeg crate): cmake and nasm.
APT_PACKAGES="cmake nasm ${APT_PACKAGES:-}"
need_apt=()
for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }

# Python side (reference pipelines for benchmarks, fixture regeneration): only when asked.
if [ "${1:-}" = "--python" ] || [ "${SETUP_PYTHON:-0}" = "1" ]; then
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import PIL, numpy, selectivesearch, cv2, scipy" 2>/dev/null; then
        echo "setup: creating .venv with the reference scripts' packages (tests/reference/requirements.txt)" >&2
        python3 -m venv .venv
        .venv/bin/pip install -q -r tests/reference/requirements.txt
    fi
fi

# PyTorch side (the trainer benchmarks' references: tests/reference/torch_step.py,
# torch_soco_cp2_step.py): only when asked, into its own venv — PyPI's torch wheel comes with its
# CUDA libraries (≈ 7 GB, 2–3 min), far too much for the default setup.
if [ "${1:-}" = "--torch" ]; then
    if [ ! -x .venv-torch/bin/python ] || ! .venv-torch/bin/python -c "import torch, torchvision" 2>/dev/null; then
        echo "setup: creating .venv-torch with torch 2.9.0 + torchvision 0.24.0 (tests/reference/requirements-torch.txt)" >&2
        python3 -m venv .venv-torch
        .venv-torch/bin/pip install -q -r tests/reference/requirements-torch.txt
    fi
fi

# libtorch for the trainer's `tch` feature (burn-tch), CPU only: PyPI has only the CUDA build of
# torch 2.9.0 (what tch 0.22 expects), so take its wheel without dependencies plus the two small
# NVIDIA runtime wheels libtorch_cpu.so links against, and make a LIBTORCH dir holding only the CPU
# libraries (≈ 0.9 GB download, 0.6 GB on disk once the CUDA libraries are deleted, instead of the
# 7 GB CUDA install; measured in shared/notes/trainer-backends.md). torch-sys always links
# -ltorch: an empty stub library stands in for it. `source scripts/env-libtorch.sh` then sets
# LIBTORCH and LD_LIBRARY_PATH.
if [ "${1:-}" = "--libtorch" ] || [ "${SETUP_LIBTORCH:-0}" = "1" ]; then
    LT=.libtorch
    if [ ! -f "$LT/libtorch-cpu/lib/libtorch.so" ] || [ ! -f "$LT/site/torch/lib/libtorch_cpu.so" ]; then
        echo "setup: fetching a CPU-only libtorch (torch 2.9.0 wheel, no CUDA libraries) into $LT" >&2
        rm -rf "$LT"
        mkdir -p "$LT/libtorch-cpu/lib"
        python3 -m pip install -q --no-deps --no-cache-dir --target "$LT/site" \
            torch==2.9.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90
        SITE="$(cd "$LT/site" && pwd)"
        ln -s "$SITE/torch/include" "$LT/libtorch-cpu/include"
        for f in libtorch_cpu.so libc10.so libgomp.so.1; do
            ln -s "$SITE/torch/lib/$f" "$LT/libtorch-cpu/lib/$f"
        done
        printf '' > "$LT/empty.c"
        cc -shared -fPIC -o "$LT/libtorch-cpu/lib/libtorch.so" "$LT/empty.c"
    fi
    # The wheel's CUDA and Python-binding libraries are never loaded by a CPU build: 1.2 GB of a
    # small CI disk. What stays: libtorch_cpu, libc10, libgomp, the headers, two NVIDIA runtimes.
    rm -f "$LT"/site/torch/lib/libtorch_cuda*.so "$LT"/site/torch/lib/libtorch_python.so \
        "$LT"/site/torch/lib/libtorch_nvshmem.so
    # gloo's headers, which c10d's ProcessGroupGloo.hpp includes and the wheel does not ship
    # (data-parallel training, trainer/vendor/burn-tch/src/c10d.cpp). Every gloo type that class
    # holds is behind a pointer, so Debian's libgloo-dev headers declare the same class as the
    # gloo libtorch was built with; libtorch's own compiled gloo does the work.
    GLOO_INC="$LT/site/torch/include/gloo"
    if [ ! -f "$GLOO_INC/context.h" ]; then
        echo "setup: fetching gloo's headers (Debian libgloo-dev) into $GLOO_INC" >&2
        GLOO_DEB=libgloo-dev_0.0~git20220518.5b14351-3_amd64.deb
        GLOO_SHA=80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299
        TMPD="$(mktemp -d)"
        GLOO_URL="http://deb.debian.org/debian/pool/main/g/gloo/$GLOO_DEB"
        (cd "$TMPD" && { apt-get download libgloo-dev=0.0~git20220518.5b14351-3 >/dev/null 2>&1 ||
            curl -fsSL -o "$GLOO_DEB" "$GLOO_URL" 2>/dev/null ||
            python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
                "$GLOO_URL" "$GLOO_DEB"; })
        echo "$GLOO_SHA  $TMPD/$GLOO_DEB" | sha256sum -c --quiet - ||
            { echo "setup: gloo headers: download failed or checksum mismatch" >&2; exit 1; }
        dpkg-deb -x "$TMPD/$GLOO_DEB" "$TMPD/x"
        cp -r "$TMPD/x/usr/include/gloo" "$GLOO_INC"
        rm -rf "$TMPD"
    fi
fi
