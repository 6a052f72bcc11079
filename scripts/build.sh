#!/usr/bin/env bash
# Installs the Debian packages (if missing; incl. SDL2 + Xvfb for the viewer and its test) and builds
# lorastyle into build/ (Release).
# Extra arguments go to CMake, e.g. scripts/build.sh -DLS_GUI=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
