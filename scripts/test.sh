#!/usr/bin/env bash
# The test command (README, .ci/run): install packages, fetch the real CLIP vocabulary (PyPI's
# open-clip-torch wheel ships it) for the tokenizer test, build, run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch_clip_vocab.sh build/clip
# ctest runs tests side by side; OpenMP threads that spin-wait (libgomp's default) then fight over the
# cores (measured: test_unet_grad 6.1 s → 4.3 s with passive waiting under load), so let them sleep.
export OMP_WAIT_POLICY=PASSIVE
cd build && ctest --output-on-failure -j"$(nproc)"
