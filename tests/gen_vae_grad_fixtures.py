#!/usr/bin/env python3
"""Reference outputs and weight gradients of the VAE (AutoencoderKL) for tests/test_vae_grad.c, computed by
PyTorch autograd through diffusers' AutoencoderKL (float32).

Never run in CI (CI compares against the committed file). Regenerate with

    cmake --build build && python3 tests/gen_vae_grad_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does: the file needs
no weights), and for a fixed batch of 2 random images (32x24, not square: catches H/W mix-ups; the tiny VAE
downsamples by 8, so the latent is 4x3), fixed random R1, R2 and a fixed random latent z computes

    moments  = quant_conv(encoder(img))        loss_enc = sum(moments * R1)
    dec      = decoder(post_quant_conv(z))     loss_dec = sum(dec * R2)      (= vae.decode(z).sample)

and backpropagates each loss separately with requires_grad on every parameter (and on z). The tiny VAE has
180 tensors and 1.0 M parameters (4 MB of gradients), too many to commit, so the file holds, under
"enc.<diffusers key>" (encoder and quant_conv: loss_enc's gradient) and "dec.<diffusers key>" (decoder and
post_quant_conv: loss_dec's gradient):
  - the FULL gradient of a representative set (FULL below: conv_in/conv_out of both halves, quant_conv,
    post_quant_conv, a downsampler and an upsampler conv, a conv_shortcut, mid-attention projections, and
    every bias and norm tensor, which are small);
  - for every other tensor the first HEAD values of its flattened gradient.
Plus img, R1, R2, z, moments, dec and dz (= d loss_dec / d z). File: tests/fixtures/vae_grad.safetensors
(float32, ~0.3 MB).
"""
import sys

import torch

from fixture_common import parse_args, save_reference, tiny_part

HEAD = 128
FULL = [
    "encoder.conv_in.weight", "encoder.conv_out.weight", "quant_conv.weight",
    "encoder.down_blocks.0.downsamplers.0.conv.weight",
    "encoder.down_blocks.2.resnets.0.conv_shortcut.weight",
    "encoder.mid_block.attentions.0.to_q.weight",
    "post_quant_conv.weight", "decoder.conv_in.weight", "decoder.conv_out.weight",
    "decoder.up_blocks.2.upsamplers.0.conv.weight",
    "decoder.up_blocks.2.resnets.0.conv_shortcut.weight",
    "decoder.mid_block.attentions.0.to_out.0.weight",
]
SMALL = 64  # tensors of at most this many values (biases, norms) are always stored in full


def main():
    a = parse_args(out="tests/fixtures/vae_grad.safetensors")

    import diffusers
    from diffusers import AutoencoderKL

    vae = tiny_part(a.lorastyle, "ls_vaegrad_fixture_", AutoencoderKL, "vae", FULL)
    vae.requires_grad_(True)
    params = dict(vae.named_parameters())

    g = torch.Generator().manual_seed(2026)
    cfg = vae.config
    f = 2 ** (len(cfg.block_out_channels) - 1)
    B, H, W = 2, 32, 24
    img = torch.rand(B, cfg.in_channels, H, W, generator=g) * 2 - 1
    R1 = torch.randn(B, 2 * cfg.latent_channels, H // f, W // f, generator=g)
    z = torch.randn(B, cfg.latent_channels, H // f, W // f, generator=g).requires_grad_(True)
    R2 = torch.randn(B, cfg.out_channels, H, W, generator=g)

    ref = {"img": img, "R1": R1, "z": z.detach().clone(), "R2": R2}

    def grads(prefix, keep):
        n_full = 0
        for k, p in params.items():
            if not keep(k):
                continue
            assert p.grad is not None, f"{k}: no gradient"
            gr = p.grad.detach().reshape(-1)
            if k in FULL or gr.numel() <= SMALL:
                n_full += 1
            else:
                gr = gr[:HEAD]
            ref[prefix + k] = gr.clone()
        return n_full

    is_enc = lambda k: k.startswith("encoder.") or k.startswith("quant_conv.")
    moments = vae.quant_conv(vae.encoder(img))
    (moments * R1).sum().backward()
    ref["moments"] = moments.detach()
    n_enc = sum(map(is_enc, params))
    f_enc = grads("enc.", is_enc)

    vae.zero_grad(set_to_none=True)
    dec = vae.decode(z).sample
    (dec * R2).sum().backward()
    ref["dec"] = dec.detach()
    ref["dz"] = z.grad.detach()
    f_dec = grads("dec.", lambda k: not is_enc(k))

    save_reference(ref, a.out, {"head": str(HEAD), "diffusers": diffusers.__version__, "torch": torch.__version__,
                                "tensors": str(len(params))})
    print(f"wrote {a.out}: {len(params)} tensors ({n_enc} encoder, {f_enc} + {f_dec} in full), "
          f"moments {tuple(moments.shape)}, dec {tuple(dec.shape)}, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
