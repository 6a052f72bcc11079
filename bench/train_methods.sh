#!/usr/bin/env bash
# The design notes' trade-off, measured: one `lorastyle train` run per method on the same data, and a
# markdown table of what each report.txt says (trainable parameters and share, output size, peak memory,
# gradient + AdamW state, time per step). Not a test.
#   bash bench/train_methods.sh MODEL [RESOLUTION] [STEPS] [DATA]
#   bash bench/train_methods.sh /tmp/tinyb_bt 64 100
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/train_methods.sh MODEL [RESOLUTION] [STEPS] [DATA]}
res=${2:-64}
steps=${3:-100}
data=${4:-datasets/sample_style}
out=$(mktemp -d "${TMPDIR:-/tmp}/lorastyle-methods.XXXXXX")
trap 'rm -rf "$out"' EXIT
echo "| method | trainable | share | output | peak RSS | grads + AdamW | ms/step |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
run() { # label, options...
    local label=$1
    shift
    build/lorastyle train "$data" --model "$model" --resolution "$res" --steps "$steps" --no-samples --quiet \
        --checkpoint-every 0 --seed 1 -o "$out/$label" "$@" >/dev/null
    local r="$out/$label/report.txt"
    local tp share size rss state ms
    tp=$(sed -n 's/^trainable parameters: \([0-9]*\) (\([0-9.]*\)%.*/\1/p' "$r")
    share=$(sed -n 's/^trainable parameters: [0-9]* (\([0-9.]*\)%.*/\1/p' "$r")
    size=$(sed -n 's/^output size: *\([0-9.]* [KMG]i*B\).*/\1/p' "$r")
    rss=$(sed -n 's/^peak memory (RSS): *\([0-9.]* [KMG]i*B\).*/\1/p' "$r")
    state=$(sed -n 's/.*gradients + AdamW state \([0-9.]* [KMG]i*B\)).*/\1/p' "$r")
    ms=$(sed -n 's/.*(\([0-9.]*\) ms per step in this run).*/\1/p' "$r")
    echo "| $label | $tp | $share % | $size | $rss | $state | $ms |"
}
run "lora r4" --method lora --rank 4
run "locon r4/c4" --method locon --rank 4
run "lora r4 + text encoder" --rank 4 --train-text-encoder
run "adapter r4" --method adapter --rank 4
run "full (fp32 out)" --method full
run "full (fp16 out)" --method full --save-precision fp16
