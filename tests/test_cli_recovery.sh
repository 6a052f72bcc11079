#!/usr/bin/env bash
# test_cli_recovery.sh — what a killed or failing command leaves behind, and where prompts may read:
#   train: stale "*.tmp.PID" files of a killed run are removed; --resume finishes the end-of-run files of a
#     run killed after its last checkpoint, starts over when there is no checkpoint yet, and names every
#     option changed since the checkpoint;
#   init / merge: a failure (here a full disk: a file-size limit) leaves no partial model folder;
#   generate: a <lora:NAME:...> tag cannot read outside the LoRA folder.
#
# usage: bash tests/test_cli_recovery.sh path/to/lorastyle [fixtures_dir]
set -u
export SOURCE_DATE_EPOCH=1700000000 # fixed kohya timestamps in the adapters, so runs compare byte for byte

LS=${1:?usage: test_cli_recovery.sh path/to/lorastyle [fixtures_dir]}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/../datasets/sample_style
. "$HERE/cli_lib.sh"
cli_begin lorastyle-cli-recovery

# a PID that is no running process: a finished child's
dead=$(sh -c 'echo $$')
# full disk: CMD... under a file-size limit of 40 KiB (SIGXFSZ ignored, so writes fail with EFBIG)
FSIZE=(bash -c "trap '' XFSZ; ulimit -f 40; exec \"\$0\" \"\$@\"")

# ==== init: written in OUT.tmp.PID and renamed ====
mkdir -p "$T/m.tmp.$dead/unet" # a killed init's leftover
cli_tiny_model
if [ -f "$T/m/model_index.json" ] && [ -z "$(ls -d "$T"/m.tmp.* 2>/dev/null)" ]; then
    ok "init: the model in place, a killed init's m.tmp.PID removed"
else
    bad "init" "$(ls "$T")"
fi
outdir
expect_fail "init on a full disk: no partial folder" "$o" "$o/m|write" "${FSIZE[@]}" "$LS" init --preset tiny -o "$o/m"
outdir
mkdir "$o/m" && echo x >"$o/m/keep"
KEEP="m" expect_fail "init into a non-empty folder" "$o" "$o/m|not empty" "$LS" init --preset tiny -o "$o/m"
[ "$(ls "$o/m")" = keep ] && ok "init: the non-empty folder untouched" || bad "init non-empty" "$(ls "$o/m")"
outdir
run "$LS" init --preset tiny -o "$o" # an empty folder is fine
[ "$rc" -eq 0 ] && [ -f "$o/model_index.json" ] && ok "init into an empty folder" || bad "init into an empty folder" "status $rc"

# ==== merge: the same for the merged model folder ====
outdir
expect_fail "merge on a full disk: no partial folder" "$o" "$o/mm" "${FSIZE[@]}" "$LS" merge "$T/m" -o "$o/mm"
outdir
run "$LS" merge "$T/m" -o "$o/mm" --dtype f16
[ "$rc" -eq 0 ] && [ -f "$o/mm/unet/diffusion_pytorch_model.safetensors" ] && [ "$(ls "$o")" = mm ] &&
    ok "merge: a whole folder, nothing else" || bad "merge" "status $rc: $(ls "$o")"

# ==== train: the rough edges of --resume ====
COMMON=(--model "$T/m" --resolution 64 --seed 3 --lr 1e-3 --batch 2 --no-samples --style-curve 0 --quiet --steps 4 --checkpoint-every 2)
run "$LS" train "$DATA" "${COMMON[@]}" -o "$T/ref"
[ "$rc" -eq 0 ] || { echo "training failed"; cat "$T/stderr"; exit 1; }
ADAPTER=sample_style.safetensors

# killed after the last checkpoint, before report.txt (with kill -9's leftovers): --resume finishes
cp -r "$T/ref" "$T/k9"
rm "$T/k9/report.txt" "$T/k9/loss.png"
: >"$T/k9/loss.png.tmp.$dead"
echo partial >"$T/k9/report.txt.tmp.$dead"
mkdir -p "$T/k9/samples" && : >"$T/k9/samples/step_000004.png.tmp.$dead"
echo mine >"$T/k9/live.tmp.$$" # a running process's temporary file stays
run "$LS" train "$DATA" "${COMMON[@]}" -o "$T/k9" --resume
if [ "$rc" -eq 0 ] && [ -s "$T/k9/report.txt" ] && [ -s "$T/k9/loss.png" ] &&
    cmp -s "$T/ref/$ADAPTER" "$T/k9/$ADAPTER" && ! grep -q "changed since" "$T/stderr"; then
    ok "--resume at the last step writes report.txt and loss.png (adapter unchanged, no option warning)"
else
    bad "--resume at the last step" "status $rc: $(cat "$T/stderr")"
fi
left=$(cd "$T/k9" && find . -name "*.tmp.$dead")
[ -z "$left" ] && [ -f "$T/k9/live.tmp.$$" ] && ok "stale *.tmp.PID files removed, a live process's kept" \
    || bad "stale temporary files" "left: $left; $(ls "$T/k9")"
expect_fail "--resume of a finished run" "" "nothing left to train|--steps" "$LS" train "$DATA" "${COMMON[@]}" -o "$T/k9" --resume

# killed before the first checkpoint: --resume starts over by itself, with a note
cp -r "$T/ref" "$T/k0"
rm -f "$T/k0/checkpoint.safetensors" "$T/k0/$ADAPTER" "$T/k0/report.txt"
run "$LS" train "$DATA" "${COMMON[@]}" -o "$T/k0" --resume
if [ "$rc" -eq 0 ] && grep -q "no checkpoint yet.*starting the training over" "$T/stderr" &&
    cmp -s "$T/ref/$ADAPTER" "$T/k0/$ADAPTER"; then
    ok "--resume without a checkpoint starts over (note; same adapter as the uninterrupted run)"
else
    bad "--resume without a checkpoint" "status $rc: $(cat "$T/stderr")"
fi
outdir
expect_fail "--resume without an output folder" "$o" "$o/x|--resume" "$LS" train "$DATA" "${COMMON[@]}" -o "$o/x" --resume

# changed options on --resume: a warning naming each
run "$LS" train "$DATA" "${COMMON[@]}" -o "$T/ref" --resume --steps 5 --lr 2e-3
if [ "$rc" -eq 0 ] && grep -q "^lorastyle: warning: resuming with 2 options changed" "$T/stderr" &&
    grep -q "steps: 4 → 5" "$T/stderr" && grep -q "lr: 0.001 → 0.002" "$T/stderr" &&
    [ "$(grep -c '^5,' "$T/ref/loss.csv")" -eq 1 ] && [ -s "$T/ref/report.txt" ]; then
    ok "--resume with changed --steps and --lr warns naming both"
else
    bad "--resume with changed options" "status $rc: $(cat "$T/stderr")"
fi

# ==== generate: <lora:...> tags stay inside the LoRA folder ====
mkdir -p "$T/loras/sub"
cp "$T/ref/$ADAPTER" "$T/loras/style.safetensors"
cp "$T/ref/$ADAPTER" "$T/loras/sub/style2.safetensors"
cp "$T/ref/$ADAPTER" "$T/outside.safetensors"
GEN=(--model "$T/m" --steps 2 --width 64 --height 64 --seed 1 --lora-dir "$T/loras")
for tag in "../outside" "sub/../../outside" "$T/outside"; do
    outdir
    expect_fail "<lora:$tag:1> outside --lora-dir" "$o" "<lora:$tag:|LoRA folder" "$LS" generate "a photo <lora:$tag:1>" "${GEN[@]}" -o "$o/x.png"
done
outdir
run "$LS" generate "a photo <lora:style:1> <lora:sub/style2:0.5>" "${GEN[@]}" -o "$o/x.png"
[ "$rc" -eq 0 ] && [ -s "$o/x.png" ] && ok "<lora:NAME> and <lora:sub/NAME> inside --lora-dir load" \
    || bad "tags inside --lora-dir" "status $rc: $(cat "$T/stderr")"

summary
