"""fixture_common.py — what the fixture generators (tests/gen_*_fixtures.py) share: their command line, the
tiny preset model they start from (the one the C tests make), the inputs of the U-Net and adapter checks,
the check that diffusers + PEFT loaded a kohya adapter as lorastyle reads it, and the writing of a
reference file. Imported by the generators, which run from anywhere (python3 tests/gen_….py)."""
import argparse, subprocess, tempfile

import torch
from safetensors.torch import save_file


def parse_args(**paths):
    """The generators' command line: --lorastyle (the built binary that makes the model) and one option per
    keyword with its default path (out_full → --out-full)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorastyle", default="build/lorastyle")
    for name, default in paths.items():
        ap.add_argument("--" + name.replace("_", "-"), default=default)
    return ap.parse_args()


def tiny_model(lorastyle, prefix, **run):
    """`lorastyle init --preset tiny --seed 1` (what the C tests make) in a new temporary folder named
    prefix…; returns the folder. run: more arguments for subprocess.run."""
    model = tempfile.mkdtemp(prefix=prefix)
    subprocess.run([lorastyle, "init", "--preset", "tiny", "--seed", "1", "-o", model], check=True, **run)
    return model


def tiny_pipeline(lorastyle, prefix, **run):
    """The tiny model as a diffusers StableDiffusionPipeline (no safety checker)."""
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline.from_pretrained(tiny_model(lorastyle, prefix, **run), safety_checker=None,
                                                   requires_safety_checker=False)


def tiny_part(lorastyle, prefix, cls, subfolder, full=()):
    """One network of the tiny model (cls: a diffusers class, subfolder "unet" or "vae") in float32, every
    name in full asserted to be one of its parameters."""
    net = cls.from_pretrained(tiny_model(lorastyle, prefix), subfolder=subfolder).float()
    params = dict(net.named_parameters())
    for k in full:
        assert k in params, f"{k}: not a parameter of the tiny {subfolder}"
    return net


def unet_case(unet, g):
    """The U-Net loss case of the gradient tests (tests/unet_case.h): a batch of 2 with one timestep each
    (one of them fractional), a 16x12 latent (not square: catches H/W mix-ups), random context and target
    drawn from generator g; returns x, t, ctx, target."""
    cfg = unet.config
    H, W = 16, 12
    x = torch.randn(2, cfg.in_channels, H, W, generator=g)
    t = torch.tensor([421.0, 37.5])
    ctx = torch.randn(2, 77, cfg.cross_attention_dim, generator=g)
    target = torch.randn(2, cfg.out_channels, H, W, generator=g)
    return x, t, ctx, target


def prompt_case(pipe, prompt, g):
    """The adapter tests' inputs (tests/lora_case.h): the prompt's token ids (padded to the tokenizer's
    length), a latent of the U-Net's sample size drawn from g, timestep 421 and the base text encoder's
    context; returns ids, x, t, ctx."""
    tok, unet = pipe.tokenizer, pipe.unet
    ids = tok([prompt], padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    s = unet.config.sample_size
    x = torch.randn(1, unet.config.in_channels, s, s, generator=g)
    t = torch.tensor(421.0)
    ctx = pipe.text_encoder(ids).last_hidden_state
    return ids, x, t, ctx


def lora_targets(unet, te):
    """(kohya name, diffusers module path, component "unet" or "te", module) for every module an SD-1.x
    LoCon adapter may target: the U-Net's Linear and Conv2d layers in attentions, resnets and samplers, the
    text encoder's self-attention and MLP Linear layers."""
    out = []
    for name, mod in unet.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)) and any(
                p in name for p in ("attentions", "resnets", "samplers")):
            out.append(("lora_unet_" + name.replace(".", "_"), name, "unet", mod))
    for name, mod in te.named_modules():
        if isinstance(mod, torch.nn.Linear) and ("self_attn" in name or "mlp" in name):
            full = name if name.startswith("text_model.") else "text_model." + name
            out.append(("lora_te_" + full.replace(".", "_"), full, "te", mod))
    return out


def peft_layers(net, adapter):
    """(module name, PEFT LoRA layer) for every module of net carrying the PEFT adapter `adapter`."""
    for name, mod in net.named_modules():
        if hasattr(mod, "lora_A") and adapter in getattr(mod, "lora_A", {}):
            yield name, mod


def train_kohya_layers(layers, kohya, adapter, strength):
    """For each (kohya module name, PEFT LoRA layer) of the kohya adapter file's tensors (kohya) loaded by
    diffusers as PEFT adapter `adapter` at strength: PEFT's A/B must be kohya's down/up, unscaled, and its
    scaling strength·alpha/rank (so their gradients are the ones lorastyle computes); makes A and B
    trainable. Returns how many layers."""
    n = 0
    for key, mod in layers:
        down, up = kohya[key + ".lora_down.weight"], kohya[key + ".lora_up.weight"]
        assert torch.equal(mod.lora_A[adapter].weight.reshape(down.shape), down), f"{key}: A != down"
        assert torch.equal(mod.lora_B[adapter].weight.reshape(up.shape), up), f"{key}: B != up"
        want = strength * kohya[key + ".alpha"].item() / down.shape[0]
        assert abs(mod.scaling[adapter] - want) < 1e-6, f"{key}: scaling {mod.scaling[adapter]} != {want}"
        mod.lora_A[adapter].weight.requires_grad_(True)
        mod.lora_B[adapter].weight.requires_grad_(True)
        n += 1
    return n


def save_reference(ref, path, metadata):
    """Write the tensors of ref as contiguous float32 copies, with metadata (strings), to path."""
    save_file({k: v.detach().float().contiguous().clone() for k, v in ref.items()}, path, metadata=metadata)
