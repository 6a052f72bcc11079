#!/usr/bin/env python3
"""Generate tests/fixtures/io_small.safetensors with the reference `safetensors` package.

test_safetensors.c reads it to check that lorastyle's reader agrees with the reference writer. Every
half/double tensor X has a companion "X.ref" (F32) holding X converted to float32 by torch, so the C
test can compare without recomputing anything. Run:  python3 tests/gen_io_fixtures.py
"""
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "io_small.safetensors")


def main():
    g = torch.Generator().manual_seed(1234)
    t = {}
    t["a_f32"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0
    t["b_f16"] = torch.randn(3, 4, generator=g).to(torch.float16)
    t["c_bf16"] = (torch.randn(5, generator=g) * 100).to(torch.bfloat16)
    t["d_f64"] = torch.tensor([[1 / 3, 2.0], [-1e-3, 1e10]], dtype=torch.float64)
    # largest half, smallest normal, a subnormal, the smallest subnormal, negative zero
    t["e_f16_special"] = torch.tensor([65504.0, 2.0**-14, 3 * 2.0**-24, 2.0**-24, -0.0], dtype=torch.float16)
    for k in ["b_f16", "c_bf16", "d_f64", "e_f16_special"]:
        t[k + ".ref"] = t[k].to(torch.float32)
    t["alpha"] = torch.tensor(8.0)  # 0-d tensor, as in kohya LoRA files
    t["ids"] = torch.tensor([1, 2, 3], dtype=torch.int64)  # not a float: st_to_f32 must refuse it
    meta = {"format": "pt", "ss_network_dim": "4", "note": 'h\u00e9llo \u2713 "quoted"'}
    save_file({k: v.contiguous() for k, v in t.items()}, OUT, metadata=meta)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
