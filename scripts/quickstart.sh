#!/usr/bin/env bash
# The main job on the built-in default, from a fresh checkout: build, make the default model if there is
# none yet (`lorastyle init` → models/tiny, randomly initialised until a trained base model ships), train a
# style adapter on a folder of images + captions (default: the shipped datasets/sample_style) into
# output/quickstart/, then generate one image with it at strength 1 (out.png).
#   bash scripts/quickstart.sh [DIR] [more lorastyle train options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
[ -d models/tiny ] || build/lorastyle init --preset tiny -o models/tiny
dir=datasets/sample_style
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir=$1; shift; fi
# --force: this script's own output folder is started over on every run
build/lorastyle train "$dir" -o output/quickstart --name style --steps 200 --sample-every 100 --force "$@"
build/lorastyle generate "$(sed -n 1p "$(ls "$dir"/*.txt "$dir"/*/*.txt 2>/dev/null | head -1)" 2>/dev/null \
    || echo "a picture")" --lora output/quickstart/style.safetensors:1 --seed 42 -o out.png
echo "adapter: output/quickstart/style.safetensors (report.txt, samples/, loss.png beside it); image: out.png"
