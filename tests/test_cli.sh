#!/usr/bin/env bash
# test_cli.sh — the lorastyle command line against bad input (and a few good runs).
#
# usage: bash tests/test_cli.sh path/to/lorastyle [fixtures_dir]
#
# Makes a tiny random model in a temporary folder, then breaks copies of it one way at a time. Every bad
# input must give:
#   - a non-zero exit status below 128 (no signal, no abort) within the time limit (no hang);
#   - on stderr exactly ONE line starting "lorastyle: error:" that contains the offending file path (or
#     option) and the problem. Lines starting "lorastyle: warning:" are allowed in addition (they are
#     advice, not errors) and are not counted;
#   - no output PNG and no leftover temporary file (out.png.tmp.*) in the output folder.
# LS_TEST_VERBOSE=1 prints every error line; LS_TEST_LIMIT=N changes the per-command time limit (60 s).
# Needs bash, coreutils and python3 (standard library only: struct, json) for crafting files.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

LS=${1:?usage: test_cli.sh path/to/lorastyle [fixtures_dir]}
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to craft test files"; exit 77; }
. "$HERE/cli_lib.sh" # cli_begin, ok, bad, skipped, run, expect_fail, outdir, summary
cli_begin lorastyle-cli

# copy of the base model to break
variant() {
    rm -rf "$T/$1"
    cp -r "$T/m" "$T/$1"
    echo "$T/$1"
}

is_png() { [ "$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# ---- python3 helpers (standard library only) ----
cat >"$T/st.py" <<'EOF'
import json, struct, sys

from cli_files import png_data, st_read, st_write  # tests/cli_files.py

def first_tensor(hdr):  # the tensor whose data starts the buffer
    return min((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][0])

cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "dtype":      # FILE NEWDTYPE: relabel the first tensor (same element size, e.g. F32 -> I32)
    hdr, data = st_read(a[0])
    hdr[first_tensor(hdr)]["dtype"] = a[1]
    st_write(a[0], hdr, data)
elif cmd == "nan":      # FILE: overwrite the first 4 data bytes (an F32 element) with a quiet NaN
    hdr, data = st_read(a[0])
    st_write(a[0], hdr, struct.pack("<I", 0x7FC00000) + data[4:])
elif cmd == "badjson":  # FILE: break the header JSON after its "{" (same length)
    b = bytearray(open(a[0], "rb").read())
    b[9:14] = b"@@@@@"
    open(a[0], "wb").write(bytes(b))
elif cmd == "hdrlen":   # FILE N: set the header length field
    b = open(a[0], "rb").read()
    open(a[0], "wb").write(struct.pack("<Q", int(a[1])) + b[8:])
elif cmd == "tensor":   # FILE DTYPE D0 D1 ...: one zero tensor named "latent"
    shape = [int(x) for x in a[2:]]
    size = {"F32": 4, "I32": 4, "F16": 2}[a[1]]
    n = 1
    for d in shape: n *= d
    st_write(a[0], {"latent": {"dtype": a[1], "shape": shape, "data_offsets": [0, n * size]}}, bytes(n * size))
elif cmd == "json":     # FILE KEY VALUE|--delete: edit a config
    o = json.load(open(a[0]))
    if a[2] == "--delete": del o[a[1]]
    else: o[a[1]] = json.loads(a[2])
    json.dump(o, open(a[0], "w"), indent=2)
elif cmd == "sameidat": # A B: exit 0 if both PNGs hold the same pixels
    sys.exit(0 if png_data(a[0]) == png_data(a[1]) else 1)
EOF
st() { PYTHONPATH="$HERE" python3 "$T/st.py" "$@"; }

# ---- the base model ----
if ! run "$LS" init --preset tiny -o "$T/m" --seed 1 || [ "$rc" -ne 0 ]; then
    echo "cannot make the tiny model:"; cat "$T/stderr"; exit 1
fi
M=$T/m
UW=unet/diffusion_pytorch_model.safetensors
GEN=(generate "a red fox" --steps 1 --width 64 --height 64 --seed 1)

# ==== command line ====
run "$LS"
if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -q '^usage:' "$T/stderr"; then ok "no arguments: usage on stderr"
else bad "no arguments" "rc=$rc, expected usage on stderr and a non-zero status"; fi
run "$LS" --help
if [ "$rc" -eq 0 ] && grep -q '^usage:' "$T/stdout" && [ ! -s "$T/stderr" ]; then ok "--help: usage on stdout"
else bad "--help" "rc=$rc, expected usage on stdout and status 0"; fi
run "$LS" generate --help
if [ "$rc" -eq 0 ] && grep -q '^usage:' "$T/stdout"; then ok "generate --help"
else bad "generate --help" "rc=$rc, expected usage on stdout and status 0"; fi
expect_fail "unknown command" "" "frobnicate|unknown command" "$LS" frobnicate
expect_fail "generate: no prompt" "" "prompt" "$LS" generate --model "$M"
expect_fail "generate: unknown option" "" "--frob|unknown option" "$LS" "${GEN[@]}" --model "$M" --frob 1
expect_fail "generate: option without value" "" "--steps|needs a value" "$LS" generate x --model "$M" --steps
expect_fail "generate --params-from: missing file" "" "$T/nope.png" "$LS" generate --model "$M" --params-from "$T/nope.png"
printf 'not a png' >"$T/notpng.png"
expect_fail "generate --params-from: not a PNG" "" "$T/notpng.png" "$LS" generate --model "$M" --params-from "$T/notpng.png"
expect_fail "sweep --params-from: a generate option" "" "--params-from|unknown option" "$LS" sweep x --model "$M" --params-from "$T/nope.png"
expect_fail "info: no argument" "" "info" "$LS" info

# ==== options ====
outdir; expect_fail "unknown sampler" "$o" "unknown sampler|frob" "$LS" "${GEN[@]}" --model "$M" --sampler frob -o "$o/out.png"
outdir; expect_fail "--width 0" "$o" "--width|'0'" "$LS" "${GEN[@]}" --model "$M" --width 0 -o "$o/out.png"
outdir; expect_fail "--width 100 (not a multiple of 8)" "$o" "--width|100|multiple of 8" "$LS" "${GEN[@]}" --model "$M" --width 100 -o "$o/out.png"
outdir; expect_fail "--height 20 (not a multiple of 8)" "$o" "--height|20|multiple of 8" "$LS" "${GEN[@]}" --model "$M" --height 20 -o "$o/out.png"
outdir; expect_fail "--width -64" "$o" "--width|'-64'" "$LS" "${GEN[@]}" --model "$M" --width -64 -o "$o/out.png"
outdir; expect_fail "--steps 0" "$o" "--steps|'0'" "$LS" "${GEN[@]}" --model "$M" --steps 0 -o "$o/out.png"
outdir; expect_fail "--steps abc" "$o" "--steps|'abc'" "$LS" "${GEN[@]}" --model "$M" --steps abc -o "$o/out.png"
outdir; expect_fail "--steps 2x" "$o" "--steps|'2x'" "$LS" "${GEN[@]}" --model "$M" --steps 2x -o "$o/out.png"
outdir; expect_fail "--cfg nan" "$o" "--cfg|'nan'" "$LS" "${GEN[@]}" --model "$M" --cfg nan -o "$o/out.png"
outdir; expect_fail "--cfg -1" "$o" "--cfg|-1" "$LS" "${GEN[@]}" --model "$M" --cfg -1 -o "$o/out.png"
outdir; expect_fail "--batch 0" "$o" "--batch|'0'" "$LS" "${GEN[@]}" --model "$M" --batch 0 -o "$o/out.png"
outdir; expect_fail "--seed xyz" "$o" "--seed|'xyz'" "$LS" "${GEN[@]}" --model "$M" --seed xyz -o "$o/out.png"
outdir; expect_fail "--clip-skip beyond the text encoder" "$o" "--clip-skip|9" "$LS" "${GEN[@]}" --model "$M" --clip-skip 9 -o "$o/out.png"

# ==== output path ====
expect_fail "output folder missing" "" "/nonexistent/x.png|does not exist" "$LS" "${GEN[@]}" --model "$M" -o /nonexistent/x.png
[ ! -e /nonexistent/x.png ] || bad "output folder missing" "/nonexistent/x.png exists"
expect_fail "empty output path" "" "-o|empty" "$LS" "${GEN[@]}" --model "$M" -o ""
outdir; mkdir "$o/out.png"
KEEP=out.png expect_fail "output path is a folder" "$o" "$o/out.png|folder" "$LS" "${GEN[@]}" --model "$M" -o "$o/out.png"
outdir; mkdir "$o/out-1.png"
KEEP=out-1.png expect_fail "batch output path is a folder" "$o" "$o/out-1.png|folder" "$LS" "${GEN[@]}" --model "$M" --batch 2 -o "$o/out.png"
outdir; chmod 555 "$o"
if [ "$(id -u)" -eq 0 ]; then skipped "read-only output folder" "root may write anywhere"
else expect_fail "read-only output folder" "$o" "$o/out.png|not writable" "$LS" "${GEN[@]}" --model "$M" -o "$o/out.png"; fi
chmod 755 "$o"
# a write that fails half way (file size limit; SIGXFSZ ignored so write() fails with EFBIG): the PNG is
# written to a temporary file which must be removed, never renamed into place.
outdir
expect_fail "write fails half way (file size limit)" "$o" "$o/out.png|too large" \
    bash -c 'trap "" XFSZ; ulimit -f 1; exec "$@"' _ "$LS" "${GEN[@]}" --model "$M" -o "$o/out.png"

# ==== model folder ====
outdir; expect_fail "model folder missing" "$o" "$T/nope|no such model" "$LS" "${GEN[@]}" --model "$T/nope" -o "$o/out.png"
V=$(variant noweights); rm "$V/$UW"
outdir; expect_fail "unet weights missing" "$o" "$V/unet|no weights file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant trunchdr); head -c 100 "$M/$UW" >"$V/$UW"
outdir; expect_fail "unet truncated in the header" "$o" "$V/$UW|truncated" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant truncdata); head -c $(($(stat -c %s "$M/$UW") - 1000)) "$M/$UW" >"$V/$UW"
outdir; expect_fail "unet truncated in the data" "$o" "$V/$UW|truncated" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant short); printf 'abc' >"$V/$UW"
outdir; expect_fail "unet file of 3 bytes" "$o" "$V/$UW|too short" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant empty); : >"$V/$UW"
outdir; expect_fail "unet file empty" "$o" "$V/$UW|too short" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant garbage); yes 'not a tensor file' | head -c 65536 >"$V/$UW"
outdir; expect_fail "unet file is garbage" "$o" "$V/$UW|not a safetensors file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant hdrhuge); cp "$M/$UW" "$V/$UW"; st hdrlen "$V/$UW" 9223372036854775807
outdir; expect_fail "header length absurd (2^63-1)" "$o" "$V/$UW|header length" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant hdrbig); st tensor "$V/$UW" F32 1; st hdrlen "$V/$UW" 200000000; truncate -s 200000100 "$V/$UW"
outdir; expect_fail "header length 200 MB (sparse file)" "$o" "$V/$UW|header length" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant hdrjson); st badjson "$V/$UW"
outdir; expect_fail "header is not JSON" "$o" "$V/$UW|JSON" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant dtype); st dtype "$V/$UW" I32
outdir; expect_fail "tensor with dtype I32" "$o" "$V/$UW|I32" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant nan); st nan "$V/$UW"
outdir; expect_fail "NaN in a weight" "$o" "$V/$UW|NaN" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant shape); st json "$V/unet/config.json" block_out_channels '[64, 64]'
outdir; expect_fail "shape mismatch (block_out_channels edited)" "$o" "$V/$UW|shape" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant nokey); st json "$V/unet/config.json" block_out_channels --delete
outdir; expect_fail "config key missing" "$o" "$V/unet/config.json|block_out_channels" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant badjson); printf '{"block_out_channels": [32, 64],' >"$V/vae/config.json"
outdir; expect_fail "config is invalid JSON" "$o" "$V/vae/config.json|JSON" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant cfgdir); rm "$V/unet/config.json"; mkdir "$V/unet/config.json"
outdir; expect_fail "config is a folder" "$o" "$V/unet/config.json|not a regular file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant cfgfifo); rm "$V/text_encoder/config.json"; mkfifo "$V/text_encoder/config.json"
outdir; expect_fail "config is a FIFO (no hang)" "$o" "$V/text_encoder/config.json|not a regular file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant vocabdir); rm "$V/tokenizer/vocab.json"; mkdir "$V/tokenizer/vocab.json"
outdir; expect_fail "tokenizer vocab.json is a folder (no crash)" "$o" "$V/tokenizer/vocab.json|not a regular file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant mergesfifo); rm "$V/tokenizer/merges.txt"; mkfifo "$V/tokenizer/merges.txt"
outdir; expect_fail "tokenizer merges.txt is a FIFO (no hang)" "$o" "$V/tokenizer/merges.txt|not a regular file" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant wrongtype); st json "$V/unet/config.json" layers_per_block '"two"'
outdir; expect_fail "config value of the wrong type" "$o" "$V/unet/config.json|layers_per_block" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
# config values out of their sane range: an error naming file, key and range, never an abort
V=$(variant layers); st json "$V/unet/config.json" layers_per_block 2000000000
outdir; expect_fail "config layers_per_block 2e9 (no abort)" "$o" "$V/unet/config.json|'layers_per_block'|[1, 32]|2000000000" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant heads); st json "$V/unet/config.json" attention_head_dim '[4, 0]'
outdir; expect_fail "config head count 0" "$o" "$V/unet/config.json|'attention_head_dim[1]'|[1, 8192]" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant latent); st json "$V/vae/config.json" latent_channels 1e12
outdir; expect_fail "config latent_channels 1e12" "$o" "$V/vae/config.json|'latent_channels'|[1, 256]" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant width); st json "$V/text_encoder/config.json" hidden_size -768
outdir; expect_fail "config hidden_size negative" "$o" "$V/text_encoder/config.json|'hidden_size'|[1, 8192]" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant eos); st json "$V/text_encoder/config.json" eos_token_id 49408
outdir; expect_fail "config eos_token_id outside the vocabulary" "$o" "$V/text_encoder/config.json|'eos_token_id'" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant block); st json "$V/unet/config.json" down_block_types '["CrossAttnDownBlock2D", "AttnDownBlock2D"]'
outdir; expect_fail "unsupported block type" "$o" "$V/unet/config.json|AttnDownBlock2D" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant vocab); printf '{"a": ' >"$V/tokenizer/vocab.json"
outdir; expect_fail "tokenizer vocab.json invalid" "$o" "$V/tokenizer/vocab.json" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"
V=$(variant sched); printf 'nope' >"$V/scheduler/scheduler_config.json"
outdir; expect_fail "scheduler config invalid" "$o" "$V/scheduler/scheduler_config.json|JSON" "$LS" "${GEN[@]}" --model "$V" -o "$o/out.png"

# ==== --init-latent ====
st tensor "$T/lat_bad.safetensors" F32 1 4 4 4
outdir; expect_fail "--init-latent of the wrong shape" "$o" "$T/lat_bad.safetensors|shape" "$LS" "${GEN[@]}" --model "$M" --init-latent "$T/lat_bad.safetensors" -o "$o/out.png"
st tensor "$T/lat_i32.safetensors" I32 1 4 8 8
outdir; expect_fail "--init-latent of dtype I32" "$o" "$T/lat_i32.safetensors|I32" "$LS" "${GEN[@]}" --model "$M" --init-latent "$T/lat_i32.safetensors" -o "$o/out.png"
outdir; expect_fail "--init-latent missing" "$o" "$T/lat_none.safetensors|No such file" "$LS" "${GEN[@]}" --model "$M" --init-latent "$T/lat_none.safetensors" -o "$o/out.png"
mkfifo "$T/lat_fifo"
outdir; expect_fail "--init-latent is a FIFO (no hang)" "$o" "$T/lat_fifo|not a regular file" "$LS" "${GEN[@]}" --model "$M" --init-latent "$T/lat_fifo" -o "$o/out.png"

# ==== single-file checkpoints ====
mkdir -p "$T/single" "$T/cfgonly"
run "$LS" convert "$M" -o "$T/single/m.safetensors" --dtype f32
if [ "$rc" -eq 0 ] && [ -s "$T/single/m.safetensors" ]; then ok "convert to a single file"
else bad "convert to a single file" "rc=$rc"; fi
for c in unet vae text_encoder scheduler; do cp -r "$M/$c" "$T/cfgonly/"; done
rm -f "$T"/cfgonly/*/*.safetensors
outdir; expect_fail "single file, no tokenizer" "$o" "$T/single/m.safetensors|tokenizer" "$LS" "${GEN[@]}" --model "$T/single/m.safetensors" --config "$T/cfgonly" -o "$o/out.png"
outdir; expect_fail "single file, SD1.5 config does not fit" "$o" "$T/single/m.safetensors" "$LS" "${GEN[@]}" --model "$T/single/m.safetensors" -o "$o/out.png"
outdir; expect_fail "single file, --config folder missing" "$o" "$T/nocfg" "$LS" "${GEN[@]}" --model "$T/single/m.safetensors" --config "$T/nocfg" -o "$o/out.png"
outdir; expect_fail "component file given as a model" "$o" "$M/$UW|single-file" "$LS" "${GEN[@]}" --model "$M/$UW" -o "$o/out.png"
expect_fail "convert to a missing folder" "" "/nonexistent/m.safetensors" "$LS" convert "$M" -o /nonexistent/m.safetensors

# ==== info ====
expect_fail "info on a garbage file" "" "$T/garbage/$UW|not a safetensors file" "$LS" info "$T/garbage/$UW"
expect_fail "info on a truncated file" "" "$T/truncdata/$UW|truncated" "$LS" info "$T/truncdata/$UW"
expect_fail "info on a missing file" "" "$T/nope.safetensors|No such file" "$LS" info "$T/nope.safetensors"
expect_fail "info on a FIFO (no hang)" "" "$T/lat_fifo|not a regular file" "$LS" info "$T/lat_fifo"
expect_fail "info on a broken model folder" "" "$T/nokey/unet/config.json|block_out_channels" "$LS" info "$T/nokey"
run "$LS" info "$M"
if [ "$rc" -eq 0 ] && grep -q '^unet:' "$T/stdout"; then ok "info on the model folder"; else bad "info on the model folder" "rc=$rc"; fi

# ==== good runs ====
outdir
run "$LS" generate "a red fox" --model "$M" --steps 2 --width 64 --height 64 --seed 7 -o "$o/out.png"
if [ "$rc" -ne 0 ]; then bad "generate" "rc=$rc"
elif ! is_png "$o/out.png"; then bad "generate" "out.png is not a PNG"
elif [ "$(cat "$T/stdout")" != "$o/out.png" ]; then bad "generate" "stdout is not the output path"
elif ! grep -aq 'Steps: 2, Sampler: ' "$o/out.png" || ! grep -aq 'parameters' "$o/out.png"; then
    bad "generate" "no 'parameters' text with 'Steps: 2' in the PNG"
elif [ "$(ls -A "$o")" != "out.png" ]; then bad "generate" "extra files: $(ls -A "$o" | tr '\n' ' ')"
else ok "generate writes a PNG with parameters"; fi
run "$LS" generate "a red fox" --model "$M" --steps 2 --width 64 --height 64 --seed 7 -o "$o/again.png"
if [ "$rc" -eq 0 ] && cmp -s "$o/out.png" "$o/again.png"; then ok "same seed, same bytes"
else bad "same seed, same bytes" "rc=$rc or the files differ"; fi
# --params-from: the PNG's settings reproduce it byte for byte; options after it override
run "$LS" generate --model "$M" --params-from "$o/out.png" -o "$o/from.png"
if [ "$rc" -eq 0 ] && cmp -s "$o/out.png" "$o/from.png"; then ok "--params-from reproduces the image and its text"
else bad "--params-from reproduces the image and its text" "rc=$rc or the files differ"; fi
run "$LS" generate --model "$M" --params-from "$o/out.png" --seed 8 --sampler dpmpp_2m_karras -o "$o/over.png"
if [ "$rc" -eq 0 ] && grep -aq 'a red fox' "$o/over.png" &&
    grep -aq 'Steps: 2, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 8, Size: 64x64' "$o/over.png"
then ok "--params-from, then --seed and --sampler override"
else bad "--params-from, then --seed and --sampler override" "rc=$rc or wrong parameters text"; fi
rm -f "$o/from.png" "$o/over.png"

outdir
run "$LS" generate "" --model "$M" --steps 1 --width 64 --height 64 --seed 3 -o "$o/empty.png"
if [ "$rc" -eq 0 ] && is_png "$o/empty.png"; then ok "empty prompt"; else bad "empty prompt" "rc=$rc"; fi

outdir
run "$LS" generate "a red fox" --model "$M" --steps 1 --width 64 --height 64 --seed 3 --batch 2 -o "$o/out.png"
if [ "$rc" -eq 0 ] && is_png "$o/out.png" && is_png "$o/out-1.png" && [ "$(ls -A "$o" | wc -l)" -eq 2 ] &&
    [ "$(wc -l <"$T/stdout")" -eq 2 ]; then ok "--batch 2 writes out.png and out-1.png"
else bad "--batch 2" "rc=$rc, files: $(ls -A "$o" | tr '\n' ' ')"; fi

st tensor "$T/lat_ok.safetensors" F32 1 4 8 8
outdir
run "$LS" "${GEN[@]}" --model "$M" --init-latent "$T/lat_ok.safetensors" -o "$o/out.png"
if [ "$rc" -eq 0 ] && is_png "$o/out.png"; then ok "--init-latent of the right shape"; else bad "--init-latent" "rc=$rc"; fi

outdir
run "$LS" "${GEN[@]}" --model "$M" --sampler dpmpp_2m_karras -o "$o/folder.png"
rc1=$rc
run "$LS" "${GEN[@]}" --model "$T/single/m.safetensors" --config "$M" --sampler dpmpp_2m_karras -o "$o/single.png"
if [ "$rc1" -ne 0 ] || [ "$rc" -ne 0 ]; then bad "single file == folder" "rc=$rc1/$rc"
elif ! st sameidat "$o/folder.png" "$o/single.png"; then bad "single file == folder" "pixels differ"
else ok "single file gives the folder's pixels"; fi

summary
