#!/usr/bin/env bash
# test_cli_train.sh — `lorastyle train` from the command line: a real Ctrl-C (SIGINT) saves a checkpoint
# and exits 130, `--resume` finishes the run with an adapter byte-identical to an uninterrupted run;
# `--config FILE` with command-line overrides; the output files; bad options and files.
#
# usage: bash tests/test_cli_train.sh path/to/lorastyle [fixtures_dir]
# Uses a fresh tiny model (`lorastyle init --preset tiny`) and datasets/sample_style at 64×64.
set -u

LS=${1:?usage: test_cli_train.sh path/to/lorastyle [fixtures_dir]}
export SOURCE_DATE_EPOCH=1700000000 # fixed kohya timestamps in the adapters, so runs compare byte for byte
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/../datasets/sample_style
. "$HERE/cli_lib.sh"
cli_begin lorastyle-cli-train

cli_tiny_model
COMMON=(--model "$T/m" --resolution 64 --seed 3 --lr 1e-3 --batch 2 --flip --no-samples --quiet)

# ---- Ctrl-C and --resume ----
STEPS=400
run "$LS" train "$DATA" "${COMMON[@]}" --steps $STEPS -o "$T/full"
[ "$rc" -eq 0 ] && ok "uninterrupted run" || bad "uninterrupted run" "status $rc"

"$LS" train "$DATA" "${COMMON[@]}" --steps $STEPS -o "$T/int" >"$T/stdout" 2>"$T/stderr" &
pid=$!
for _ in $(seq 1 600); do # wait (up to 60 s) until a few steps are logged
    [ "$(cat "$T/int/loss.csv" 2>/dev/null | wc -l)" -ge 6 ] && break
    sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
done_steps=$(($(wc -l <"$T/int/loss.csv") - 1))
if [ "$rc" -eq 130 ] && grep -q "interrupted at step $done_steps of $STEPS" "$T/stderr" &&
    grep -q -- "--resume" "$T/stderr" && [ -f "$T/int/checkpoint.safetensors" ] &&
    [ -f "$T/int/sample_style-step$(printf %08d "$done_steps").safetensors" ] && [ ! -e "$T/int/sample_style.safetensors" ]; then
    ok "Ctrl-C at step $done_steps: exit 130, checkpoint + step-named adapter saved, resume hint"
else
    bad "Ctrl-C" "status $rc, $(cat "$T/stderr")"
fi
if [ "$done_steps" -ge $STEPS ]; then
    skipped "resume after Ctrl-C" "the run finished before the signal arrived"
else
    run "$LS" train "$DATA" "${COMMON[@]}" --steps $STEPS -o "$T/int" --resume
    if [ "$rc" -eq 0 ] && cmp -s "$T/full/sample_style.safetensors" "$T/int/sample_style.safetensors"; then
        ok "--resume after Ctrl-C: adapter byte-identical to the uninterrupted run"
    else
        bad "--resume after Ctrl-C" "status $rc or adapters differ"
    fi
    cut -d, -f1-4 "$T/full/loss.csv" >"$T/a.csv"
    cut -d, -f1-4 "$T/int/loss.csv" >"$T/b.csv"
    cmp -s "$T/a.csv" "$T/b.csv" && ok "loss.csv rows identical after resume" || bad "loss.csv" "rows differ"
fi
for f in sample_style.safetensors checkpoint.safetensors loss.csv loss.png config.json report.txt; do
    [ -s "$T/full/$f" ] || bad "output files" "missing $f"
done
ok "output files present"
# the default adapter (--targets all: attention, feed-forward, proj_in/out, convs) works in generate
if grep -q "LoCon on --targets all" "$T/full/report.txt"; then
    for mode in unmerged merged; do
        run "$LS" generate "a photo" --model "$T/m" --lora "$T/full/sample_style.safetensors:0.8" --lora-mode $mode \
            --steps 2 --width 64 --height 64 -o "$T/default_$mode.png"
        [ "$rc" -eq 0 ] && [ -s "$T/default_$mode.png" ] && ok "the default adapter loads in generate ($mode)" \
            || bad "default adapter in generate ($mode)" "status $rc"
    done
else
    bad "default targets" "report.txt does not say 'LoCon on --targets all'"
fi

# ---- --config FILE, overridden by the command line ----
cat >"$T/train.json" <<JSON
{"steps": 5, "rank": 2, "resolution": 64, "seed": 9, "samples": false}
JSON
run "$LS" train "$DATA" --model "$T/m" --config "$T/train.json" --steps 3 -o "$T/cfg" --quiet
if [ "$rc" -eq 0 ] && grep -Eq '"steps":[[:space:]]*3,' "$T/cfg/config.json" &&
    grep -Eq '"rank":[[:space:]]*2,' "$T/cfg/config.json" &&
    [ "$(($(wc -l <"$T/cfg/loss.csv") - 1))" -eq 3 ]; then
    ok "--config FILE with a command-line override"
else
    bad "--config" "status $rc"
fi
# the effective config.json is itself a valid --config
run "$LS" train "$DATA" --config "$T/cfg/config.json" -o "$T/cfg2" --quiet
if [ "$rc" -eq 0 ] && cmp -s "$T/cfg/sample_style.safetensors" "$T/cfg2/sample_style.safetensors"; then
    ok "config.json reproduces the run"
else
    bad "config.json reproduces the run" "status $rc or adapters differ"
fi

# ---- bad input: one error line, nothing trained ----
echo '{"stepz": 1}' >"$T/bad.json"
outdir
expect_fail "unknown config key" "$o" "bad.json|stepz" "$LS" train "$DATA" --model "$T/m" --config "$T/bad.json" -o "$o/x"
outdir
expect_fail "--config on a folder" "$o" "--model-config" "$LS" train "$DATA" --model "$T/m" --config "$T/m" -o "$o/x"
outdir
expect_fail "--resume without a run" "$o" "$o/x|--resume" "$LS" train "$DATA" --model "$T/m" -o "$o/x" --resume
expect_fail "existing OUT" "" "$T/full|--resume|--force" "$LS" train "$DATA" "${COMMON[@]}" --steps 2 -o "$T/full"
outdir
expect_fail "unknown option" "$o" "--stepz" "$LS" train "$DATA" --stepz 3 -o "$o/x"
outdir
expect_fail "bad method" "$o" "--method|dreambooth" "$LS" train "$DATA" --method dreambooth -o "$o/x"
outdir
expect_fail "built-in model missing" "$o" "$o/nomodel|built-in model is not here" env LORASTYLE_MODEL="$o/nomodel" "$LS" train "$DATA" -o "$o/x"
outdir
expect_fail "missing sample prompts" "$o" "nope.txt" "$LS" train "$DATA" --model "$T/m" --resolution 64 --sample-prompts "$T/nope.txt" -o "$o/x"
outdir
expect_fail "bad strengths" "$o" "--sample-strengths" "$LS" train "$DATA" --sample-strengths "0,,1" -o "$o/x"
outdir
expect_fail "LoCon with adapters" "$o" "--conv-rank|adapter" "$LS" train "$DATA" --method adapter --conv-rank 2 -o "$o/x"
outdir
expect_fail "--targets with adapters" "$o" "--targets|adapter" "$LS" train "$DATA" --method adapter --targets attn -o "$o/x"
outdir
expect_fail "bad --targets entry" "$o" "--targets 'atn'|matches no U-Net module|groups: attn, ff, proj, conv, all" \
    "$LS" train "$DATA" --model "$T/m" --resolution 64 --quiet --no-samples --targets attn,atn -o "$o/x"
outdir
expect_fail "bad save precision" "$o" "--save-precision|fp8" "$LS" train "$DATA" --method full --save-precision fp8 -o "$o/x"

# ---- a corrupt and a truncated image are skipped, counted and named in report.txt ----
mkdir -p "$T/bad/2_style"
cp "$DATA"/*/*.png "$DATA"/*/*.txt "$T/bad/2_style/"
printf 'not a png at all' >"$T/bad/2_style/zz_corrupt.png"
f=$(ls "$DATA"/*/*.png | head -1)
head -c 200 "$f" >"$T/bad/2_style/zz_trunc.png"
run "$LS" train "$T/bad" "${COMMON[@]}" --steps 2 -o "$T/badout"
if [ "$rc" -eq 0 ] && grep -q "2 skipped" "$T/badout/report.txt" && grep -q "zz_trunc.png.*truncated" "$T/badout/report.txt"; then
    ok "bad images skipped, counted and named in report.txt"
else
    bad "bad images" "status $rc: $(cat "$T/stderr") / $(cat "$T/badout/report.txt" 2>/dev/null)"
fi

# ---- every option of the table (src/train/train_opts.c) is in --help ----
run "$LS" train --help
missing=""
for f in $(grep -o '"--[a-z-]*"' "$HERE/../src/train_opts.c" | tr -d '"' | sort -u); do
    [ "$f" = "--output" ] && continue # the long form of -o
    grep -qE -- "$f( |]|\)|$)" "$T/stdout" || missing="$missing $f" # the whole flag, not a prefix
done
[ "$rc" -eq 0 ] && [ -z "$missing" ] && ok "train --help lists every option" || bad "train --help" "missing:$missing"

# ---- a training checkpoint is not an adapter: said so, by generate and info ----
outdir
expect_fail "checkpoint given as --lora" "$o" "checkpoint.safetensors|training checkpoint|NAME.safetensors" \
    "$LS" generate "a photo" --model "$T/m" --lora "$T/full/checkpoint.safetensors" -o "$o/x.png"
run "$LS" info "$T/full/checkpoint.safetensors"
[ "$rc" -eq 0 ] && grep -q "training checkpoint.*step $STEPS of $STEPS" "$T/stdout" && ok "info on a checkpoint" \
    || bad "info on a checkpoint" "$(cat "$T/stdout" "$T/stderr")"

# ---- kohya sample-prompt options: --ss sampler parsed (not read as --s), --w/--h and unknown ones warned ----
printf 'pastel shapes --n ugly --d 7 --s 3 --l 5 --ss dpmpp_2m_karras --w 512 --h 768\nsecond --zz 3\n' >"$T/sp1.txt"
run "$LS" train "$DATA" --model "$T/m" --resolution 64 --steps 2 --sample-prompts "$T/sp1.txt" -o "$T/sp1"
if [ "$rc" -eq 0 ] && [ -f "$T/sp1/samples/step_000002.png" ] && grep -q "sp1.txt:1: --w not used" "$T/stderr" &&
    grep -q "sp1.txt:2: unknown option --zz" "$T/stderr"; then
    ok "sample prompts: kohya options incl. --ss; --w/--h and unknown ones warned with file:line"
else
    bad "sample prompt options" "status $rc: $(tail -3 "$T/stderr")"
fi
printf 'x --ss nosuch\n' >"$T/sp2.txt"
outdir
expect_fail "bad --ss in sample prompts" "$o" "sp2.txt:1|--ss|nosuch" "$LS" train "$DATA" --model "$T/m" --resolution 64 \
    --steps 2 --sample-prompts "$T/sp2.txt" -o "$o/x"

# ---- the sample prompts file is read again when it changes during the run ----
echo "pastel shapes" >"$T/prompts.txt"
"$LS" train "$DATA" --model "$T/m" --resolution 64 --seed 3 --steps 400 --sample-every 40 --sample-steps 2 \
    --sample-strengths 1 --sample-prompts "$T/prompts.txt" -o "$T/sp" >"$T/stdout" 2>"$T/stderr" &
pid=$!
for _ in $(seq 600); do [ -f "$T/sp/samples/step_000040.png" ] && break; sleep 0.05; done
printf 'pastel shapes\na second prompt --d 7\n' >"$T/prompts.txt"
wait $pid
rc=$?
w40=$(python3 -c "import struct,sys; print(struct.unpack('>I', open(sys.argv[1],'rb').read()[16:20])[0])" \
    "$T/sp/samples/step_000040.png" 2>/dev/null || echo 0)
wend=$(python3 -c "import struct,sys; print(struct.unpack('>I', open(sys.argv[1],'rb').read()[16:20])[0])" \
    "$T/sp/samples/step_000400.png" 2>/dev/null || echo 0)
if [ "$rc" -eq 0 ] && [ "$w40" -gt 0 ] && [ "$wend" -gt "$w40" ] && grep -q "prompts.txt changed: 2 sample prompts" "$T/stderr"; then
    ok "sample prompts edited mid-run: the grid gains a column (${w40} → ${wend} px wide)"
else
    bad "sample prompts reload" "status $rc, widths $w40 → $wend: $(tail -3 "$T/stderr")"
fi

# ---- the other methods: their outputs work in generate ----
run "$LS" train "$DATA" "${COMMON[@]}" --steps 3 --method full --save-precision fp16 -o "$T/mfull"
run2_rc=$rc
run "$LS" generate "a photo" --model "$T/mfull/sample_style" --steps 2 --width 64 --height 64 -o "$T/mfull.png"
[ "$run2_rc" -eq 0 ] && [ "$rc" -eq 0 ] && [ -s "$T/mfull.png" ] && grep -q "full fine-tuning" "$T/mfull/report.txt" \
    && ok "--method full: a model folder that generate loads" || bad "--method full" "$(cat "$T/stderr")"
# a single-file checkpoint in → a single file out
run "$LS" convert "$T/m" -o "$T/single.safetensors" --dtype f32
run "$LS" train "$DATA" "${COMMON[@]}" --steps 2 --method full --model "$T/single.safetensors" --model-config "$T/m" \
    --tokenizer "$T/m/tokenizer" -o "$T/mfull1"
run2_rc=$rc
run "$LS" generate "a photo" --model "$T/mfull1/sample_style.safetensors" --config "$T/m" --tokenizer "$T/m/tokenizer" \
    --steps 2 --width 64 --height 64 -o "$T/mfull1.png"
[ "$run2_rc" -eq 0 ] && [ "$rc" -eq 0 ] && [ -s "$T/mfull1.png" ] && ok "--method full on a single file writes a single file that generate loads" \
    || bad "--method full, single file" "$(cat "$T/stderr")"
for m in "--method adapter" "--train-text-encoder"; do
    # shellcheck disable=SC2086
    run "$LS" train "$DATA" "${COMMON[@]}" --steps 3 $m -o "$T/m2"
    run2_rc=$rc
    run "$LS" generate "a photo" --model "$T/m" --lora "$T/m2/sample_style.safetensors:0.8" --steps 2 --width 64 \
        --height 64 -o "$T/m2.png"
    [ "$run2_rc" -eq 0 ] && [ "$rc" -eq 0 ] && [ -s "$T/m2.png" ] && ok "$m: an adapter that generate loads" \
        || bad "$m" "$(cat "$T/stderr")"
    rm -rf "$T/m2"
done

# ---- a diverging run stops with a message and keeps the last checkpoint ----
outdir
expect_fail "NaN loss" "" "step 2|the last good checkpoint is kept" "$LS" train "$DATA" "${COMMON[@]}" --lr 1e30 \
    --max-grad-norm 0 --steps 20 --checkpoint-every 1 -o "$o/x"
[ -f "$o/x/checkpoint.safetensors" ] && ok "NaN: checkpoint of step 1 kept" || bad "NaN" "no checkpoint kept"

# ---- a full disk (file-size limit) while checkpointing: an error, the previous checkpoint untouched ----
run "$LS" train "$DATA" "${COMMON[@]}" --steps 4 --checkpoint-every 2 -o "$T/disk"
cp "$T/disk/checkpoint.safetensors" "$T/ckpt.before"
# loss.csv and cache files still fit under a 100 KiB limit; the checkpoint (~210 KiB) does not
outdir
expect_fail "full disk on checkpoint" "" "checkpoint|not saved|kept" bash -c \
    "trap '' XFSZ; ulimit -f 100; exec \"\$0\" \"\$@\"" "$LS" train "$DATA" "${COMMON[@]}" --steps 8 \
    --checkpoint-every 2 -o "$T/disk" --resume
if cmp -s "$T/ckpt.before" "$T/disk/checkpoint.safetensors" && [ -z "$(ls "$T/disk" | grep '\.tmp')" ]; then
    ok "full disk: previous checkpoint byte-identical, no temporary file left"
else
    bad "full disk" "checkpoint changed or a temporary file was left: $(ls "$T/disk")"
fi

summary
