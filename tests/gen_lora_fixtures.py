#!/usr/bin/env python3
"""Reference outputs for lorastyle's adapter tests, computed by diffusers' own LoRA loading.

Never run in CI (CI compares against the committed files). Regenerate with

    cmake --build build && python3 tests/gen_lora_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does), writes a
random kohya-format adapter covering every module type lorastyle supports (attention projections,
Transformer2D 1×1 proj_in/out, GEGLU feed-forward, LoCon 3×3 ResNet and sampler convs, 1×1 shortcuts,
time_emb_proj, and the CLIP text encoder's q/k/v/out/fc1/fc2) with rank 4 and per-module alphas that
differ from the rank, and the same adapter in diffusers/PEFT key format. diffusers loads both with
`pipe.load_lora_weights` + `set_adapters(weights=S)`; the script records the U-Net and text-encoder
outputs at strength S and checks the two formats agree. Files:
    tests/fixtures/lora_kohya.safetensors, tests/fixtures/lora_peft.safetensors (the adapters)
    tests/fixtures/lora_ref.safetensors (inputs and outputs, float32)
For SD1.5 shapes (outside CI), pass --preset sd15 --model DIR --outdir /tmp/... (see tests/check_sd15.sh).
"""
import argparse, os, subprocess, sys, tempfile

import torch
from safetensors.torch import save_file

from fixture_common import lora_targets, prompt_case, save_reference

torch.set_grad_enabled(False)
ALPHA, CONV_ALPHA, STRENGTH = 2.0, 1.0, 0.7


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorastyle", default="build/lorastyle")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--model", default=None)
    ap.add_argument("--bpe", default=None)
    ap.add_argument("--outdir", default="tests/fixtures")
    ap.add_argument("--rank", type=int, default=4)
    a = ap.parse_args()
    RANK = a.rank

    import diffusers
    from diffusers import StableDiffusionPipeline

    model = a.model
    if model is None:
        model = tempfile.mkdtemp(prefix="ls_lora_fixture_")
        cmd = [a.lorastyle, "init", "--preset", a.preset, "--seed", "1", "-o", model]
        if a.bpe:
            cmd += ["--bpe", a.bpe]
        subprocess.run(cmd, check=True)

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    unet, te = pipe.unet, pipe.text_encoder
    g = torch.Generator().manual_seed(4321)
    kohya, peft = {}, {}
    for kname, path, comp, mod in lora_targets(unet, te):
        pname = ("unet." if comp == "unet" else "text_encoder.") + path
        if isinstance(mod, torch.nn.Linear):
            down = torch.randn(RANK, mod.in_features, generator=g) * 0.5 / mod.in_features ** 0.25
            up = torch.randn(mod.out_features, RANK, generator=g) * 0.5 / RANK ** 0.5
            alpha = ALPHA
        else:
            k = mod.kernel_size[0]
            down = torch.randn(RANK, mod.in_channels, k, k, generator=g) * 0.3 / (mod.in_channels * k * k) ** 0.25
            up = torch.randn(mod.out_channels, RANK, 1, 1, generator=g) * 0.3 / RANK ** 0.5
            alpha = CONV_ALPHA if k > 1 else ALPHA
        kohya[kname + ".lora_down.weight"] = down
        kohya[kname + ".lora_up.weight"] = up
        kohya[kname + ".alpha"] = torch.tensor(alpha)
        # PEFT files carry no per-module alpha (alpha = rank unless metadata says otherwise), so the
        # same adapter is written with alpha/rank folded into B.
        peft[pname + ".lora_A.weight"] = down
        peft[pname + ".lora_B.weight"] = up * (alpha / RANK)
    os.makedirs(a.outdir, exist_ok=True)
    fk = os.path.join(a.outdir, "lora_kohya.safetensors")
    fp = os.path.join(a.outdir, "lora_peft.safetensors")
    save_file({k: v.contiguous() for k, v in kohya.items()}, fk,
              metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(RANK),
                        "ss_network_alpha": str(ALPHA)})
    save_file({k: v.contiguous() for k, v in peft.items()}, fp)

    # inputs
    prompt = "a watercolor painting of a red fox in the snow"
    ids, x, t, ctx = prompt_case(pipe, prompt, g)  # base text encoder: the U-Net check is independent of the TE LoRA
    base_unet = unet(x, t, encoder_hidden_states=ctx).sample

    results = {}
    for tag, path in (("kohya", fk), ("peft", fp)):
        pipe.load_lora_weights(path, adapter_name=tag)
        pipe.set_adapters([tag], adapter_weights=[STRENGTH])
        results[tag] = (unet(x, t, encoder_hidden_states=ctx).sample, te(ids).last_hidden_state)
        pipe.delete_adapters(tag)
    (u_k, te_k), (u_p, te_p) = results["kohya"], results["peft"]
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    print(f"kohya vs peft in diffusers: unet {rel(u_p, u_k):.2e}, text encoder {rel(te_p, te_k):.2e}")
    print(f"adapter effect at strength {STRENGTH}: unet {rel(u_k, base_unet):.3f}, "
          f"text encoder {rel(te_k, ctx):.3f} (relative change)")
    assert rel(u_p, u_k) < 1e-5 and rel(te_p, te_k) < 1e-5, "formats disagree inside diffusers"
    assert rel(u_k, base_unet) > 1e-2 and rel(te_k, ctx) > 1e-2, "the adapter had no effect"
    ref = {"ids": ids.float(), "x": x, "t": t.reshape(1), "ctx": ctx, "unet_base": base_unet,
           "unet_lora": u_k, "te_lora": te_k}
    fr = os.path.join(a.outdir, "lora_ref.safetensors")
    save_reference(ref, fr, {"strength": str(STRENGTH), "prompt": prompt, "diffusers": diffusers.__version__,
                             "modules": str(len(kohya) // 3)})
    print(f"wrote {fk}, {fp}, {fr}: {len(kohya) // 3} modules, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
