#!/usr/bin/env bash
# The design notes' claims, measured on the built-in base model and one shipped style: one `lorastyle train`
# per method with the defaults (full fine-tuning: --lr FULL_LR), then `lorastyle eval` on each result.
# Prints a markdown table: trainable parameters and share of the U-Net, output size, peak memory, time per
# step (report.txt), style gain (share of the base-to-floor style-distance gap closed at strength 1), the
# colour / shape / position adherence of those stylised images (single-object prompts), and forgetting:
# adherence on the held-out prompts with the adapter at 1 (or the fine-tuned model) vs the base model.
#   bash bench/compare_methods.sh [STYLE_DIR] [FULL_LR]
#   bash bench/compare_methods.sh datasets/styles/ink 1e-4
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-datasets/styles/ink}
full_lr=${2:-1e-4}
LS=build/lorastyle
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorastyle-compare.XXXXXX")}
mkdir -p "$out"
# content adherence of the base model on the held-out prompts (the forgetting baseline)
base_content=$($LS eval content -n 32 2>/dev/null | sed -n 's/^colour \([0-9.]*\)%  shape \([0-9.]*\)%  position \([0-9.]*\)%.*/\1 \2 \3/p')
read -r bc bs bp <<<"$base_content"
echo "base model, held-out prompts: colour $bc%, shape $bs%, position $bp%"
echo
echo "| method | trainable | share of U-Net | output | peak RSS | ms/step | style gap closed at 1 | colour / shape / position at 1 | held-out colour / shape / position (base $bc / $bs / $bp) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
base_d=""
floor_d=""
run() { # label, train options...
    local label=$1
    shift
    local dir="$out/${label// /_}"
    $LS train "$data" -o "$dir" --name m --no-samples --style-curve 0 --checkpoint-every 0 --seed 1 --force --quiet "$@" >/dev/null
    local r="$dir/report.txt" full=0
    [ -d "$dir/m" ] && full=1
    local tp share size rss ms
    tp=$(sed -n 's/^trainable parameters: \([0-9]*\) (\([0-9.]*\)%.*/\1/p' "$r")
    share=$(sed -n 's/^trainable parameters: [0-9]* (\([0-9.]*\)%.*/\1/p' "$r")
    size=$(sed -n 's/^output size: *\([0-9.]* [KMG]i*B\).*/\1/p' "$r")
    rss=$(sed -n 's/^peak memory (RSS): *\([0-9.]* [KMG]i*B\).*/\1/p' "$r")
    ms=$(sed -n 's/.*(\([0-9.]*\) ms per step in this run).*/\1/p' "$r")
    local ev
    if [ $full = 1 ]; then
        ev=$($LS eval style "$data" --model "$dir/m" -n 16 2>/dev/null)
    else
        ev=$($LS eval style "$data" --lora "$dir/m.safetensors" --scales 0,1 -n 16 2>/dev/null)
    fi
    local d0 d1 fl sc
    d0=$(echo "$ev" | awk '$1=="0"{print $2}')
    d1=$(echo "$ev" | awk -v f=$full '(f==1 && $1=="0") || (f==0 && $1=="1"){print $2}')
    sc=$(echo "$ev" | awk -v f=$full '(f==1 && $1=="0") || (f==0 && $1=="1"){print $4" / "$5" / "$6}')
    fl=$(echo "$ev" | awk '$1=="floor"{print $2}')
    [ $full = 0 ] && [ -z "$base_d" ] && base_d=$d0 && floor_d=$fl
    local gap
    gap=$(awk -v b="$base_d" -v d="$d1" -v f="$floor_d" 'BEGIN{ if (b == "" || b <= f) print "-"; else printf "%.0f%%", 100*(b-d)/(b-f) }')
    local ct
    if [ $full = 1 ]; then
        ct=$($LS eval content -n 32 --model "$dir/m" 2>/dev/null | sed -n 's/^colour \([0-9.]*\)%  shape \([0-9.]*\)%  position \([0-9.]*\)%.*/\1 \/ \2 \/ \3/p')
    else
        ct=$($LS eval content -n 32 --lora "$dir/m.safetensors:1" 2>/dev/null | sed -n 's/^colour \([0-9.]*\)%  shape \([0-9.]*\)%  position \([0-9.]*\)%.*/\1 \/ \2 \/ \3/p')
    fi
    echo "| $label | $tp | $share % | $size | $rss | $ms | $gap | $sc | $ct |"
}
run "LoRA, attention only" --targets attn
run "LoRA + LoCon (default: attn, ff, proj, conv)"
run "bottleneck adapter" --method adapter
run "full fine-tuning" --method full --lr "$full_lr"
echo
echo "(base style distance $base_d, floor $floor_d; outputs in $out)"
