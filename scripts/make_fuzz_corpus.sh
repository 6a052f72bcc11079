#!/usr/bin/env bash
# Seed corpora for the fuzz harnesses (tests/fuzz/README.md): bash scripts/make_fuzz_corpus.sh [OUT]
# writes OUT/<harness>/ (default build-fuzz/corpus) — small valid and nearly valid inputs of each kind,
# from the test fixtures and written here with printf (bash only: no Python, no built binary). libFuzzer
# mutates from these, so they decide how deep a short run gets: a valid safetensors header, adapter keys
# in every style, images in every decoder's format, real configs, captions and A1111 parameters texts.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-fuzz/corpus}
FX=tests/fixtures
for h in safetensors lora image config caption tokenizer infotext; do
  rm -rf "$OUT/$h"
  mkdir -p "$OUT/$h"
done

# st FILE HEADER FLOATS: a safetensors file with JSON header HEADER and FLOATS float32 values of 0.5
# (the header is padded with spaces to a multiple of 8, as the reference writer does)
st() {
  local file=$1 header=$2 floats=$3
  while (( ${#header} % 8 )); do header+=" "; done
  local n=${#header} len=""
  for i in 0 1 2 3 4 5 6 7; do len+=$(printf '\\x%02x' $(( (n >> (8 * i)) & 255 ))); done
  {
    printf "$len"
    printf '%s' "$header"
    for ((i = 0; i < floats; i++)); do printf '\x00\x00\x00\x3f'; done
  } > "$file"
}
t() { # t NAME DTYPE SHAPE BEGIN END: one header entry
  printf '"%s":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}' "$1" "$2" "$3" "$4" "$5"
}

# ---- safetensors: dtypes, shapes, metadata, an empty file, the small fixture ----
S=$OUT/safetensors
st "$S/f32.st" "{$(t a F32 '[2,2]' 0 16),$(t b F32 '[]' 16 20),\"__metadata__\":{\"format\":\"pt\"}}" 5
st "$S/f16_bf16.st" "{$(t h F16 '[4]' 0 8),$(t g BF16 '[2,2]' 8 16)}" 4
st "$S/ints.st" "{$(t i I64 '[1]' 0 8),$(t j U8 '[4]' 8 12),$(t k BOOL '[0]' 12 12)}" 3
st "$S/f64_f8.st" "{$(t d F64 '[1]' 0 8),$(t e F8_E4M3 '[4]' 8 12)}" 3
st "$S/empty.st" "{}" 0
st "$S/meta.st" "{\"__metadata__\":{\"ss_network_dim\":\"4\",\"lora_adapter_metadata\":\"{}\"}}" 0
cp $FX/io_small.safetensors "$S/io_small.st"

# ---- adapters for the tiny model (text encoder width 32, MLP 64; U-Net level-0 width 32), rank 1 ----
L=$OUT/lora
K=lora_te_text_model_encoder_layers_0_mlp_fc1
st "$L/kohya.st" "{$(t $K.lora_down.weight F32 '[1,32]' 0 128),$(t $K.lora_up.weight F32 '[64,1]' 128 384),$(t $K.alpha F32 '[]' 384 388),\"__metadata__\":{\"ss_network_dim\":\"1\"}}" 97
K=lora_te1_text_model_encoder_layers_0_self_attn_q_proj
st "$L/kohya_te1.st" "{$(t $K.lora_down.weight F32 '[1,32]' 0 128),$(t $K.lora_up.weight F32 '[32,1]' 128 256)}" 64
K=text_encoder.text_model.encoder.layers.0.mlp.fc1
st "$L/peft.st" "{$(t $K.lora_A.weight F32 '[1,32]' 0 128),$(t $K.lora_B.weight F32 '[64,1]' 128 384),\"__metadata__\":{\"lora_adapter_metadata\":\"{\\\"text_encoder.lora_alpha\\\": 2}\"}}" 96
K=unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q
st "$L/peft_unet.st" "{$(t $K.lora_A.weight F32 '[1,32]' 0 128),$(t $K.lora_B.weight F32 '[32,1]' 128 256)}" 64
K=down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora
st "$L/diffusers_old.st" "{$(t $K.down.weight F32 '[1,32]' 0 128),$(t $K.up.weight F32 '[32,1]' 128 256)}" 64
K=lora_unet_down_blocks_0_resnets_0_conv1
st "$L/locon.st" "{$(t $K.lora_down.weight F32 '[1,32,3,3]' 0 1152),$(t $K.lora_up.weight F32 '[32,1,1,1]' 1152 1280),$(t $K.alpha F32 '[]' 1280 1284)}" 321
K=adapter_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0
st "$L/bottleneck.st" "{$(t $K.adapter_down.weight F32 '[1,32]' 0 128),$(t $K.adapter_up.weight F32 '[32,1]' 128 256),$(t $K.alpha F32 '[]' 256 260),\"__metadata__\":{\"lorastyle_method\":\"adapter\"}}" 65
K=lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q
st "$L/loha.st" "{$(t $K.hada_w1_a F32 '[32,1]' 0 128),$(t $K.hada_w1_b F32 '[1,32]' 128 256)}" 64

# ---- images: every decoder, good and bad (the decoder is picked by content, not name) ----
for f in ok.png ok.jpg ok_progressive.jpg ok.bmp ok.tga ok_rle.tga pal2.bmp bad_palette_index.bmp \
         truncated.png bad_dht.jpg progressive_no_dht.jpg huge.png text_named.png psd_named.png hdr_named.jpg; do
  cp $FX/images/$f "$OUT/image/$f"
done

# ---- configs: the diffusers configs of the small transformers-5 fixture pipeline ----
P=$FX/hf5_pipeline
cp $P/unet/config.json "$OUT/config/unet.json"
cp $P/vae/config.json "$OUT/config/vae.json"
cp $P/text_encoder/config.json "$OUT/config/text_encoder.json"
cp $P/scheduler/scheduler_config.json "$OUT/config/scheduler.json"
printf '{"block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": [2, 4], "sample_size": 8}' > "$OUT/config/unet_small.json"
printf '{"prediction_type": "v_prediction", "rescale_betas_zero_snr": true, "timestep_spacing": "trailing", "beta_schedule": "scaled_linear"}' > "$OUT/config/sched_v.json"

# ---- captions (a caption file's bytes) ----
C=$OUT/caption
printf 'a red circle, ink style, white background\n' > "$C/tags.txt"
printf '\xef\xbb\xbfsks style,  two squares , , blue\tsky\nsecond line ignored\n' > "$C/bom_tabs.txt"
printf 'caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac, \xff\xfe broken utf-8, <|endoftext|> x\r\n' > "$C/utf8.txt"
printf 'A PHOTO OF   a  Cat\x00hidden, 1girl, solo, smile!!!  ' > "$C/nul.txt"

# ---- tokenizer files: the first byte picks the file (0 tokenizer.json, 1 vocab.json NUL merges.txt,
#      2 tokenizer_config.json beside the tiny vocabulary) ----
T=$OUT/tokenizer
V='{"a":0,"b":1,"c":2,"a</w>":3,"b</w>":4,"c</w>":5,"ab":6,"ab</w>":7,"<|startoftext|>":8,"<|endoftext|>":9}'
printf '\x00{"added_tokens":[{"id":8,"content":"<|startoftext|>"},{"id":9,"content":"<|endoftext|>"}],"model":{"type":"BPE","vocab":%s,"merges":["a b","a b</w>"]}}' "$V" > "$T/json_strings"
printf '\x00{"model":{"type":"BPE","vocab":%s,"merges":[["a","b"],["a","b</w>"]]}}' "$V" > "$T/json_pairs"
printf '\x01%s\x00#version: 0.2\na b\na b</w>\n' "$V" > "$T/vocab_merges"
printf '\x02{"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>"}, "pad_token": "!"}' > "$T/config"

# ---- A1111 parameters texts ----
I=$OUT/infotext
printf 'a red circle <lora:ink:0.8>\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 0123456789, Model: base' > "$I/a1111_19"
printf 'two squares, <lora:neon:te=0.5:unet=1>\nmore prompt\nNegative prompt: a\nb\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 64x64, Lora hashes: "ink: 0123abcd, neon: 4567"' > "$I/old_sampler"
printf 'Steps: 1, Sampler: Euler a, Seed: 3' > "$I/settings_only"
printf 'just a prompt: with colons, and commas' > "$I/prompt_only"
printf 'x\nSteps: 20, Size: "a\\u00e9\\n", Sampler: "bad' > "$I/quoted"
printf 'ink.safetensors:0.5:0.25' > "$I/lora_spec"

for h in safetensors lora image config caption tokenizer infotext; do
  echo "make_fuzz_corpus: $OUT/$h: $(ls "$OUT/$h" | wc -l) seeds, $(du -sk "$OUT/$h" | cut -f1) KiB"
done
