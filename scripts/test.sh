#!/usr/bin/env bash
# The test command (README, .ci/run): install packages, fetch the real CLIP vocabulary (PyPI's
# open-clip-torch wheel ships it) for the tokenizer test, build, run every test with ctest, then install
# clang and fuzz each harness for a short bounded time (LS_FUZZ_SECONDS, default 15; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch_clip_vocab.sh build/clip
# ctest runs tests side by side; OpenMP threads that spin-wait (libgomp's default) then fight over the
# cores (measured: test_unet_grad 6.1 s → 4.3 s with passive waiting under load), so let them sleep.
export OMP_WAIT_POLICY=PASSIVE
(cd build && ctest --output-on-failure -j"$(nproc)")
if [ "${LS_FUZZ_SECONDS:-15}" -gt 0 ]; then
  bash scripts/install-deps.sh --fuzz > /dev/null
  bash scripts/fuzz.sh all "${LS_FUZZ_SECONDS:-15}"
fi
