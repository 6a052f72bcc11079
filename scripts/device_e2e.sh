#!/usr/bin/env bash
# device_e2e.sh — the lorastyle program run end to end with --device cuda against --device cpu: a 3-step
# generation (pixels compared) and a 3-step LoRA training (the adapters compared tensor by tensor), on a fresh
# tiny model or the model given. Used by scripts/gpu_emu_check.sh (the CUDA backend emulated on the CPU) and
# scripts/gpu_check.sh (a real GPU). Tolerances: images mean |diff| < 0.5 and max ≤ 8 of 255 (fp32 with other
# summation orders; 3 steps keep the sampler from amplifying them); adapters max |diff| ≤ 1e-3 of the tensor's
# largest value.
# Usage: bash scripts/device_e2e.sh LORASTYLE OUTDIR [MODEL]      exit 0: PASS
set -euo pipefail
cd "$(dirname "$0")/.."
exe=$1 out=$2 model=${3:-}
rm -rf "$out" && mkdir -p "$out"
if [ -z "$model" ]; then
    model=$out/model
    "$exe" --device cpu init --preset tiny -o "$model" --seed 3 > /dev/null
fi
for dev in cpu cuda; do
    s=$(date +%s.%N)
    "$exe" --device $dev generate "a red circle on a blue background" --model "$model" --steps 3 --seed 5 \
        --negative "green" -o "$out/$dev.png" > "$out/generate-$dev.log" 2>&1
    "$exe" --device $dev train datasets/sample_style --model "$model" --steps 3 --batch 2 --rank 4 --seed 1 \
        --resolution 64 -o "$out/train-$dev" --quiet --no-samples > "$out/train-$dev.log" 2>&1
    echo "device_e2e: --device $dev generate + train: $(awk "BEGIN { print $(date +%s.%N) - $s }") s"
done
PYTHONPATH=tests python3 - "$out" <<'PY'
import struct, sys
from cli_files import png_pixels, st_read
t = sys.argv[1]
a, b = png_pixels(t + "/cpu.png"), png_pixels(t + "/cuda.png")
d = [abs(x - y) for x, y in zip(a[2], b[2])]
mean, mx = sum(d) / len(d), max(d)
ok_img = mean < 0.5 and mx <= 8
print(f"generate: cpu vs cuda image, mean |diff| {mean:.4f}, max {mx} (of 255): {'ok' if ok_img else 'FAIL'}")
ha, da = st_read(t + "/train-cpu/style.safetensors")
hb, db = st_read(t + "/train-cuda/style.safetensors")
worst, name = 0.0, ""
for k, v in ha.items():
    if k == "__metadata__":
        continue
    o0, o1 = v["data_offsets"]
    w0, w1 = hb[k]["data_offsets"]
    x, y = struct.unpack(f"<{(o1 - o0) // 4}f", da[o0:o1]), struct.unpack(f"<{(w1 - w0) // 4}f", db[w0:w1])
    rel = max(abs(p - q) for p, q in zip(x, y)) / max(1e-12, max(abs(p) for p in x))
    if rel > worst:
        worst, name = rel, k
ok_ad = worst <= 1e-3
print(f"train: cpu vs cuda adapter after 3 steps, worst max |diff| / max |value| {worst:.2e} ({name}): "
      f"{'ok' if ok_ad else 'FAIL'}")
print("device_e2e:", "PASS" if ok_img and ok_ad else "FAIL")
sys.exit(0 if ok_img and ok_ad else 1)
PY
