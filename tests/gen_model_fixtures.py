#!/usr/bin/env python3
"""Reference tensors for lorastyle's whole-model tests, computed by diffusers/transformers (float32, CPU).

Never run in CI: CI compares against the committed output. Regenerate with

    cmake --build build && python3 tests/gen_model_fixtures.py --lorastyle build/lorastyle

which makes the tiny preset model with `lorastyle init --preset tiny --seed 1` (the C test makes the same
model the same way), loads it with diffusers' own from_pretrained, and writes
tests/fixtures/tiny_model.safetensors. For SD1.5 shapes (kept outside CI: multi-GB weights), use
--preset sd15 --bpe .../bpe_simple_vocab_16e6.txt.gz --out /tmp/sd15_model.safetensors (see README).

Every tensor is float32 (token ids too: exact below 2^24).
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch
from safetensors.torch import save_file

torch.set_grad_enabled(False)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorastyle", default="build/lorastyle")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bpe", default=None)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--model", default=None, help="use this model folder instead of running init")
    ap.add_argument("--out", default="tests/fixtures/tiny_model.safetensors")
    ap.add_argument("--full", action="store_true", default=None, help="also a full DDIM pipeline run")
    a = ap.parse_args()
    tiny = a.preset == "tiny"
    full = tiny if a.full is None else a.full

    import diffusers, transformers
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    model = a.model
    if model is None:
        model = tempfile.mkdtemp(prefix="ls_fixture_")
        cmd = [a.lorastyle, "init", "--preset", a.preset, "--seed", str(a.seed), "-o", model, "--dtype", a.dtype]
        if a.bpe:
            cmd += ["--bpe", a.bpe]
        subprocess.run(cmd, check=True)

    tok = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    te, info = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32,
                                             output_loading_info=True)
    te.eval()
    # transformers >= 5.6 flattened CLIPTextModel (no .text_model); make sure every weight was loaded
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    unet, info = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32,
                                                      output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    vae, info = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32,
                                              output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    unet.eval(), vae.eval()
    out = {}
    g = torch.Generator().manual_seed(1234)

    # --- text encoder: two prompts, last layer and clip skip 2 (penultimate + final LN) ---
    prompts = ["a watercolor painting of a red fox in the snow", ""]
    ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    r = te(ids, output_hidden_states=True)
    out["clip_ids"] = ids.float()
    out["clip_out"] = r.last_hidden_state
    out["clip_out_skip2"] = getattr(te, "text_model", te).final_layer_norm(r.hidden_states[-2])

    # --- U-Net: batch 2 at the default latent size, fractional and integer t; one odd size ---
    s = unet.config.sample_size
    C = unet.config.in_channels
    ctx = r.last_hidden_state
    x = torch.randn(2, C, s, s, generator=g)
    t = torch.tensor([999.0, 37.5])
    # diffusers broadcasts one t; call per item to pass different t values
    eps = torch.cat([unet(x[i:i + 1], t[i], encoder_hidden_states=ctx[i:i + 1]).sample for i in range(2)])
    out.update(unet_x=x, unet_t=t, unet_ctx=ctx, unet_out=eps)
    if tiny:
        xo = torch.randn(1, C, 11, 9, generator=g)
        out["unet_odd_x"] = xo
        out["unet_odd_out"] = unet(xo, torch.tensor(500.0), encoder_hidden_states=ctx[:1]).sample

    # --- VAE decoder (latent → image) and encoder (image → moments) ---
    z = torch.randn(1, vae.config.latent_channels, s, s, generator=g)
    out["vae_dec_in"] = z
    out["vae_dec_out"] = vae.decode(z).sample
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    hw = min(64, s * f)
    img = torch.rand(1, 3, hw, hw, generator=g) * 2 - 1
    h = vae.encoder(img)
    moments = vae.quant_conv(h) if vae.quant_conv is not None else h
    out["vae_enc_in"] = img
    out["vae_enc_out"] = moments

    # --- full pipeline: DDIM, CFG with a negative prompt, injected initial latent ---
    meta = {"diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__, "preset": a.preset, "seed": str(a.seed)}
    if full:
        sched = DDIMScheduler.from_pretrained(model, subfolder="scheduler")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                       safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        lat = torch.randn(1, C, s, s, generator=g)
        prompt, negative, steps, cfg = "a photo of a cat, oil painting", "blurry", 8, 7.5
        res = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg,
                   latents=lat.clone(), output_type="np").images[0]  # (H, W, 3) in [0, 1]
        out["ddim_latent"] = lat
        out["ddim_image"] = torch.from_numpy((res * 255).round().astype(np.float32))
        meta.update(ddim_prompt=prompt, ddim_negative=negative, ddim_steps=str(steps), ddim_cfg=str(cfg))

    # The single-file LDM layout lorastyle writes (`lorastyle convert`) must be what diffusers' own
    # converter reads: load it with from_single_file and require identical weights.
    if tiny and a.model is None:
        single = os.path.join(model, "single.safetensors")
        subprocess.run([a.lorastyle, "convert", model, "-o", single, "--dtype", "f32"], check=True,
                       stdout=subprocess.DEVNULL)
        sp = StableDiffusionPipeline.from_single_file(single, config=model, local_files_only=True,
                                                      safety_checker=None, requires_safety_checker=False)
        for name, ref in [("unet", unet), ("vae", vae), ("text_encoder", te)]:
            sa, sb = ref.state_dict(), getattr(sp, name).state_dict()
            assert set(sa) == set(sb), (name, set(sa) ^ set(sb))
            for k in sa:
                assert torch.equal(sa[k], sb[k].reshape(sa[k].shape)), (name, k)
        print("single-file export: diffusers from_single_file loads identical weights")
        meta["single_file_check"] = "identical"

    out = {k: v.detach().float().contiguous().clone() for k, v in out.items()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    save_file(out, a.out, metadata=meta)
    print(f"wrote {a.out}: {len(out)} tensors, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
