#!/usr/bin/env bash
# Installs the Debian packages (if missing) and builds lorastyle into build/ (Release).
# Extra arguments go to CMake, e.g. scripts/build.sh -DLS_GUI=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --minimal >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
