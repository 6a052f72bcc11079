#!/usr/bin/env bash
# test_cli_eval.sh — `lorastyle eval content|style` on the built-in model (models/base): the figures it
# prints are the tool's (BENCHMARKS.md records them); here its output shape, the files it writes, and that
# the figures it prints are percentages (content) or distances whose floor lies below the base (style), plus
# bad input.
#
# usage: bash tests/test_cli_eval.sh path/to/lorastyle [fixtures_dir]
set -u

LS=${1:?usage: test_cli_eval.sh path/to/lorastyle [fixtures_dir]}
HERE=$(cd "$(dirname "$0")" && pwd)
STYLE=$HERE/../datasets/styles/ink
. "$HERE/cli_lib.sh"
cli_begin lorastyle-cli-eval

# ---- content: n prompts, the four adherence figures, the VAE's ceiling, a grid ----
run "$LS" eval content -n 4 -o "$T/content.png"
if [ "$rc" -eq 0 ] && grep -Eq '^colour [0-9.]+%  shape [0-9.]+%  position [0-9.]+%  background [0-9.]+%  \(4 scored\)' "$T/stdout" &&
    grep -Eq '^VAE ceiling: colour [0-9.]+%  shape [0-9.]+%  position [0-9.]+%' "$T/stdout" && [ -s "$T/content.png" ]; then
    ok "eval content -n 4: adherence, the VAE ceiling and a grid"
else bad "eval content" "status $rc: $(head -3 "$T/stdout")"; fi

# ---- style: an adapter of a few steps, strengths 0 and 1, floor and VAE rows in the CSV ----
run "$LS" train "$STYLE" -o "$T/ink" --steps 2 --batch 1 --no-samples --style-curve 0 --quiet
[ "$rc" -eq 0 ] || bad "train a 2-step adapter" "status $rc"
run "$LS" eval style "$STYLE" --lora "$T/ink/ink.safetensors" --scales 0,1 -n 2 -o "$T/ev"
csv=$T/ev/style_curve.csv
if [ "$rc" -eq 0 ] && [ -s "$T/ev/grid.png" ] && [ "$(head -1 "$csv")" = "strength,distance,gap_closed,colour,shape,position" ] &&
    awk -F, '$1 == "0" { b = $2 } $1 == "floor" { f = $2 } $1 == "vae" { v = $2; g = $3 }
             END { exit !(b > 0 && f >= 0 && f < b && v > 0 && g == g + 0) }' "$csv" &&
    grep -q '^     VAE ' "$T/stdout"; then
    ok "eval style: strengths 0 and 1, the floor below the base, the VAE's row (style_curve.csv, grid.png)"
else bad "eval style" "status $rc: $(cat "$csv" 2>/dev/null | tr '\n' ' ')"; fi

# ---- bad input ----
expect_fail "eval style: unknown style name" "" "cubist|--style" "$LS" eval style "$STYLE" --lora "$T/ink/ink.safetensors" --style cubist -n 2
expect_fail "eval style: two adapters" "" "one adapter" "$LS" eval style "$STYLE" --lora "$T/ink/ink.safetensors" --lora "$T/ink/ink.safetensors" -n 2
expect_fail "eval: unknown mode" "" "eval" "$LS" eval colours

summary
