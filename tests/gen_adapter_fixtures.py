#!/usr/bin/env python3
"""Reference forward and gradients of lorastyle's bottleneck (Houlsby-style) adapters for
tests/test_adapter.c, computed by PyTorch autograd on diffusers' UNet2DConditionModel with forward hooks.

Never run in CI (CI compares against the committed files). Regenerate with

    cmake --build build && python3 tests/gen_adapter_fixtures.py --lorastyle build/lorastyle

The adapter (src/pipeline/lora.h, layers.h): on the OUTPUT of every transformer block's attn1.to_out.0,
attn2.to_out.0 and ff.net.2 (C = that Linear's out_features),

    y <- y + s * up(gelu(down(y))),   down (r, C), up (C, r), exact GELU, s = strength * alpha / r.

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does), draws a random
adapter (rank 4, alpha 2, down and up both non-zero so every gradient is), writes it in lorastyle's file
format (adapter_unet_<flat module>.adapter_down.weight / .adapter_up.weight / .alpha, __metadata__
lorastyle_method = adapter) to tests/fixtures/adapter.safetensors — the C test loads that file, so the
format is checked too — and, at strength 0.7 on a batch of 2 (one timestep each, 16x12 latent), computes

    loss = mse_loss(unet(x, t, ctx).sample, target),   loss.backward()

saving x, t, ctx, target, out, base_out (no adapter), loss and the gradient of every down/up under the
adapter's own keys to tests/fixtures/adapter_grad.safetensors (float32).
"""
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fixture_common import parse_args, save_reference, tiny_part, unet_case

RANK, ALPHA, STRENGTH = 4, 2.0, 0.7
TARGETS = ("attn1.to_out.0", "attn2.to_out.0", "ff.net.2")


def main():
    a = parse_args(adapter_out="tests/fixtures/adapter.safetensors", out="tests/fixtures/adapter_grad.safetensors")

    import diffusers
    from diffusers import UNet2DConditionModel

    unet = tiny_part(a.lorastyle, "ls_adapter_fixture_", UNet2DConditionModel, "unet")
    unet.requires_grad_(False)

    g = torch.Generator().manual_seed(77)
    mods = [(n, m) for n, m in unet.named_modules() if n.endswith(TARGETS)]
    params, adapter = {}, {}
    for name, mod in mods:
        C = mod.out_features
        key = "adapter_unet_" + name.replace(".", "_")
        down = (torch.rand(RANK, C, generator=g) * 2 - 1) / C ** 0.5 * 2
        up = torch.randn(C, RANK, generator=g) * 0.3
        adapter[key + ".adapter_down.weight"] = down
        adapter[key + ".adapter_up.weight"] = up
        adapter[key + ".alpha"] = torch.tensor(ALPHA)
        params[name] = (key, down.clone().requires_grad_(True), up.clone().requires_grad_(True))
    save_file(adapter, a.adapter_out, metadata={"lorastyle_method": "adapter", "ss_network_dim": str(RANK),
                                                "ss_network_alpha": str(ALPHA)})

    x, t, ctx, target = unet_case(unet, g)

    with torch.no_grad():
        base_out = unet(x, t, encoder_hidden_states=ctx).sample

    s = STRENGTH * ALPHA / RANK
    handles = []
    for name, mod in mods:
        _, down, up = params[name]
        handles.append(mod.register_forward_hook(
            lambda m, i, o, down=down, up=up: o + s * F.linear(F.gelu(F.linear(o, down)), up)))
    out = unet(x, t, encoder_hidden_states=ctx).sample
    loss = F.mse_loss(out, target)
    loss.backward()
    for h in handles:
        h.remove()

    ref = {"x": x, "t": t, "ctx": ctx, "target": target, "out": out.detach(), "base_out": base_out,
           "loss": loss.detach().reshape(1)}
    for name, (key, down, up) in params.items():
        ref[key + ".adapter_down.weight"] = down.grad
        ref[key + ".adapter_up.weight"] = up.grad
    save_reference(ref, a.out, {"strength": str(STRENGTH), "diffusers": diffusers.__version__,
                                "torch": torch.__version__, "modules": str(len(mods))})
    print(f"wrote {a.adapter_out} and {a.out}: {len(mods)} modules, loss {loss.item():.6f}, "
          f"diffusers {diffusers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
