#!/usr/bin/env bash
# The main job on the built-in default, from a fresh checkout: build, train a style adapter with the
# defaults on one of the shipped style sets (default: datasets/styles/ink) on the built-in base model
# (models/base), then write a strength sweep — rows: adapter strength 0, 0.25, 0.5, 0.75, 1; columns: four
# prompts the style set never showed — as output/quickstart/sweep/grid.png.
#   bash scripts/quickstart.sh [DIR] [more lorastyle train options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
dir=datasets/styles/ink
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir=$1; shift; fi
# --force: this script's own output folder is started over on every run; everything else is train's
# defaults (about 3.5 minutes on one core for the built-in model; README "Training" says why they are these)
build/lorastyle train "$dir" -o output/quickstart --name style --force "$@"
rm -rf output/quickstart/sweep
build/lorastyle sweep --prompts samples/prompts.txt --lora output/quickstart/style.safetensors \
    --scales 0,0.25,0.5,0.75,1 --seeds 7 -o output/quickstart/sweep
echo "adapter: output/quickstart/style.safetensors (report.txt, samples/, loss.png beside it)"
echo "strength sweep: output/quickstart/sweep/grid.png"
