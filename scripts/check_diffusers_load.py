#!/usr/bin/env python3
"""Does diffusers accept an adapter lorastyle wrote? Loads MODEL (a diffusers folder) with
StableDiffusionPipeline, then ADAPTER with pipe.load_lora_weights, and counts the LoRA modules PEFT attached
to the U-Net and the text encoder against the file's lora_down tensors. Exit status 1 when they differ.
A development check (needs torch + diffusers + peft; not run in CI — tests/test_lora.c checks the numbers
against committed diffusers fixtures):

    build/lorastyle train datasets/sample_style --model M --conv-rank 4 --train-text-encoder --steps 5 -o /tmp/a
    python3 scripts/check_diffusers_load.py M /tmp/a/sample_style.safetensors
"""
import sys

from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    model, adapter = sys.argv[1:]
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    pipe.load_lora_weights(adapter, adapter_name="x")
    n_unet = sum(1 for n, _ in pipe.unet.named_modules() if n.endswith("lora_A.x"))
    n_te = sum(1 for n, _ in pipe.text_encoder.named_modules() if n.endswith("lora_A.x"))
    keys = load_file(adapter).keys()
    f_unet = sum(1 for k in keys if k.startswith("lora_unet_") and k.endswith(".lora_down.weight"))
    f_te = sum(1 for k in keys if k.startswith("lora_te_") and k.endswith(".lora_down.weight"))
    ok = (n_unet, n_te) == (f_unet, f_te)
    print(f"{adapter}: file U-Net {f_unet} / text encoder {f_te} modules; diffusers attached {n_unet} / {n_te}: "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
