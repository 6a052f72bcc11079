#!/usr/bin/env bash
# test_kohya_metadata.sh — the kohya metadata of a trained adapter (sshs_* hashes, ss_sd_model_hash /
# ss_new_sd_model_hash, timestamps, ss_bucket_info, ss_dataset_dirs, modelspec.*) recomputed independently
# by tests/check_kohya_metadata.py: once on a diffusers folder (epsilon), once on a single file of a
# v-prediction, zero-terminal-SNR model with buckets and an adapter over 1.1 MiB (so the legacy hashes
# cover real bytes).
#
# usage: bash tests/test_kohya_metadata.sh path/to/lorastyle [fixtures_dir]
set -u

LS=${1:?usage: test_kohya_metadata.sh path/to/lorastyle [fixtures_dir]}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/../datasets/sample_style
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the independent check"; exit 77; }
. "$HERE/cli_lib.sh"
cli_begin lorastyle-kohya-meta

cli_tiny_model
COMMON=(--resolution 64 --seed 3 --steps 2 --batch 2 --no-samples --style-curve 0 --quiet)

run "$LS" train "$DATA" --model "$T/m" "${COMMON[@]}" -o "$T/a"
if [ "$rc" -eq 0 ] && python3 "$HERE/check_kohya_metadata.py" "$T/a/sample_style.safetensors" "$T/m" epsilon >"$T/check" 2>&1
then ok "diffusers folder, epsilon: kohya metadata recomputed"
else bad "diffusers folder" "status $rc; $(grep -v '^ok' "$T/check" 2>/dev/null; cat "$T/stderr")"; fi

python3 - "$T/m/scheduler/scheduler_config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(prediction_type="v_prediction", rescale_betas_zero_snr=True)
json.dump(c, open(sys.argv[1], "w"))
EOF
run "$LS" convert "$T/m" --dtype f32 -o "$T/m.safetensors"
[ "$rc" -eq 0 ] || { echo "convert failed"; cat "$T/stderr"; exit 1; }
run "$LS" train "$DATA" --model "$T/m.safetensors" --model-config "$T/m" "${COMMON[@]}" --buckets --rank 32 \
    --alpha 16 -o "$T/b"
f=$T/b/sample_style.safetensors
if [ "$rc" -eq 0 ] && [ "$(stat -c %s "$f")" -gt $((0x110000)) ] &&
    python3 "$HERE/check_kohya_metadata.py" "$f" "$T/m.safetensors" v >"$T/check" 2>&1
then ok "single file, v-prediction, buckets, $(stat -c %s "$f")-byte adapter: kohya metadata recomputed"
else bad "single file, v-prediction" "status $rc; $(grep -v '^ok' "$T/check" 2>/dev/null; cat "$T/stderr")"; fi

summary
