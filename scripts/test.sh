#!/usr/bin/env bash
# The test command (README, .ci/run): install packages, fetch the real CLIP vocabulary (PyPI's
# open-clip-torch wheel ships it) for the tokenizer test, build, run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch_clip_vocab.sh build/clip
cd build && ctest --output-on-failure -j"$(nproc)"
