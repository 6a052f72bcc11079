#!/usr/bin/env python3
"""A tiny SD-1.x pipeline folder exactly as today's diffusers + transformers 5 write it, for test_hf5.c.

transformers 5 saves CLIPTextModel flattened (text-encoder keys "embeddings.…", "encoder.layers.…",
"final_layer_norm.…", no "text_model." level) and the tokenizer as tokenizer.json only (no vocab.json /
merges.txt). This script builds a small random pipeline (lorastyle's built-in 1000-id vocabulary, read by
transformers' CLIPTokenizer, a 2-layer width-32 CLIP text encoder, a 2-level U-Net and VAE of 8/16 channels)
and save_pretrained's it into tests/fixtures/hf5_pipeline/, then writes transformers' token ids and
text-encoder outputs for a few prompts to tests/fixtures/hf5_ref.safetensors:
    ids_<i>      (77,) float32 token ids of prompt i (padding="max_length", truncation)
    out_<i>      (1, 77, 32) last_hidden_state
    skip2_<i>    (1, 77, 32) final_layer_norm(hidden_states[-2])   (clip skip 2)
metadata: prompt_<i>, n_prompts and the library versions.

Never run in CI (CI compares against the committed files). Regenerate after building:
    nice -n 10 python3 tests/gen_hf5_fixtures.py --lorastyle build/lorastyle
"""
import argparse, json, os, shutil, subprocess, tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file

torch.set_grad_enabled(False)
HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = ["a watercolor painting of a red fox in the snow",
           "Two  small RED circles,\nabove a blue square! <|endoftext|> ünïcödé 123",
           ""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorastyle", default="build/lorastyle")
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    a = ap.parse_args()

    import diffusers, tokenizers, transformers
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tmp = tempfile.mkdtemp(prefix="ls_hf5_")
    subprocess.run([a.lorastyle, "init", "--preset", "tiny", "-o", os.path.join(tmp, "m")], check=True,
                   stdout=subprocess.DEVNULL)
    tok = CLIPTokenizer.from_pretrained(os.path.join(tmp, "m", "tokenizer"))
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                      hidden_act="quick_gelu", bos_token_id=tok.bos_token_id,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    for name, p in te.named_parameters():  # larger than the init's, so that every weight shows in the output
        p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=16)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    folder = os.path.join(a.out, "hf5_pipeline")
    shutil.rmtree(folder, ignore_errors=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(tmp)

    # what was written is what the C test reads: check the two transformers-5 traits it is about
    files = sorted(os.listdir(os.path.join(folder, "tokenizer")))
    assert "tokenizer.json" in files and "vocab.json" not in files, files
    with safe_open(os.path.join(folder, "text_encoder", "model.safetensors"), "pt") as f:
        assert not any(k.startswith("text_model.") for k in f.keys()), list(f.keys())[:3]
    merges = json.load(open(os.path.join(folder, "tokenizer", "tokenizer.json")))["model"]["merges"]
    print("tokenizer files:", files, "| merges written as", type(merges[0]).__name__)

    # reference from the saved folder, loaded back the ordinary way
    tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    te = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval()
    out = {}
    meta = {"n_prompts": str(len(PROMPTS)), "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "torch": torch.__version__}
    for i, p in enumerate(PROMPTS):
        ids = tok(p, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        r = te(ids, output_hidden_states=True)
        out[f"ids_{i}"] = ids[0].float()
        out[f"out_{i}"] = r.last_hidden_state.contiguous()
        out[f"skip2_{i}"] = te.text_model.final_layer_norm(r.hidden_states[-2]).contiguous() \
            if hasattr(te, "text_model") else te.final_layer_norm(r.hidden_states[-2]).contiguous()
        meta[f"prompt_{i}"] = p
    save_file(out, os.path.join(a.out, "hf5_ref.safetensors"), metadata=meta)
    print("wrote", folder, "and hf5_ref.safetensors")


if __name__ == "__main__":
    main()
