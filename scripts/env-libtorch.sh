# Source this (after `scripts/setup.sh --libtorch`) to build and run the trainer with
# `--features tch`: LIBTORCH for torch-sys at build time, the libraries' folders at run time.
_lt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.libtorch"
export LIBTORCH="$_lt_root/libtorch-cpu"
export LD_LIBRARY_PATH="$_lt_root/site/torch/lib:$_lt_root/site/nvidia/cuda_runtime/lib:$_lt_root/site/nvidia/cuda_cupti/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _lt_root
