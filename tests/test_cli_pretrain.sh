#!/usr/bin/env bash
# test_cli_pretrain.sh — the commands that make the built-in base model: `lorastyle scenes` (deterministic
# captioned scene folders), `lorastyle init --preset base`, `lorastyle pretrain vae|diffusion` (a run stopped
# after its first checkpoint and resumed writes the same model files, byte for byte, as an uninterrupted
# run; the checkpoint remembers the options), `merge` without adapters (the f16 copy), bad input.
#
# usage: bash tests/test_cli_pretrain.sh path/to/lorastyle [fixtures_dir]
set -u

LS=${1:?usage: test_cli_pretrain.sh path/to/lorastyle [fixtures_dir]}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cli_lib.sh"
cli_begin lorastyle-cli-pretrain

# ---- scenes ----
run "$LS" scenes -o "$T/s1" --style ink -n 6 --seed 4
run "$LS" scenes -o "$T/s2" --style ink -n 6 --seed 4
if [ "$rc" -eq 0 ] && [ "$(ls "$T/s1/10_ink" | wc -l)" -eq 12 ] && diff -r "$T/s1" "$T/s2" >/dev/null; then
    ok "scenes: 6 images + captions in 10_ink/, the same for the same seed"
else bad "scenes" "status $rc or files differ"; fi
run "$LS" scenes --captions -n 200 --seed 1
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$T/stdout")" -eq 200 ] && ! grep -qv ' background$' "$T/stdout"; then
    ok "scenes --captions: 200 captions of the grammar"
else bad "scenes --captions" "status $rc"; fi
run "$LS" scenes --captions -n 40 --set heldout
if [ "$rc" -eq 0 ] && [ "$(sort -u "$T/stdout" | wc -l)" -ge 16 ]; then ok "scenes --set heldout"; else bad "heldout" "$rc"; fi
expect_fail "unknown style" "" "--style|cubist" "$LS" scenes -o "$T/s3" --style cubist
expect_fail "unknown set" "" "--set|everything" "$LS" scenes --captions --set everything

# ---- init --preset base ----
run "$LS" init --preset base --seed 2 -o "$T/m"
[ "$rc" -eq 0 ] && ok "init --preset base" || { bad "init --preset base" "status $rc"; exit 1; }
run "$LS" info "$T/m"
if grep -q "block_out_channels 64,128,128" "$T/stdout" && grep -q "scale factor 4" "$T/stdout" &&
    grep -q "default image size: 64x64" "$T/stdout"; then ok "base preset shapes"; else bad "base preset" "$(cat "$T/stdout")"; fi
expect_fail "init refuses to overwrite by default" "" "exists" bash -c "mkdir -p sub/models/base && cd sub && exec \"\$0\" init --preset base" "$LS"

# ---- pretrain: stop + resume == uninterrupted ----
for stage in vae diffusion; do
    cp -r "$T/m" "$T/a_$stage" && cp -r "$T/m" "$T/b_$stage"
    run "$LS" pretrain $stage "$T/a_$stage" --work "$T/wa_$stage" --steps 4 --batch 2 --checkpoint-every 2 --seed 5 --quiet
    ra=$rc
    # the same run in two parts: --stop-after 2 stops as Ctrl-C does (checkpoint, exit 130)
    run "$LS" pretrain $stage "$T/b_$stage" --work "$T/wb_$stage" --steps 4 --batch 2 --checkpoint-every 2 --seed 5 --quiet --stop-after 2
    rb=$rc
    run "$LS" pretrain $stage "$T/b_$stage" --work "$T/wb_$stage" --resume --quiet
    rr=$rc
    same=1
    for f in unet/diffusion_pytorch_model.safetensors vae/diffusion_pytorch_model.safetensors text_encoder/model.safetensors vae/config.json; do
        cmp -s "$T/a_$stage/$f" "$T/b_$stage/$f" || same=0
    done
    cmp -s "$T/wa_$stage/checkpoint.safetensors" "$T/wb_$stage/checkpoint.safetensors" || same=0
    if [ $ra -eq 0 ] && [ $rb -eq 130 ] && [ $rr -eq 0 ] && [ $same -eq 1 ]; then
        ok "pretrain $stage: stopped at 2 of 4 + --resume (options from the checkpoint) == uninterrupted, byte for byte"
    else bad "pretrain $stage resume" "status $ra/$rb/$rr, same=$same"; fi
    if [ "$(wc -l <"$T/wa_$stage/loss.csv")" -eq 5 ] && [ "$(wc -l <"$T/wb_$stage/loss.csv")" -eq 5 ]; then
        ok "pretrain $stage: loss.csv has one row per step after the resume"
    else bad "pretrain $stage loss.csv" "$(wc -l <"$T/wb_$stage/loss.csv") lines"; fi
done
# --object-weight on the diffusion loss: the same step, objects weighted (weights averaging 1 per image), so a
# finite loss that differs from the unweighted one
cp -r "$T/m" "$T/ow"
run "$LS" pretrain diffusion "$T/ow" --work "$T/wow" --steps 1 --batch 2 --seed 5 --object-weight 4 --quiet
l0=$(sed -n 2p "$T/wa_diffusion/loss.csv" | cut -d, -f2); l1=$(sed -n 2p "$T/wow/loss.csv" 2>/dev/null | cut -d, -f2)
if [ "$rc" -eq 0 ] && awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b == b + 0 && b > 0 && b < 100 && a != b) }'; then
    ok "pretrain diffusion --object-weight: finite weighted loss ($l1, unweighted $l0)"
else bad "pretrain diffusion --object-weight" "status $rc, loss '$l1' vs '$l0'"; fi
grep -q '"scaling_factor": 0.18215' "$T/a_vae/vae/config.json" && bad "vae scaling factor" "not measured" || ok "pretrain vae measures the latent scaling factor"

# ---- bad input ----
expect_fail "unknown stage" "" "stage|clip" "$LS" pretrain clip "$T/m"
expect_fail "no model" "" "$T/nope" "$LS" pretrain vae "$T/nope" --work "$T/w1"
expect_fail "existing checkpoint" "" "checkpoint|--resume" "$LS" pretrain vae "$T/a_vae" --work "$T/wa_vae" --steps 4
expect_fail "resume without checkpoint" "" "no checkpoint" "$LS" pretrain vae "$T/m" --work "$T/w2" --resume
expect_fail "bad lr" "" "--lr" "$LS" pretrain vae "$T/m" --work "$T/w3" --lr -1

# ---- merge without adapters: an f16 copy ----
run "$LS" merge "$T/a_diffusion" -o "$T/f16" --dtype f16
run "$LS" generate "a large red circle on the left on a white background" --model "$T/f16" --steps 2 -o "$T/x.png"
[ "$rc" -eq 0 ] && [ -s "$T/x.png" ] && ok "merge without --lora writes a loadable f16 copy" || bad "f16 copy" "status $rc"

# ---- the built-in model (models/base, found beside the build folder) trains on a shipped style ----
run "$LS" train "$HERE/../datasets/styles/ink" -o "$T/ink" --steps 4 --batch 2 --no-samples --style-curve 2 --quiet
if [ "$rc" -eq 0 ] && [ -s "$T/ink/ink.safetensors" ] && grep -q "^style curve: .*at strength 0 / 0.5 / 1" "$T/ink/report.txt" &&
    grep -q "models/base" "$T/ink/config.json"; then
    ok "train on datasets/styles/ink with the built-in model: adapter, report with a style curve"
else bad "train on a shipped style" "status $rc"; fi
run "$LS" generate "a small blue star at the top on a white background" --lora "$T/ink/ink.safetensors:1" --steps 4 -o "$T/ink.png"
[ "$rc" -eq 0 ] && [ -s "$T/ink.png" ] && ok "generate with that adapter" || bad "generate with the adapter" "status $rc"

summary
