#!/usr/bin/env bash
# The main job on the built-in default: build, make the default model if there is none yet
# (`lorastyle init` → models/tiny, randomly initialised until a trained base model ships), then run
# `lorastyle generate` with the arguments given (default: one prompt → out.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
[ -d models/tiny ] || build/lorastyle init --preset tiny -o models/tiny
if [ $# -eq 0 ]; then set -- "a watercolor painting of a fox in the snow" --seed 42 -o out.png; fi
exec build/lorastyle generate "$@"
