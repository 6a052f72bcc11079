#!/usr/bin/env python3
"""Reference weights and outputs for lorastyle's LyCORIS LoHa / LoKr and DoRA loading (tests/test_lycoris.c),
made by LyCORIS's own modules and by PEFT.

Never run in CI (CI compares against the committed files). Regenerate with

    pip install torch diffusers transformers peft safetensors lycoris-lora einops toml
    cmake --build build && python3 tests/gen_lycoris_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does) and writes four
adapters over every module an SD-1.x LoCon adapter targets (attention, feed-forward, 1x1 proj/shortcut, 3x3
resnet and sampler convs, time_emb_proj, the text encoder's q/k/v/out/fc1/fc2), all parameters random:

  lyco_loha.safetensors   LyCORIS LohaModule, rank 2, alpha 1.5; CP-decomposed (hada_t1/t2) on half the 3x3
                          convs; dora_scale (DoHa) on a few modules, on both axes
  lyco_lokr.safetensors   LyCORIS LokrModule, rank 2, alpha 3: w1 full + w2 low-rank, both low-rank
                          (decompose_both, rank 1), both full (full_matrix: scale 1), lokr_t2 on 3x3 convs
  lyco_dora.safetensors   LyCORIS LoConModule with weight_decompose (kohya keys + dora_scale), wd_on_out
                          alternating (per output row / per input channel)
  peft_dora.safetensors   PEFT LoRA with use_dora=True on the U-Net, in diffusers keys (unet.….lora_A/B,
                          lora_magnitude_vector)

Each module's update at full strength is LyCORIS's own: the non-bypass forward's get_weight(shape) for
LoHa / LoKr (alpha/rank applied once, as A1111 and ComfyUI; 4.1.3's get_diff_weight applies it twice),
weight_decompose for DoRA; the script checks it against the formulas written out here. Strength s enters as
A1111 / ComfyUI apply it: W(s) = W + s·(W(1) − W). The reference at s = STRENGTH patches the diffusers
weights so; the PEFT file is also run through diffusers' load_lora_weights at s = 1 (PEFT's own DoRA
forward). tests/fixtures/lyco_ref.safetensors holds inputs, base and adapted U-Net / text-encoder outputs
per adapter ("<tag>.unet", "<tag>.te", PEFT: "peft_dora.unet_s1") and merged weights of a few modules
("<tag>.w.<module path>").
"""
import math, os, subprocess, sys

import torch
from safetensors.torch import save_file

from fixture_common import lora_targets, parse_args, prompt_case, save_reference, tiny_pipeline

torch.set_grad_enabled(False)
STRENGTH = 0.7
WEIGHT_KEYS = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.0.resnets.0.conv1",
               "up_blocks.0.resnets.0.conv_shortcut", "text_model.encoder.layers.0.mlp.fc1")


def randomize(module, g, std=0.3):
    for name, p in module.named_parameters():
        if p.requires_grad and p.dim() > 0 and name != "dora_scale":
            p.copy_(torch.randn(p.shape, generator=g) * std)


def dora_scale_perturb(module, g):
    module.dora_scale.copy_(module.dora_scale * (1 + 0.1 * torch.rand(module.dora_scale.shape, generator=g)))


def loha_formula(sd, scale):
    """ΔW as A1111 / ComfyUI write it: (w1a@w1b) * (w2a@w2b) * alpha/rank, CP halves by einsum."""
    if "hada_t1" in sd:
        h1 = torch.einsum("i j k l, i p, j r -> p r k l", sd["hada_t1"], sd["hada_w1_a"], sd["hada_w1_b"])
        h2 = torch.einsum("i j k l, i p, j r -> p r k l", sd["hada_t2"], sd["hada_w2_a"], sd["hada_w2_b"])
        return h1 * h2 * scale
    return (sd["hada_w1_a"] @ sd["hada_w1_b"]) * (sd["hada_w2_a"] @ sd["hada_w2_b"]) * scale


def lokr_formula(sd, alpha):
    w1 = sd["lokr_w1"] if "lokr_w1" in sd else sd["lokr_w1_a"] @ sd["lokr_w1_b"]
    if "lokr_w2" in sd:
        w2 = sd["lokr_w2"]
    elif "lokr_t2" in sd:
        w2 = torch.einsum("i j k l, i p, j r -> p r k l", sd["lokr_t2"], sd["lokr_w2_a"], sd["lokr_w2_b"])
    else:
        w2 = sd["lokr_w2_a"] @ sd["lokr_w2_b"]
    rank = sd["lokr_w2_b"].shape[0] if "lokr_w2_b" in sd else sd["lokr_w1_b"].shape[0] if "lokr_w1_b" in sd else None
    scale = alpha / rank if rank else 1.0
    while w1.dim() < w2.dim():
        w1 = w1.unsqueeze(-1)
    return torch.kron(w1.contiguous(), w2.contiguous()) * scale


def build_lycoris(kind, tgts, g):
    """{file key: tensor}, {module path: ΔW at strength 1 (W(1) − W)}, variant counts."""
    from lycoris.functional.general import weight_decompose
    from lycoris.modules.locon import LoConModule
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule
    sd_all, deltas, counts = {}, {}, {}
    for i, (kname, path, comp, mod) in enumerate(tgts):
        W = mod.weight.detach().clone()
        conv3 = isinstance(mod, torch.nn.Conv2d) and mod.kernel_size[0] > 1
        wd = kind == "dora" or (i % 9 == 4)
        wd_on_out = (i // 2) % 2 == 0
        if kind == "loha":
            m = LohaModule(kname, mod, 1.0, lora_dim=2, alpha=1.5, use_tucker=conv3 and i % 2 == 0,
                           weight_decompose=wd, wd_on_out=wd_on_out)
        elif kind == "lokr":
            v = i % 4
            m = LokrModule(kname, mod, 1.0, lora_dim=1 if v == 1 else 2, alpha=3.0, use_tucker=conv3 and v == 3,
                           decompose_both=v == 1, full_matrix=v == 2, factor=8 if v == 1 else -1,
                           weight_decompose=wd, wd_on_out=wd_on_out)
        else:
            m = LoConModule(kname, mod, 1.0, lora_dim=4, alpha=2.0, weight_decompose=True, wd_on_out=wd_on_out)
        randomize(m, g, {"loha": 0.25, "lokr": 0.12, "dora": 0.15}[kind])
        if wd:
            dora_scale_perturb(m, g)
        sd = {k: v.detach().clone().float().contiguous() for k, v in m.custom_state_dict().items()}
        alpha = float(sd["alpha"])
        if kind == "dora":
            merged = m.get_merged_weight(1.0)[0]
            dw = (sd["lora_up.weight"].flatten(1) @ sd["lora_down.weight"].flatten(1)).view(W.shape) * alpha / 4
        else:
            dw = m.get_weight(m.shape).reshape(W.shape)
            ref = (loha_formula(sd, alpha / 2) if kind == "loha" else lokr_formula(sd, alpha)).reshape(W.shape)
            err = ((dw - ref).norm() / ref.norm()).item()
            assert err < 1e-5, f"{kname}: LyCORIS ΔW vs formula {err:.2e}"
            merged = weight_decompose(W + dw, m.dora_scale, 1.0, wd_on_out) if wd else W + dw
        if wd:  # DoRA by hand: m * V / ||V|| per output row or per input channel
            V = W + dw
            n = V.flatten(1).norm(dim=1).view(-1, *[1] * (V.dim() - 1)) if wd_on_out else \
                V.transpose(0, 1).flatten(1).norm(dim=1).view(1, -1, *[1] * (V.dim() - 2))
            by_hand = sd["dora_scale"] * V / n
            err = ((merged - by_hand).norm() / by_hand.norm()).item()
            assert err < 1e-5, f"{kname}: LyCORIS DoRA vs formula {err:.2e}"
        deltas[path] = (merged - W).detach()
        variant = "+".join(sorted(k for k in sd if k not in ("alpha",))) + (" (1x1/linear)" if not conv3 else " (3x3)")
        counts[variant] = counts.get(variant, 0) + 1
        for k, v in sd.items():
            sd_all[kname + "." + k] = v
    return sd_all, deltas, counts


def run(unet, te, x, t, ids, ctx):
    return unet(x, t, encoder_hidden_states=ctx).sample.clone(), te(ids).last_hidden_state.clone()


def patched(tgts, deltas, s, fn):
    saved = {}
    for _, path, _, mod in tgts:
        if path in deltas:
            saved[path] = mod.weight.detach().clone()
            mod.weight.copy_(mod.weight + s * deltas[path])
    try:
        return fn()
    finally:
        for _, path, _, mod in tgts:
            if path in saved:
                mod.weight.copy_(saved[path])


def main():
    a = parse_args(outdir="tests/fixtures")
    import diffusers, peft
    pipe = tiny_pipeline(a.lorastyle, "ls_lyco_fixture_", stdout=subprocess.DEVNULL)
    unet, te = pipe.unet, pipe.text_encoder
    tgts = lora_targets(unet, te)
    g = torch.Generator().manual_seed(2024)
    prompt = "a loha painting of a red fox in the snow"
    ids, x, t, ctx = prompt_case(pipe, prompt, g)
    base_u, base_te = run(unet, te, x, t, ids, ctx)
    ref = {"ids": ids.float(), "x": x, "t": t.reshape(1), "ctx": ctx, "unet_base": base_u, "te_base": base_te}
    os.makedirs(a.outdir, exist_ok=True)
    rel = lambda p, q: ((p - q).norm() / q.norm()).item()

    for kind in ("loha", "lokr", "dora"):
        sd, deltas, counts = build_lycoris(kind, tgts, g)
        tag = "lyco_" + kind
        path = os.path.join(a.outdir, tag + ".safetensors")
        save_file(sd, path, metadata={"ss_network_module": "lycoris.kohya", "ss_network_args":
                                      '{"algo": "%s"}' % ("locon" if kind == "dora" else kind)})
        u, e = patched(tgts, deltas, STRENGTH, lambda: run(unet, te, x, t, ids, ctx))
        ref[tag + ".unet"], ref[tag + ".te"] = u, e
        for k in WEIGHT_KEYS:
            mod = dict((p, m) for _, p, _, m in tgts)[k]
            ref[tag + ".w." + k] = mod.weight + STRENGTH * deltas[k]
        print(f"{tag}: {len(deltas)} modules; effect at {STRENGTH}: unet {rel(u, base_u):.3f}, te "
              f"{rel(e, base_te):.3f}")
        for v, n in sorted(counts.items()):
            print(f"   {n:3d} x {v}")

    # PEFT DoRA on the U-Net, through peft itself
    from peft import LoraConfig, get_peft_model_state_dict
    unet_paths = [p for _, p, c, _ in tgts if c == "unet"]
    cfg = LoraConfig(r=4, lora_alpha=4, use_dora=True, init_lora_weights=False, target_modules=unet_paths)
    unet.add_adapter(cfg, adapter_name="dora")
    for name, p in unet.named_parameters():
        if "lora_A" in name or "lora_B" in name:
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        elif "lora_magnitude_vector" in name:
            p.copy_(p * (1 + 0.1 * torch.rand(p.shape, generator=g)))
    u1, _ = run(unet, te, x, t, ids, ctx)
    psd = get_peft_model_state_dict(unet, adapter_name="dora")
    psd = {"unet." + k: v.detach().float().contiguous().clone() for k, v in psd.items()}
    unet.delete_adapters("dora")
    fp = os.path.join(a.outdir, "peft_dora.safetensors")
    save_file(psd, fp)
    print(f"peft_dora: {len(psd)} tensors, e.g. " + ", ".join(sorted(psd)[:3]))
    # diffusers reads the file back to the same output (PEFT's DoRA forward at scale 1)
    pipe.load_lora_weights(fp, adapter_name="peftdora")
    pipe.set_adapters(["peftdora"], adapter_weights=[1.0])
    u1d, _ = run(unet, te, x, t, ids, ctx)
    pipe.delete_adapters("peftdora")
    print(f"peft_dora: diffusers load_lora_weights vs peft add_adapter: {rel(u1d, u1):.2e}")
    assert rel(u1d, u1) < 1e-5
    # by hand: W(1) = m * V / ||V|| per output row, V = W + B@A (lora_alpha = r)
    deltas = {}
    mods = dict((p, m) for _, p, _, m in tgts)
    for pth in unet_paths:
        W = mods[pth].weight
        A, B = psd[f"unet.{pth}.lora_A.weight"], psd[f"unet.{pth}.lora_B.weight"]
        mag = [v for k, v in psd.items() if k.startswith(f"unet.{pth}.lora_magnitude_vector")][0].flatten()
        V = W + (B.flatten(1) @ A.flatten(1)).view(W.shape)
        D = mag.view(-1, *[1] * (W.dim() - 1)) * V / V.flatten(1).norm(dim=1).view(-1, *[1] * (W.dim() - 1))
        deltas[pth] = D - W
    u1h, _ = patched(tgts, deltas, 1.0, lambda: run(unet, te, x, t, ids, ctx))
    print(f"peft_dora: formula vs PEFT forward at 1: {rel(u1h, u1):.2e}")
    assert rel(u1h, u1) < 1e-5
    u, _ = patched(tgts, deltas, STRENGTH, lambda: run(unet, te, x, t, ids, ctx))
    ref["peft_dora.unet"], ref["peft_dora.unet_s1"] = u, u1
    ref["peft_dora.w." + WEIGHT_KEYS[1]] = mods[WEIGHT_KEYS[1]].weight + STRENGTH * deltas[WEIGHT_KEYS[1]]
    print(f"peft_dora: effect at {STRENGTH}: unet {rel(u, base_u):.3f}")

    fr = os.path.join(a.outdir, "lyco_ref.safetensors")
    import lycoris
    save_reference(ref, fr, {"strength": str(STRENGTH), "prompt": prompt, "diffusers": diffusers.__version__,
                             "peft": peft.__version__, "lycoris": getattr(lycoris, "__version__", "?"),
                             "torch": torch.__version__})
    print(f"wrote {fr}")


if __name__ == "__main__":
    sys.exit(main())
