#!/usr/bin/env bash
# test_cli_lora.sh — the adapter features of the lorastyle command line, end to end: --lora, prompt tags,
# merged/unmerged modes, kohya vs PEFT files, sweep grids, merge into checkpoints, info, and bad adapters.
#
# usage: bash tests/test_cli_lora.sh path/to/lorastyle [fixtures_dir]
#
# Uses the tiny random model (`lorastyle init --preset tiny --seed 1`, which the adapter fixtures were made
# for) and tests/fixtures/lora_{kohya,peft}.safetensors (the same LoCon adapter in two key formats).
# Images are compared on decoded pixels (a small PNG decoder in tests/cli_files.py: zlib + filters), so
# differences in compression or metadata do not matter. Bad input must give exactly one
# "lorastyle: error:" line naming the file/option, a non-zero status below 128, and no PNG.
# LS_TEST_VERBOSE=1 prints every error line; LS_TEST_LIMIT=N changes the per-command time limit (60 s).
# Needs bash, coreutils and python3 (standard library only).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

LS=${1:?usage: test_cli_lora.sh path/to/lorastyle [fixtures_dir]}
FIX=${2:-$(dirname "$0")/fixtures}
FIX=$(cd "$FIX" && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to decode PNGs and craft files"; exit 77; }
KOHYA=$FIX/lora_kohya.safetensors PEFT=$FIX/lora_peft.safetensors
[ -f "$KOHYA" ] && [ -f "$PEFT" ] || { echo "missing adapter fixtures in $FIX"; exit 1; }
. "$HERE/cli_lib.sh" # cli_begin, ok, bad, skipped, run, expect_fail, outdir, summary
cli_begin lorastyle-lora

# ---- python3 helpers (standard library only) ----
cat >"$T/lt.py" <<'EOF'
import hashlib, re, struct, sys

from cli_files import png_pixels as pixels, png_text as text, st_read, st_write  # tests/cli_files.py

def zeros(shape):  # F32 tensor of small non-zero values
    n = 1
    for d in shape: n *= d
    return struct.pack("<%df" % n, *([0.01] * n))

cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "diff":        # A B: print the mean |delta| in 1/255 units; exit 2 if sizes differ
    wa, ha, pa = pixels(a[0]); wb, hb, pb = pixels(a[1])
    if (wa, ha) != (wb, hb) or len(pa) != len(pb): print("size %dx%d vs %dx%d" % (wa, ha, wb, hb)); sys.exit(2)
    print("%.6f" % (sum(abs(x - y) for x, y in zip(pa, pb)) / len(pa)))
elif cmd == "size":      # PNG: "W H"
    w, h, _ = pixels(a[0]); print(w, h)
elif cmd == "text":      # PNG: the parameters text
    t = text(a[0]); print(t if t is not None else "")
elif cmd == "hash":      # FILE: kohya/A1111 short hash (sha256 of the bytes after the header)
    b = open(a[0], "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    print(hashlib.sha256(b[8 + n:]).hexdigest()[:12])
elif cmd == "match":     # PNG REGEX: exit 0 if the parameters text matches
    sys.exit(0 if re.search(a[1], text(a[0]) or "", re.S) else 1)
elif cmd == "shape":     # FILE KEY: print the shape
    print(*st_read(a[0])[0][a[1]]["shape"])
elif cmd == "nan":       # SRC DST: a NaN float32 in the middle of one lora_up tensor
    hdr, data = st_read(a[0])
    k = sorted(k for k in hdr if k.endswith("lora_up.weight"))[0]
    assert hdr[k]["dtype"] == "F32"
    s, e = hdr[k]["data_offsets"]
    at = s + ((e - s) // 8) * 4
    data = data[:at] + struct.pack("<I", 0x7FC00000) + data[at + 4:]
    st_write(a[1], hdr, data)
elif cmd == "badshape":  # DST IN OUT: kohya to_q module of input width IN (2 tensors)
    m, i, o = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", int(a[1]), int(a[2])
    d, u = zeros([4, i]), zeros([o, 4])
    st_write(a[0], {m + ".lora_down.weight": {"dtype": "F32", "shape": [4, i], "data_offsets": [0, len(d)]},
                    m + ".lora_up.weight": {"dtype": "F32", "shape": [o, 4], "data_offsets": [len(d), len(d) + len(u)]}},
             d + u)
elif cmd == "extra":     # SRC DST: SRC plus one module the model does not have
    hdr, data = st_read(a[0])
    m = "lora_unet_down_blocks_7_attentions_0_proj_in"
    for part, shape in (("lora_down.weight", [4, 8]), ("lora_up.weight", [8, 4])):
        t = zeros(shape)
        hdr[m + "." + part] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(t)]}
        data += t
    st_write(a[1], hdr, data)
elif cmd == "loha":      # DST: a LyCORIS LoHa module
    m = "lora_unet_mid_block_attentions_0_proj_in"
    hdr, data = {}, b""
    for part in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"):
        t = zeros([4, 4])
        hdr[m + "." + part] = {"dtype": "F32", "shape": [4, 4], "data_offsets": [len(data), len(data) + len(t)]}
        data += t
    st_write(a[0], hdr, data)
EOF
lt() { PYTHONPATH="$HERE" python3 "$T/lt.py" "$@"; }

# same NAME A B: pixel-identical; close NAME A B: mean |delta| <= 1/255; differ NAME A B: mean |delta| > 0
cmp_px() { # KIND NAME A B
    local kind=$1 name=$2 d
    if ! d=$(lt diff "$3" "$4" 2>&1); then bad "$name" "cannot compare: $d"; return; fi
    case $kind in
    same) if [ "$d" = "0.000000" ]; then ok "$name"; else bad "$name" "mean |delta| = $d/255, expected identical pixels"; fi ;;
    close) if python3 -c "import sys; sys.exit(0 if float('$d') <= 1.0 else 1)"; then ok "$name (mean |delta| $d/255)"
        else bad "$name" "mean |delta| = $d/255 > 1/255"; fi ;;
    differ) if [ "$d" != "0.000000" ]; then ok "$name (mean |delta| $d/255)"; else bad "$name" "identical pixels, expected a difference"; fi ;;
    esac
}

# gen NAME OUT ARGS...: generate; on failure records bad NAME and returns 1
gen() {
    local name=$1 out=$2
    shift 2
    run "$LS" generate "$@" -o "$out"
    if [ "$rc" -ne 0 ] || [ ! -s "$out" ]; then bad "$name" "generate failed (rc=$rc): $*"; return 1; fi
    return 0
}

# ---- the base model ----
run "$LS" init --preset tiny -o "$T/m" --seed 1
[ "$rc" -eq 0 ] || { echo "cannot make the tiny model:"; cat "$T/stderr"; exit 1; }
M=$T/m
P="a watercolor fox"
G=(--model "$M" --steps 2 --width 64 --height 64 --seed 5)
mkdir -p "$T/img"
I=$T/img

# ==== 1. strength 0 == no adapter; 0.8 differs ====
gen "base" "$I/base.png" "$P" "${G[@]}" &&
    gen "scale 0" "$I/s0.png" "$P" "${G[@]}" --lora "$KOHYA:0" &&
    cmp_px same "--lora FILE:0 == no adapter (pixels)" "$I/base.png" "$I/s0.png"
gen "scale 0 unmerged" "$I/s0u.png" "$P" "${G[@]}" --lora "$KOHYA:0" --lora-mode unmerged &&
    cmp_px same "--lora FILE:0 --lora-mode unmerged == no adapter" "$I/base.png" "$I/s0u.png"
gen "scale 0.8" "$I/k08.png" "$P" "${G[@]}" --lora "$KOHYA:0.8" &&
    cmp_px differ "--lora FILE:0.8 differs from no adapter" "$I/base.png" "$I/k08.png"

# ==== 2. merged vs unmerged ====
gen "unmerged" "$I/k08u.png" "$P" "${G[@]}" --lora "$KOHYA:0.8" --lora-mode unmerged &&
    cmp_px close "merged == --lora-mode unmerged" "$I/k08.png" "$I/k08u.png"

# ==== 3. kohya vs PEFT ====
gen "peft" "$I/p08.png" "$P" "${G[@]}" --lora "$PEFT:0.8" &&
    cmp_px close "kohya file == PEFT file" "$I/k08.png" "$I/p08.png"

# ==== 4. prompt tags ====
if gen "prompt tag" "$I/tag.png" "$P <lora:lora_kohya:0.8>" "${G[@]}" --lora-dir "$FIX"; then
    cmp_px same "<lora:lora_kohya:0.8> == --lora FILE:0.8" "$I/k08.png" "$I/tag.png"
    h=$(lt hash "$KOHYA")
    txt=$(lt text "$I/tag.png")
    if ! printf '%s' "$txt" | head -1 | grep -qF "$P <lora:lora_kohya:0.8>"; then
        bad "tag kept in the PNG prompt line" "first line: $(printf '%s' "$txt" | head -1)"
    elif ! lt match "$I/tag.png" 'Lora hashes: "lora_kohya: [0-9a-f]{12}"'; then
        bad "Lora hashes in the PNG" "no 'Lora hashes: \"lora_kohya: <12 hex>\"' in: $txt"
    elif ! lt match "$I/tag.png" "Lora hashes: \"lora_kohya: $h\""; then
        bad "Lora hash value" "expected $h (sha256 of the data after the header) in: $txt"
    else ok "PNG parameters: tag in the prompt, Lora hashes: \"lora_kohya: $h\""; fi
fi
gen "tag te:unet" "$I/tag2.png" "$P <lora:lora_kohya:0.8:0.8>" "${G[@]}" --lora-dir "$FIX" &&
    cmp_px same "<lora:NAME:0.8:0.8> == --lora FILE:0.8" "$I/k08.png" "$I/tag2.png"
gen "tag te=/unet=" "$I/tag3.png" "$P <lora:lora_kohya:te=0.8:unet=0.8>" "${G[@]}" --lora-dir "$FIX" &&
    cmp_px same "<lora:NAME:te=0.8:unet=0.8> == --lora FILE:0.8" "$I/k08.png" "$I/tag3.png"
gen "tag mid-prompt" "$I/tag5.png" "a watercolor <lora:lora_kohya:0.8> fox" "${G[@]}" --lora-dir "$FIX" &&
    cmp_px same "tag in the middle of the prompt is removed from the text" "$I/k08.png" "$I/tag5.png"
# default --lora-dir: the folder of the first --lora
gen "tag, dir from --lora" "$I/tag4.png" "$P <lora:lora_peft:0.5>" "${G[@]}" --lora "$KOHYA:0.8" &&
    gen "two --lora" "$I/two.png" "$P" "${G[@]}" --lora "$KOHYA:0.8" --lora "$PEFT:0.5" &&
    cmp_px same "tag found beside the first --lora == two --lora" "$I/two.png" "$I/tag4.png"

# ==== 5. text-encoder strength ====
gen "te 0" "$I/te0.png" "$P" "${G[@]}" --lora "$KOHYA:0.5:0.0" &&
    gen "te 0.5" "$I/te5.png" "$P" "${G[@]}" --lora "$KOHYA:0.5" &&
    cmp_px differ "FILE:0.5:0.0 differs from FILE:0.5" "$I/te0.png" "$I/te5.png"
gen "te 0 tag" "$I/te0t.png" "$P <lora:lora_kohya:0:0.5>" "${G[@]}" --lora-dir "$FIX" &&
    cmp_px same "<lora:NAME:0:0.5> (te 0, unet 0.5) == FILE:0.5:0.0" "$I/te0.png" "$I/te0t.png"

# ==== 6. sweep ====
S=$T/sweep1
run "$LS" sweep "$P" --model "$M" --steps 1 --seed 9 --lora "$KOHYA" --scales 0,0.5,1 -o "$S"
if [ "$rc" -ne 0 ]; then bad "sweep" "rc=$rc"
else
    read -r gw gh < <(lt size "$S/grid.png" 2>/dev/null || echo "0 0")
    n=$(ls "$S"/cell-r*-c*.png 2>/dev/null | wc -l)
    if [ "$gw" -le 128 ] || [ "$gh" -le $((3 * 128)) ]; then bad "sweep grid size" "grid.png is ${gw}x${gh}, expected > 128x384 (rows = strengths)"
    else ok "sweep: grid.png ${gw}x${gh} (> 1×128 by 3×128: one row per strength)"; fi
    if [ "$n" -ne 3 ]; then bad "sweep cells" "$n cell files, expected 3"
    elif ! lt match "$S/cell-r00-c00.png" '<lora:lora_kohya:0>' || ! lt match "$S/cell-r01-c00.png" '<lora:lora_kohya:0.5>' ||
        ! lt match "$S/cell-r02-c00.png" '<lora:lora_kohya:1>'; then bad "sweep cell metadata" "a cell's prompt does not state its strength"
    else ok "sweep: 3 cells, metadata names their strength"; fi
    gen "sweep reference" "$I/sw_base.png" "$P" --model "$M" --steps 1 --seed 9 &&
        cmp_px same "sweep: scale-0 cell == plain generate, same seed" "$I/sw_base.png" "$S/cell-r00-c00.png"
    gen "sweep reference 1" "$I/sw_1.png" "$P" --model "$M" --steps 1 --seed 9 --lora "$KOHYA:1" &&
        cmp_px same "sweep: scale-1 cell == generate --lora FILE:1" "$I/sw_1.png" "$S/cell-r02-c00.png"
fi
S=$T/sweep2
run "$LS" sweep "$P" --model "$M" --steps 1 --width 64 --height 64 --lora "$KOHYA" --lora "$PEFT" \
    --scales 0,1 --scales-b 0,0.5,1 --seeds 1,2 -o "$S"
n=$(ls "$S"/cell-g*-r*-c*.png 2>/dev/null | wc -l)
if [ "$rc" -ne 0 ]; then bad "sweep 2-D" "rc=$rc"
elif [ "$n" -ne 12 ] || [ ! -s "$S/grid-00.png" ] || [ ! -s "$S/grid-01.png" ] || [ -e "$S/grid-02.png" ]; then
    bad "sweep 2-D" "expected grid-00/01.png and 12 cells, got: $(ls "$S" | tr '\n' ' ')"
else
    read -r gw gh < <(lt size "$S/grid-00.png")
    if [ "$gw" -le $((3 * 64)) ] || [ "$gh" -le $((2 * 64)) ]; then bad "sweep 2-D grid size" "${gw}x${gh}"
    elif ! lt match "$S/cell-g01-r01-c02.png" '<lora:lora_kohya:1> <lora:lora_peft:1>'; then
        bad "sweep 2-D cell metadata" "$(lt text "$S/cell-g01-r01-c02.png" | head -1)"
    else ok "sweep --scales-b: 2 grids (${gw}x${gh}), 12 cells, both strengths in the metadata"; fi
    gen "2-D reference" "$I/sw2.png" "$P" --model "$M" --steps 1 --width 64 --height 64 --seed 2 &&
        cmp_px same "sweep 2-D: A=0, B=0 cell of seed 2 == plain generate" "$I/sw2.png" "$S/cell-g01-r00-c00.png"
    gen "2-D reference AB" "$I/sw2ab.png" "$P" --model "$M" --steps 1 --width 64 --height 64 --seed 1 \
        --lora "$KOHYA:1" --lora "$PEFT:0.5" &&
        cmp_px same "sweep 2-D: A=1, B=0.5 cell of seed 1 == generate --lora A:1 --lora B:0.5" "$I/sw2ab.png" "$S/cell-g00-r01-c01.png"
fi
S=$T/sweep3
run "$LS" sweep "$P" --model "$M" --steps 1 --width 64 --height 64 --seed 4 --lora "$KOHYA" --lora "$PEFT" \
    --compare --scales 0.5,1 -o "$S"
n=$(ls "$S"/cell-r*-c*.png 2>/dev/null | wc -l)
if [ "$rc" -ne 0 ] || [ "$n" -ne 4 ]; then bad "sweep --compare" "rc=$rc, $n cells: $(cat "$T/stderr")"
elif ! lt match "$S/cell-r02-c00.png" '<lora:lora_peft:0.5>' || lt text "$S/cell-r02-c00.png" | head -1 | grep -q 'lora_kohya'; then
    bad "sweep --compare metadata" "$(lt text "$S/cell-r02-c00.png" | head -1)"
else
    ok "sweep --compare: rows = each adapter alone at each scale (4 cells), metadata names only the one in use"
    gen "compare reference" "$I/swc.png" "$P" --model "$M" --steps 1 --width 64 --height 64 --seed 4 --lora "$PEFT:1" &&
        cmp_px same "sweep --compare: B at 1 (A at 0) == generate --lora B:1" "$I/swc.png" "$S/cell-r03-c00.png"
fi
outdir
expect_fail "sweep --compare with one adapter" "$o" "--compare" "$LS" sweep "$P" --model "$M" --lora "$KOHYA" --compare -o "$o/x"

# ==== 7. merge ====
run "$LS" merge "$M" --lora "$KOHYA:0.8" -o "$T/merged" --dtype f32
if [ "$rc" -ne 0 ] || [ ! -f "$T/merged/model_index.json" ]; then bad "merge folder" "rc=$rc"
else
    ok "merge into a diffusers folder"
    gen "merged model" "$I/mf.png" "$P" "${G[@]}" --model "$T/merged" &&
        cmp_px same "merged folder == generate --lora FILE:0.8 (pixels)" "$I/k08.png" "$I/mf.png"
fi
run "$LS" convert "$M" -o "$T/single.safetensors" --dtype f32
if [ "$rc" -ne 0 ]; then bad "convert" "rc=$rc"
else
    run "$LS" merge "$T/single.safetensors" --config "$M" --lora "$KOHYA:0.8" \
        -o "$T/merged1.safetensors" --dtype f32
    if [ "$rc" -ne 0 ] || [ ! -f "$T/merged1.safetensors" ]; then bad "merge single file" "rc=$rc"
    else
        ok "merge a single file into a single file"
        gen "merged single" "$I/ms.png" "$P" "${G[@]}" --model "$T/merged1.safetensors" --config "$M" &&
            cmp_px same "merged single file == generate --lora FILE:0.8" "$I/k08.png" "$I/ms.png"
    fi
fi
expect_fail "merge: output exists" "" "$T/merged|exists" "$LS" merge "$M" --lora "$KOHYA:0.8" -o "$T/merged"
run "$LS" merge "$M" -o "$T/merged2" --dtype f16
if [ "$rc" -eq 0 ] && [ -s "$T/merged2/unet/diffusion_pytorch_model.safetensors" ]; then
    ok "merge without --lora: a copy (here in f16)"
else bad "merge: no --lora" "status $rc"; fi

# ==== 8. bad input ====
outdir; expect_fail "missing adapter file" "$o" "$T/nope.safetensors" "$LS" generate "$P" "${G[@]}" --lora "$T/nope.safetensors" -o "$o/out.png"
outdir; expect_fail "<lora:nosuch:1> tag" "$o" "nosuch|$FIX/nosuch.safetensors" "$LS" generate "$P <lora:nosuch:1>" "${G[@]}" --lora-dir "$FIX" -o "$o/out.png"
outdir; expect_fail "malformed --lora scale" "$o" "$KOHYA:abc|abc" "$LS" generate "$P" "${G[@]}" --lora "$KOHYA:abc" -o "$o/out.png"
outdir; expect_fail "malformed tag scale <lora:x:abc>" "$o" "<lora:x|abc" "$LS" generate "$P <lora:x:abc>" "${G[@]}" --lora-dir "$FIX" -o "$o/out.png"
outdir; expect_fail "unterminated tag" "$o" "<lora:" "$LS" generate "$P <lora:lora_kohya:1" "${G[@]}" --lora-dir "$FIX" -o "$o/out.png"
outdir; expect_fail "--lora-mode bogus" "$o" "--lora-mode|bogus" "$LS" generate "$P" "${G[@]}" --lora "$KOHYA" --lora-mode bogus -o "$o/out.png"
lt nan "$KOHYA" "$T/nan.safetensors"
outdir; expect_fail "NaN in an adapter" "$o" "$T/nan.safetensors|NaN" "$LS" generate "$P" "${G[@]}" --lora "$T/nan.safetensors" -o "$o/out.png"
read -r _ qin < <(lt shape "$KOHYA" lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight)
read -r qout _ < <(lt shape "$KOHYA" lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight)
lt badshape "$T/other_arch.safetensors" $((qin * 2 + 8)) "$qout"
outdir; expect_fail "adapter for another architecture" "$o" "$T/other_arch.safetensors|attn1_to_q" "$LS" generate "$P" "${G[@]}" --lora "$T/other_arch.safetensors" -o "$o/out.png"
outdir; expect_fail "another architecture, --lenient: nothing matches" "$o" "$T/other_arch.safetensors|no module" "$LS" generate "$P" "${G[@]}" --lora "$T/other_arch.safetensors" --lenient -o "$o/out.png"
lt extra "$KOHYA" "$T/extra.safetensors"
outdir; expect_fail "adapter with an unknown module" "$o" "$T/extra.safetensors|down_blocks_7|--lenient" "$LS" generate "$P" "${G[@]}" --lora "$T/extra.safetensors" -o "$o/out.png"
outdir
run "$LS" generate "$P" "${G[@]}" --lora "$T/extra.safetensors:0.8" --lenient -o "$o/out.png"
if [ "$rc" -ne 0 ] || [ ! -s "$o/out.png" ]; then bad "--lenient skips the unknown module" "rc=$rc"
elif ! grep -q '^lorastyle: warning:.*down_blocks_7' "$T/stderr"; then bad "--lenient skips the unknown module" "no warning naming the module"
else ok "--lenient skips the unknown module with a warning"; cmp_px same "--lenient: the rest of the adapter applies" "$I/k08.png" "$o/out.png"; fi
lt loha "$T/loha.safetensors"
outdir; expect_fail "LyCORIS LoHa of another width" "$o" "$T/loha.safetensors|mid_block_attentions_0_proj_in|Linear 64→64" "$LS" generate "$P" "${G[@]}" --lora "$T/loha.safetensors" -o "$o/out.png"
if "$LS" info "$FIX/lyco_loha.safetensors" 2>&1 | grep -q '^kind: .*LoHa+DoRA 15' &&
    "$LS" info "$FIX/lyco_lokr.safetensors" 2>&1 | grep -q '^kind: .*LoKr 120' &&
    "$LS" info "$FIX/peft_dora.safetensors" 2>&1 | grep -q '^kind: LoRA+DoRA 91, LoCon+DoRA 26'; then
    ok "info: the kind of a LoHa, LoKr and DoRA file"
else bad "info: the kind of a LoHa, LoKr and DoRA file" "$("$LS" info "$FIX/lyco_loha.safetensors" 2>&1 | grep kind)"; fi
outdir; expect_fail "sweep without --lora" "$o" "--lora" "$LS" sweep "$P" --model "$M" --steps 1 -o "$o/s"
[ ! -e "$o/s/grid.png" ] || bad "sweep without --lora" "grid.png written"
outdir; expect_fail "sweep --scales 0,x" "$o" "--scales|'x'" "$LS" sweep "$P" --model "$M" --steps 1 --lora "$KOHYA" --scales 0,x -o "$o/s"
outdir; expect_fail "sweep --scales-b without a second --lora" "$o" "--scales-b|second --lora" "$LS" sweep "$P" --model "$M" --steps 1 --lora "$KOHYA" --scales-b 0,1 -o "$o/s"
for d in "$T"/out/*/s; do [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && bad "failed sweep left files" "$d: $(ls -A "$d" | tr '\n' ' ')"; done

# ==== 9. info ====
for f in kohya:"$KOHYA" PEFT:"$PEFT"; do
    want=${f%%:*} file=${f#*:}
    run "$LS" info "$file"
    if [ "$rc" -ne 0 ]; then bad "info $want" "rc=$rc"
    elif ! grep -q "^format: .*$want" "$T/stdout"; then bad "info $want" "no 'format: ...$want' line"
    elif ! grep -q '^modules: 135\b' "$T/stdout"; then bad "info $want" "no 'modules: 135' line"
    elif ! grep -q '^rank: 4' "$T/stdout" || ! grep -q '^alpha: ' "$T/stdout" || ! grep -q '^targets: ' "$T/stdout"; then
        bad "info $want" "rank/alpha/targets lines missing"
    else ok "info on the $want adapter: format, 135 modules, rank, alpha, targets"; fi
done
if grep -q '^metadata: ss_network_dim = 4' <("$LS" info "$KOHYA"); then ok "info prints the kohya metadata"
else bad "info metadata" "no 'metadata: ss_network_dim = 4'"; fi

summary
