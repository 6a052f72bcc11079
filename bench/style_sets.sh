#!/usr/bin/env bash
# Train's defaults on every shipped style set, measured: one `lorastyle train datasets/styles/STYLE` per
# style and seed (the defaults, --seed S), then `lorastyle eval style` on each adapter at strengths
# 0, 0.25, 0.5, 0.75, 1. Prints a markdown table: style distance per strength (lower = closer to the set),
# the floor (fresh images of the style) and the share of the base-to-floor gap closed at 1, the VAE's share
# (the same fresh images encoded and decoded), colour adherence at 0 and 1 against the style's own (the
# floor's), whether the curve falls monotonically, and the training time.
#   bash bench/style_sets.sh [SEEDS (0)] [STYLES (ink neon watercolour mosaic)]
#   OUT=/tmp/styles bash bench/style_sets.sh 0,1,2
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-0}
styles=${2:-ink neon watercolour mosaic}
LS=${LS:-build/lorastyle}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lorastyle-styles.XXXXXX")}
mkdir -p "$out"
echo "| style | seed | distance at 0 / 0.25 / 0.5 / 0.75 / 1 | floor | gap closed at 1 | VAE's share | monotone | colour at 0 → 1 (style's own) | train time |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for st in $styles; do
    for s in ${seeds//,/ }; do
        dir=$out/$st-$s
        $LS train "datasets/styles/$st" -o "$dir" --name "$st" --seed "$s" --no-samples --force --quiet >/dev/null
        $LS eval style "datasets/styles/$st" --lora "$dir/$st.safetensors" -n 16 -o "$dir/eval" >/dev/null 2>&1
        wall=$(sed -n 's/^wall time: *\([0-9.]*\) s.*/\1/p' "$dir/report.txt")
        awk -F, -v st="$st" -v s="$s" -v wall="$wall" '
            NR == 1 { next }
            $1 == "floor" { fd = $2; fc = $4; next }
            $1 == "vae" { vg = $3; next }
            { n++; d[n] = $2; g[n] = $3; c[n] = $4 }
            END {
                mono = "yes"; curve = ""
                for (i = 1; i <= n; i++) { curve = curve (i > 1 ? " / " : "") sprintf("%.3f", d[i]); if (i > 1 && d[i] > d[i - 1]) mono = "no" }
                printf "| %s | %s | %s | %.3f | %.1f%% | %.1f%% | %s | %.1f%% → %.1f%% (%.1f%%) | %.0f s |\n",
                       st, s, curve, fd, g[n], vg, mono, c[1], c[n], fc, wall
            }' "$dir/eval/style_curve.csv"
    done
done
