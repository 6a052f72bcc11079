#!/usr/bin/env python3
"""PyTorch/diffusers figures for the same calls bench_models times: U-Net forward, VAE decode, text encode,
float32 on the CPU, same threads, median of N after one warm-up; peak RSS at the end.

    python3 bench/peer.py MODEL_DIR [--size PIXELS] [--batch B] [--reps N]
"""
import resource, statistics, time

import torch

from peer_common import arg_parser, image_size

torch.set_grad_enabled(False)


def timed(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts)


def main():
    a = arg_parser().parse_args()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    t0 = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(a.model, subfolder="vae", torch_dtype=torch.float32).eval()
    te = CLIPTextModel.from_pretrained(a.model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    size, h = image_size(a, unet.config.sample_size)
    B = a.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {time.perf_counter() - t0:.2f} s")
    x = torch.randn(B, unet.config.in_channels, h, h)
    ctx = torch.randn(B, 77, te.config.hidden_size)
    ids = torch.randint(0, te.config.vocab_size, (B, 77))
    t = torch.tensor(500.0)
    for name, fn in [("unet forward", lambda: unet(x, t, encoder_hidden_states=ctx)),
                     ("vae decode", lambda: vae.decode(x)),
                     ("text encode", lambda: te(ids))]:
        med, mn = timed(fn, a.reps)
        print(f"{name:<13} {size}x{size} batch {B}: median {med:.4f} s (min {mn:.4f}, {a.reps} reps)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
