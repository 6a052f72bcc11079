#!/usr/bin/env python3
"""Reference text-encoder LoRA gradients for tests/test_clip_grad.c, computed by PyTorch autograd through
transformers' CLIPTextModel with the LoRA loaded by diffusers (PEFT).

Never run in CI (CI compares against the committed file). Regenerate with

    cmake --build build && python3 tests/gen_clip_grad_fixtures.py --lorastyle build/lorastyle

It makes the tiny preset model (`lorastyle init --preset tiny --seed 1`, as the C test does), loads the
committed kohya adapter tests/fixtures/lora_kohya.safetensors (its lora_te_ modules: q/k/v/out_proj and
fc1/fc2 of the 3 CLIP layers, rank 4, alpha 2) with `pipe.load_lora_weights` + `set_adapters(weights=0.7)`,
and for a fixed batch of 2 token sequences computes, for clip skip 1 (last layer) and 2 (penultimate,
A1111 numbering; the final LayerNorm is applied to it, as diffusers' clip_skip does),

    out = final_layer_norm(hidden_states[-skip]),   loss = sum(out * R),   loss.backward()

with a fixed random R (B, 77, D), and saves the gradient of every text-encoder LoRA down/up matrix under
the adapter's kohya key names (`<prefix>lora_te_<module>.lora_down.weight`, prefix "" for clip skip 1,
"skip2." for clip skip 2; layer 2's modules get no gradient there and are left out). A third pass with
every up matrix zeroed (kohya's initialisation) stores the up gradients under "zero_up." (clip skip 1).
File: tests/fixtures/clip_grad.safetensors (float32): ids (as floats), R, out, out_skip2, the gradients.

Full fine-tuning (clip_full_grads_alloc): with the same ids and R, through the plain text encoder (no
adapter: transformers' CLIPTextModel loaded from the model's text_encoder/ folder, every parameter
requiring grad), the gradient of every text-encoder tensor under "grad.<checkpoint key>" (the C
WeightTable's names, "text_model.embeddings.token_embedding.weight", ...) at clip skip 1. The token
embedding's gradient is zero but for the rows of the ids that occur: the file holds those rows only, in
ascending id order ("token_rows": the ids, as floats), and this script checks the rest is exactly 0. At
clip skip 2 a subset (SKIP2 below: final_layer_norm, the embeddings, norms and biases of layers 1 and 0,
one weight) under "skip2.grad.<key>"; layer 2 gets no gradient there. Plus ids and R.
File: tests/fixtures/clip_full_grad.safetensors (float32, ~0.16 MB).
"""
import os, sys

import torch
from safetensors.torch import load_file

from fixture_common import parse_args, peft_layers, save_reference, tiny_model, train_kohya_layers

STRENGTH = 0.7
ADAPTER = "k"
TOK = "text_model.embeddings.token_embedding.weight"
SKIP2 = [
    "text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias",
    "text_model.embeddings.position_embedding.weight", TOK,
    "text_model.encoder.layers.1.mlp.fc2.bias", "text_model.encoder.layers.1.mlp.fc1.bias",
    "text_model.encoder.layers.1.layer_norm2.weight", "text_model.encoder.layers.1.self_attn.out_proj.bias",
    "text_model.encoder.layers.0.self_attn.q_proj.weight", "text_model.encoder.layers.0.self_attn.v_proj.bias",
    "text_model.encoder.layers.0.layer_norm1.bias",
]


def lora_layers(te):
    """(kohya key, PEFT LoRA layer) for every text-encoder module carrying the adapter."""
    for name, mod in peft_layers(te, ADAPTER):
        full = name if name.startswith("text_model.") else "text_model." + name  # transformers >= 5.6
        yield "lora_te_" + full.replace(".", "_"), mod


def grads(te, kohya, ids, R, skip):
    """out and {kohya key: gradient} of loss = sum(out * R) at A1111 clip skip `skip`."""
    for _, mod in lora_layers(te):
        for p in (mod.lora_A[ADAPTER].weight, mod.lora_B[ADAPTER].weight):
            p.grad = None
    r = te(ids, output_hidden_states=True)
    out = getattr(te, "text_model", te).final_layer_norm(r.hidden_states[-skip])
    (out * R).sum().backward()
    res = {}
    for key, mod in lora_layers(te):
        for part, p in (("lora_down", mod.lora_A[ADAPTER].weight), ("lora_up", mod.lora_B[ADAPTER].weight)):
            if p.grad is None:  # a layer after the clip-skip output
                continue
            k = f"{key}.{part}.weight"
            assert k in kohya, f"{k}: no kohya counterpart"
            res[k] = p.grad.detach().reshape(kohya[k].shape).float().contiguous().clone()
    return out.detach(), res


def full_grads(te, ids, R, skip):
    """out and {checkpoint key: gradient} of every text-encoder parameter, loss = sum(out * R) at A1111 clip
    skip `skip`; parameters of layers after the clip-skip output (no gradient) are left out."""
    te.zero_grad(set_to_none=True)
    r = te(ids, output_hidden_states=True)
    out = getattr(te, "text_model", te).final_layer_norm(r.hidden_states[-skip])
    (out * R).sum().backward()
    res = {}
    for name, p in te.named_parameters():
        key = name if name.startswith("text_model.") else "text_model." + name
        if p.grad is not None:
            res[key] = p.grad.detach().float().contiguous().clone()
    return out.detach(), res


def write_full(model, ids, R, path):
    """tests/fixtures/clip_full_grad.safetensors: see the module docstring."""
    import transformers
    from transformers import CLIPTextModel

    te = CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder"), torch_dtype=torch.float32)
    te.requires_grad_(True)
    n_layers = te.config.num_hidden_layers
    _, gr = full_grads(te, ids, R, 1)
    n_param = sum(1 for _ in te.named_parameters())
    assert len(gr) == n_param == 4 + 16 * n_layers, f"{len(gr)} gradients of {n_param} tensors"
    _, gr2 = full_grads(te, ids, R, 2)
    assert not any(f".layers.{n_layers - 1}." in k for k in gr2), "clip skip 2: the last layer got gradients"
    rows = torch.unique(ids)  # sorted
    for g in (gr, gr2):
        rest = g[TOK].clone()
        rest[rows] = 0
        assert rest.abs().max() == 0, "token embedding: gradient on a row whose id does not occur"
        g[TOK] = g[TOK][rows].contiguous()
    ref = {"ids": ids.float(), "R": R, "token_rows": rows.float()}
    ref.update({"grad." + k: v for k, v in gr.items()})
    ref.update({"skip2.grad." + k: gr2[k] for k in SKIP2})
    save_reference(ref, path, {"transformers": transformers.__version__, "torch": torch.__version__,
                               "tensors": str(n_param)})
    gn = torch.sqrt(sum((v.double() ** 2).sum() for v in gr.values())).item()
    print(f"wrote {path} ({os.path.getsize(path)} bytes): {n_param} tensors, {len(rows)} token rows, "
          f"grad norm {gn:.4g}")


def main():
    a = parse_args(adapter="tests/fixtures/lora_kohya.safetensors", out="tests/fixtures/clip_grad.safetensors",
                   out_full="tests/fixtures/clip_full_grad.safetensors")

    import diffusers, transformers
    from diffusers import StableDiffusionPipeline

    model = tiny_model(a.lorastyle, "ls_cgrad_fixture_")
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    te = pipe.text_encoder
    pipe.load_lora_weights(a.adapter, adapter_name=ADAPTER)
    pipe.set_adapters([ADAPTER], adapter_weights=[STRENGTH])
    te.requires_grad_(False)
    kohya = load_file(a.adapter)

    n_mod = train_kohya_layers(lora_layers(te), kohya, ADAPTER, STRENGTH)
    n_te = sum(1 for k in kohya if k.startswith("lora_te_") and k.endswith(".alpha"))
    assert n_mod == n_te == 18, f"{n_mod} PEFT layers but {n_te} text-encoder modules in the adapter"

    cfg = te.config
    g = torch.Generator().manual_seed(77)
    L = cfg.max_position_embeddings
    ids = torch.full((2, L), cfg.eos_token_id, dtype=torch.long)  # padding = EOS (SD1.x)
    for b, n in enumerate((9, 40)):  # BOS, n tokens, EOS, padding
        ids[b, 0] = cfg.bos_token_id
        ids[b, 1:n + 1] = torch.randint(0, cfg.vocab_size - 2, (n,), generator=g)
    R = torch.randn(2, L, cfg.hidden_size, generator=g)

    out, gr = grads(te, kohya, ids, R, 1)
    out2, gr2 = grads(te, kohya, ids, R, 2)
    assert len(gr2) == 2 * (n_mod - 6), "clip skip 2: the last layer's modules must get no gradient"
    with torch.no_grad():  # kohya's initialisation: up = 0
        for _, mod in lora_layers(te):
            mod.lora_B[ADAPTER].weight.zero_()
    _, gr0 = grads(te, kohya, ids, R, 1)
    assert all(v.abs().max() == 0 for k, v in gr0.items() if "lora_down" in k), "zero-up: down grads != 0"

    ref = {"ids": ids.float(), "R": R, "out": out, "out_skip2": out2}
    ref.update(gr)
    ref.update({"skip2." + k: v for k, v in gr2.items()})
    ref.update({"zero_up." + k: v for k, v in gr0.items() if "lora_up" in k})
    save_reference(ref, a.out, {"strength": str(STRENGTH), "adapter": os.path.basename(a.adapter),
                                "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                                "torch": torch.__version__, "modules": str(n_mod)})
    gn = torch.sqrt(sum((v.double() ** 2).sum() for v in gr.values())).item()
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes): {n_mod} modules, grad norm {gn:.4g}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, diffusers {diffusers.__version__}")
    write_full(model, ids, R, a.out_full)


if __name__ == "__main__":
    sys.exit(main())
