#!/usr/bin/env bash
# The shipped style sets (datasets/styles/): 40 captioned 64×64 scenes per style from the scene grammar,
# each style from its own seed, in kohya's repeat-folder layout (10 repeats). Deterministic: running it
# again rewrites the same files.
#   bash scripts/make_style_sets.sh [build/lorastyle]
set -euo pipefail
cd "$(dirname "$0")/.."
exe=${1:-build/lorastyle}
seed=100
for style in ink neon mosaic watercolour; do
    rm -rf "datasets/styles/$style"
    "$exe" scenes --style "$style" -n 40 --seed "$seed" --size 64 --repeats 10 -o "datasets/styles/$style"
    seed=$((seed + 100))
done
