#!/usr/bin/env python3
"""Reference LoRA gradients of the U-Net MSE loss for tests/test_unet_grad.c, computed by PyTorch autograd
through diffusers + PEFT.

Never run in CI (CI compares against the committed file). Regenerate with

    cmake --build build && python3 tests/gen_unet_grad_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does), loads the
committed kohya LoCon adapter tests/fixtures/lora_kohya.safetensors (attention, feed-forward, 1x1 and 3x3
convs, samplers, time_emb_proj) with `pipe.load_lora_weights` + `set_adapters(weights=0.7)`, and for a
fixed batch of 2 (a different timestep per item) computes

    loss = mse_loss(unet(x, t, ctx).sample, target),   loss.backward()

and saves the gradient of every U-Net LoRA down/up matrix under the adapter's own kohya key names
(`lora_unet_<module>.lora_down.weight` / `.lora_up.weight`, same shapes as in the adapter). diffusers keeps
kohya's alpha in PEFT's scaling (lora_alpha / r, times the adapter weight), not in the matrices, so PEFT's
lora_A / lora_B *are* kohya's down / up and their gradients are the ones lorastyle computes (checked below).
A second pass with every up matrix zeroed (kohya's initialisation: training starts there) stores its
up-matrix gradients under the prefix `zero_up.` (its down gradients are exactly zero). File: tests/fixtures/unet_grad.safetensors (float32), holding
x, t, ctx, target, out, loss, zero_up.loss and the gradients.
"""
import os, sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from fixture_common import parse_args, peft_layers, save_reference, tiny_pipeline, train_kohya_layers, unet_case

STRENGTH = 0.7
ADAPTER = "k"


def lora_layers(unet):
    """(module name, PEFT LoRA layer) for every U-Net module carrying the adapter."""
    return peft_layers(unet, ADAPTER)


def grads(unet, kohya, x, t, ctx, target):
    """loss and {kohya key: gradient} for one forward/backward."""
    for _, mod in lora_layers(unet):
        for p in (mod.lora_A[ADAPTER].weight, mod.lora_B[ADAPTER].weight):
            p.grad = None
    out = unet(x, t, encoder_hidden_states=ctx).sample
    loss = F.mse_loss(out, target)
    loss.backward()
    res = {}
    for name, mod in lora_layers(unet):
        key = "lora_unet_" + name.replace(".", "_")
        A, Bm = mod.lora_A[ADAPTER].weight, mod.lora_B[ADAPTER].weight
        for part, p in (("lora_down", A), ("lora_up", Bm)):
            k = f"{key}.{part}.weight"
            assert k in kohya, f"{k}: PEFT module {name} has no kohya counterpart"
            res[k] = p.grad.detach().reshape(kohya[k].shape).float().contiguous().clone()
    return loss.detach(), out.detach(), res


def main():
    a = parse_args(adapter="tests/fixtures/lora_kohya.safetensors", out="tests/fixtures/unet_grad.safetensors")

    import diffusers

    pipe = tiny_pipeline(a.lorastyle, "ls_ugrad_fixture_")
    unet = pipe.unet
    pipe.load_lora_weights(a.adapter, adapter_name=ADAPTER)
    pipe.set_adapters([ADAPTER], adapter_weights=[STRENGTH])
    unet.requires_grad_(False)
    kohya = load_file(a.adapter)

    layers = (("lora_unet_" + name.replace(".", "_"), mod) for name, mod in lora_layers(unet))
    n_mod = train_kohya_layers(layers, kohya, ADAPTER, STRENGTH)
    n_unet = sum(1 for k in kohya if k.startswith("lora_unet_") and k.endswith(".alpha"))
    assert n_mod == n_unet, f"{n_mod} PEFT layers but {n_unet} U-Net modules in the adapter"

    x, t, ctx, target = unet_case(unet, torch.Generator().manual_seed(2024))

    loss, out, gr = grads(unet, kohya, x, t, ctx, target)
    with torch.no_grad():  # kohya's initialisation: up = 0 (the adapter is the identity)
        for _, mod in lora_layers(unet):
            mod.lora_B[ADAPTER].weight.zero_()
    loss0, _, gr0 = grads(unet, kohya, x, t, ctx, target)
    assert all(v.abs().max() == 0 for k, v in gr0.items() if "lora_down" in k), "zero-up: down grads != 0"

    ref = {"x": x, "t": t, "ctx": ctx, "target": target, "out": out, "loss": loss.reshape(1),
           "zero_up.loss": loss0.reshape(1)}
    ref.update(gr)
    ref.update({"zero_up." + k: v for k, v in gr0.items() if "lora_up" in k})  # down grads are exactly 0
    save_reference(ref, a.out, {"strength": str(STRENGTH), "adapter": os.path.basename(a.adapter),
                                "diffusers": diffusers.__version__, "torch": torch.__version__,
                                "modules": str(n_mod)})
    gn = torch.sqrt(sum((v.double() ** 2).sum() for v in gr.values())).item()
    print(f"wrote {a.out}: {n_mod} modules, loss {loss.item():.6f} (zero-up {loss0.item():.6f}), "
          f"grad norm {gn:.4g}, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
