#!/usr/bin/env bash
# SD1.5-shape parity, kept outside CI (multi-GB weights; ~5 GB disk, ~8 GB RAM, ~5 min on 2 cores; needs
# torch + diffusers + transformers from PyPI). Writes a random-weight model with SD1.5's exact shapes and
# the real CLIP vocabulary, computes reference outputs with diffusers/transformers from that same folder,
# and runs the C model test against them (tokenizer ids, text encoder, U-Net at 64×64 latents, VAE).
#   bash tests/check_sd15.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/lorastyle-sd15}
mkdir -p "$work"
bash scripts/build.sh >/dev/null
bash scripts/fetch_clip_vocab.sh build/clip
[ -f "$work/model/unet/diffusion_pytorch_model.safetensors" ] ||
  build/lorastyle init --preset sd15 --dtype f16 --seed 1 --bpe build/clip/bpe_simple_vocab_16e6.txt.gz -o "$work/model"
python3 tests/gen_model_fixtures.py --preset sd15 --model "$work/model" --out "$work/fixture.safetensors"
build/test_models tests/fixtures --model "$work/model" --fixture "$work/fixture.safetensors"
# adapters: a rank-16 kohya LoCon adapter on every attention/feed-forward/conv module and the text encoder,
# loaded by diffusers' load_lora_weights + set_adapters and by lorastyle (unmerged and merged)
python3 tests/gen_lora_fixtures.py --model "$work/model" --rank 16 --outdir "$work/lora"
build/test_lora "$work/lora" build/lorastyle --model "$work/model"
