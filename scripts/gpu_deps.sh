#!/usr/bin/env bash
# gpu_deps.sh — on the CPU machine: fetch the Debian packages the GPU machine lacks into gpu-deps/ (git-ignored;
# the device run carries it), for scripts/gpu_check.sh to unpack there with dpkg -x (../shared/docs/gpu-machine.md:
# that machine has no cJSON and no stb). Also, as fallbacks that gpu_check.sh uses only when the machine has no
# copy of its own: libjpeg-turbo and OpenBLAS (OpenMP build, with its libgfortran) — about 13 MB more.
# Usage: bash scripts/gpu_deps.sh   (needs apt-get; run `apt-get update` first on a fresh machine)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p gpu-deps
cd gpu-deps
apt-get download libcjson1 libcjson-dev libstb-dev libstb0
apt-get download libjpeg62-turbo libjpeg62-turbo-dev libopenblas0-openmp libopenblas-openmp-dev libgfortran5
ls -l ./*.deb
