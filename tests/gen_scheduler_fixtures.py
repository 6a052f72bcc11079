#!/usr/bin/env python3
"""Dump diffusers' scheduler tables and scripted sampler trajectories for tests/test_scheduler.c.

    python3 tests/gen_scheduler_fixtures.py [out.safetensors]     (default tests/fixtures/scheduler.safetensors)

Every scheduler is built the way SD1.5 users build it: `Class.from_config(pndm.config)` where `pndm` is the
PNDMScheduler of SD1.5's scheduler_config.json, so each class's own defaults (timestep_spacing, ...) apply
(sd1-reference.md §1.4). All tensors are float32. Tensor names (parsed by the C test):

    alphas_cumprod                       [1000]  SD1.5 (scaled_linear 0.00085..0.012)
    alphas_cumprod.linear                [1000]  beta_schedule linear 0.0001..0.02 (DDPM defaults)
    alphas_cumprod.zsnr                  [1000]  SD1.5 with rescale_betas_zero_snr (DDIM's table: ends at 0)
    sched.<sampler>.<spacing>.k<karras>.n<steps>.{timesteps [n], sigmas [n+1], init_noise_sigma [1]}
    traj.<sampler>.<pred>.<spacing>.k<karras>.n<steps>.{x_init, xin, model_out, noise, x}
        x_init [B,C,H,W]: the sample before step 0 (= N(0,1) · init_noise_sigma)
        xin [n,B,C,H,W]: scale_model_input(x, t) at each step
        model_out [n,...]: the fake model output fed to step i (0.3·xin + 0.5·c, c a fixed N(0,1) tensor)
        noise [n,...]: the N(0,1) noise Euler ancestral drew at step i (only for euler_a)
        x [n,...]: the sample after step i

sampler ∈ ddim, euler, euler_a, dpmpp_2m; spacing ∈ default (the class default), leading, linspace,
trailing; pred ∈ epsilon, v_prediction, vzsnr (v_prediction with rescale_betas_zero_snr: the built-in
model's scheduler). The fake model makes the trajectory depend on the sample, but the C
test feeds the stored model outputs so each step is checked on its own numbers.
"""
import os
import sys

import diffusers
import numpy as np
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler)
from diffusers.schedulers import scheduling_euler_ancestral_discrete as euler_a_module
from safetensors.numpy import save_file

# SD1.5 scheduler/scheduler_config.json (diffusers 0.6 file: no timestep_spacing, no prediction_type).
SD15_CONFIG = dict(_class_name="PNDMScheduler", _diffusers_version="0.6.0", beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                   steps_offset=1, set_alpha_to_one=False, skip_prk_steps=True, clip_sample=False,
                   trained_betas=None)

CLASSES = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "euler_a": EulerAncestralDiscreteScheduler,
           "dpmpp_2m": DPMSolverMultistepScheduler}
SHAPE = (2, 4, 4, 4)  # small latent: B, C, H, W


def make_scheduler(sampler, spacing="default", karras=False, pred="epsilon"):
    pndm = PNDMScheduler.from_config(SD15_CONFIG)  # as if loaded from the file: clip_sample rides along
    kw = {}
    if spacing != "default":
        kw["timestep_spacing"] = spacing
    if karras:
        kw["use_karras_sigmas"] = True
    if pred == "vzsnr":
        kw["prediction_type"] = "v_prediction"
        kw["rescale_betas_zero_snr"] = True
    elif pred != "epsilon":
        kw["prediction_type"] = pred
    return CLASSES[sampler].from_config(pndm.config, **kw)


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def dump_schedules(out):
    steps = [1, 2, 7, 20, 48, 50]
    for sampler in CLASSES:
        for spacing in ["default", "leading", "linspace", "trailing"]:
            for karras in ([False, True] if sampler in ("euler", "dpmpp_2m") else [False]):
                for n in steps:
                    s = make_scheduler(sampler, spacing, karras)
                    s.set_timesteps(n)
                    ts = s.timesteps.numpy()
                    if len(ts) != n:  # numpy arange quirk in diffusers' trailing spacing: not mirrored in C
                        print(f"skip {sampler} {spacing} n={n}: diffusers gives {len(ts)} timesteps")
                        continue
                    base = f"sched.{sampler}.{spacing}.k{int(karras)}.n{n}"
                    out[base + ".timesteps"] = f32(ts)
                    if sampler != "ddim":
                        out[base + ".sigmas"] = f32(s.sigmas.numpy())
                    out[base + ".init_noise_sigma"] = f32([float(s.init_noise_sigma)])


def run_trajectory(out, sampler, pred, spacing, karras, n, seed):
    s = make_scheduler(sampler, spacing, karras, pred)
    s.set_timesteps(n)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPE, generator=g) * s.init_noise_sigma
    c = torch.randn(SHAPE, generator=g)
    noises = [torch.randn(SHAPE, generator=g) for _ in range(n)]
    # Euler ancestral draws its noise with randn_tensor inside step(); hand it ours, in order.
    it = iter(noises)
    saved = euler_a_module.randn_tensor
    euler_a_module.randn_tensor = lambda *a, **k: next(it).clone()
    try:
        x_init = x.clone()
        xins, mouts, xs = [], [], []
        for t in s.timesteps:
            xin = s.scale_model_input(x, t)
            mo = 0.3 * xin + 0.5 * c
            x = s.step(mo, t, x).prev_sample
            xins.append(xin.clone())
            mouts.append(mo.clone())
            xs.append(x.clone())
    finally:
        euler_a_module.randn_tensor = saved
    base = f"traj.{sampler}.{pred}.{spacing}.k{int(karras)}.n{n}"
    out[base + ".x_init"] = f32(x_init)
    out[base + ".xin"] = f32(torch.stack(xins))
    out[base + ".model_out"] = f32(torch.stack(mouts))
    out[base + ".x"] = f32(torch.stack(xs))
    if sampler == "euler_a":
        out[base + ".noise"] = f32(torch.stack(noises))


def dump_trajectories(out):
    runs = [  # (sampler, pred, spacing, karras, steps)
        ("ddim", "epsilon", "default", False, 7), ("ddim", "epsilon", "default", False, 20),
        ("ddim", "v_prediction", "default", False, 7), ("ddim", "epsilon", "trailing", False, 7),
        ("euler", "epsilon", "default", False, 2), ("euler", "epsilon", "default", False, 7),
        ("euler", "epsilon", "default", False, 20), ("euler", "v_prediction", "default", False, 7),
        ("euler", "epsilon", "default", True, 7), ("euler", "epsilon", "leading", False, 7),
        ("euler_a", "epsilon", "default", False, 7), ("euler_a", "epsilon", "default", False, 20),
        ("euler_a", "v_prediction", "default", False, 7),
        ("dpmpp_2m", "epsilon", "default", False, 1), ("dpmpp_2m", "epsilon", "default", False, 2),
        ("dpmpp_2m", "epsilon", "default", False, 7), ("dpmpp_2m", "epsilon", "default", False, 20),
        ("dpmpp_2m", "epsilon", "default", True, 7), ("dpmpp_2m", "epsilon", "default", True, 20),
        ("dpmpp_2m", "v_prediction", "default", False, 7),
        ("ddim", "vzsnr", "trailing", False, 7), ("euler", "vzsnr", "trailing", False, 7),
        ("euler_a", "vzsnr", "trailing", False, 7), ("euler_a", "vzsnr", "trailing", False, 20),
        ("dpmpp_2m", "vzsnr", "trailing", False, 7),
    ]
    for k, (sampler, pred, spacing, karras, n) in enumerate(runs):
        run_trajectory(out, sampler, pred, spacing, karras, n, seed=1234 + k)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures",
                                                              "scheduler.safetensors")
    out = {}
    out["alphas_cumprod"] = f32(make_scheduler("ddim").alphas_cumprod.numpy())
    lin = DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    out["alphas_cumprod.linear"] = f32(lin.alphas_cumprod.numpy())
    out["alphas_cumprod.zsnr"] = f32(make_scheduler("ddim", pred="vzsnr").alphas_cumprod.numpy())
    dump_schedules(out)
    dump_trajectories(out)
    meta = {"diffusers": diffusers.__version__, "torch": torch.__version__, "generator": os.path.basename(__file__)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(out, path, metadata=meta)
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}: wrote {len(out)} tensors, "
          f"{os.path.getsize(path)} bytes to {path}")


if __name__ == "__main__":
    main()
