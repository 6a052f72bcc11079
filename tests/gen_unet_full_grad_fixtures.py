#!/usr/bin/env python3
"""Reference gradients of the U-Net MSE loss w.r.t. EVERY U-Net weight (full fine-tuning) for
tests/test_unet_full_grad.c, computed by PyTorch autograd through diffusers' UNet2DConditionModel.

Never run in CI (CI compares against the committed file). Regenerate with

    cmake --build build && python3 tests/gen_unet_full_grad_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does: the file needs
no weights), and for a fixed batch of 2 (a different timestep per item, 16x12 latent) computes

    loss = mse_loss(unet(x, t, ctx).sample, target),   loss.backward()

with requires_grad on every parameter. The tiny U-Net has 304 tensors and 1.1 M parameters (4.4 MB of
gradients), too many to commit, so the file holds under "grad.<checkpoint key>":
  - the FULL gradient of a representative set (FULL below: conv_in, conv_out, the time-embedding MLP, a
    resnet conv/norm/time_emb_proj/shortcut, attention projections of attn1 and attn2, proj_in/proj_out,
    the GEGLU feed-forward, layer norms, the down- and upsampler convs);
  - for every other tensor the first HEAD values of its flattened gradient (so every parameter of the model
    is compared; the C test compares as many leading values as the file holds).
Plus x, t, ctx, target, out and loss. File: tests/fixtures/unet_full_grad.safetensors (float32, ~0.4 MB).
"""
import sys

import torch
import torch.nn.functional as F

from fixture_common import parse_args, save_reference, tiny_part, unet_case

HEAD = 256
FULL = [
    "conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias",
    "conv_norm_out.weight", "conv_norm_out.bias",
    "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
    "down_blocks.0.resnets.0.conv1.weight", "down_blocks.0.resnets.0.norm1.weight",
    "down_blocks.1.resnets.0.time_emb_proj.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
    "down_blocks.1.resnets.0.norm2.bias",
    "down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.proj_out.weight",
    "down_blocks.0.attentions.0.norm.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.norm1.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.norm3.bias",
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_q.weight",
    "down_blocks.0.downsamplers.0.conv.weight",
    "up_blocks.0.upsamplers.0.conv.bias",
]


def main():
    a = parse_args(out="tests/fixtures/unet_full_grad.safetensors")

    import diffusers
    from diffusers import UNet2DConditionModel

    unet = tiny_part(a.lorastyle, "ls_fullgrad_fixture_", UNet2DConditionModel, "unet", FULL)
    unet.requires_grad_(True)
    params = dict(unet.named_parameters())
    x, t, ctx, target = unet_case(unet, torch.Generator().manual_seed(2025))

    out = unet(x, t, encoder_hidden_states=ctx).sample
    loss = F.mse_loss(out, target)
    loss.backward()

    ref = {"x": x, "t": t, "ctx": ctx, "target": target, "out": out.detach(), "loss": loss.detach().reshape(1)}
    n_full = 0
    for k, p in params.items():
        gr = p.grad.detach().reshape(-1)
        if k in FULL:
            n_full += 1
        else:
            gr = gr[:HEAD]
        ref["grad." + k] = gr
    save_reference(ref, a.out, {"head": str(HEAD), "diffusers": diffusers.__version__, "torch": torch.__version__,
                                "tensors": str(len(params))})
    gn = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values())).item()
    print(f"wrote {a.out}: {len(params)} tensors ({n_full} in full), loss {loss.item():.6f}, "
          f"grad norm {gn:.4g}, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
