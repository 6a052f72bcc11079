#!/usr/bin/env python3
"""check_kohya_metadata.py — recompute, independently of lorastyle, the kohya metadata of a trained adapter
as sd-scripts computes it (library/train_util.py, library/sai_model_spec.py, networks/lora.py save_weights),
and compare with what `lorastyle train` wrote.

usage: check_kohya_metadata.py ADAPTER.safetensors MODEL (v|epsilon)
MODEL is what --model named (a diffusers folder or a single file). Standard library only; when the
`safetensors` and `numpy` packages are importable the ss_*-only file is also serialized by safetensors itself,
the way sd-scripts' precalculate_safetensors_hashes does. Exit status 0 when every check passes."""
import datetime
import hashlib
import json
import os
import struct
import sys

fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    fails += not cond


def legacy(b):  # train_util.model_hash / addnet_hash_legacy: 64 KiB at 1 MiB, first 8 hex
    return hashlib.sha256(b[0x100000:0x110000]).hexdigest()[:8]


def is_py_float(s):  # str(float) as Python writes it, e.g. "4.0", "0.0001", "1e-05"
    try:
        return str(float(s)) == s
    except ValueError:
        return False


adapter, model, pred = sys.argv[1], sys.argv[2], sys.argv[3]
raw = open(adapter, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8 : 8 + n])
meta = header.pop("__metadata__")
data = raw[8 + n :]

# sshs_*: the adapter serialized with its ss_* keys only; sha256 of its data part, legacy of its bytes
ss = {k: v for k, v in meta.items() if k.startswith("ss_")}
hdr = json.dumps({"__metadata__": ss, **header}, separators=(",", ":"), ensure_ascii=False).encode()
hdr += b" " * (-len(hdr) % 8)
virtual = struct.pack("<Q", len(hdr)) + hdr + data
check(meta.get("sshs_model_hash") == hashlib.sha256(data).hexdigest(), "sshs_model_hash = sha256 of the data part")
check(meta.get("sshs_legacy_hash") == legacy(virtual), "sshs_legacy_hash = %s (file of %d bytes with ss_* keys only)"
      % (legacy(virtual), len(virtual)))
try:
    import numpy as np
    from safetensors.numpy import save

    dt = {"F32": np.float32, "F16": np.float16}
    tensors = {k: np.frombuffer(data[v["data_offsets"][0] : v["data_offsets"][1]], dt[v["dtype"]]).reshape(v["shape"])
               for k, v in header.items()}
    ref = save(tensors, ss)
    m = struct.unpack("<Q", ref[:8])[0]  # its metadata order is a hash map's, so compare lengths and data
    check(m == len(hdr) and ref[8 + m :] == data, "safetensors.numpy.save(tensors, ss_* keys): same header "
          "length (%d) and data" % m)
    check(meta.get("sshs_legacy_hash") == legacy(ref), "sshs_legacy_hash from safetensors' own serialization")
except ImportError:
    print("skip safetensors cross-check (package not installed)")

# the base model's hashes: train_util.model_hash / calculate_sha256 of the path given (a folder: IsADirectory)
if os.path.isdir(model):
    want_legacy = want_sha = "IsADirectory"
else:
    mb = open(model, "rb").read()
    want_legacy, want_sha = legacy(mb), hashlib.sha256(mb).hexdigest()
check(meta.get("ss_sd_model_hash") == want_legacy, "ss_sd_model_hash = %s" % want_legacy)
check(meta.get("ss_new_sd_model_hash") == want_sha, "ss_new_sd_model_hash = %s" % want_sha)
check(meta.get("ss_sd_model_name") == os.path.basename(model.rstrip("/")), "ss_sd_model_name")

# floats as Python prints them; the two timestamps
for k in ("ss_network_alpha", "ss_learning_rate", "ss_unet_lr", "ss_noise_offset", "ss_max_grad_norm",
          "ss_caption_dropout_rate", "ss_training_started_at", "ss_training_finished_at"):
    check(is_py_float(meta.get(k, "")), "%s = %r is a Python float" % (k, meta.get(k)))
t0, t1 = float(meta["ss_training_started_at"]), float(meta["ss_training_finished_at"])
check(0 < t0 <= t1, "started_at <= finished_at")
alpha = [k for k in header if k.endswith(".alpha")][0]
a0 = struct.unpack("<f", data[header[alpha]["data_offsets"][0] :][:4])[0]
check(float(meta["ss_network_alpha"]) == a0, "ss_network_alpha = the alpha tensor (%g)" % a0)

# prediction type as kohya marks it on SD 1.x (ss_v2 stays False)
check(meta.get("ss_v2") == "False", "ss_v2 False")
check(meta.get("ss_base_model_version") == ("sd_v1_v" if pred == "v" else "sd_v1"), "ss_base_model_version")
check(meta.get("modelspec.prediction_type") == pred, "modelspec.prediction_type = %s" % pred)

# modelspec (sai_model_spec.build_metadata for an SD 1.x LoRA)
reso = meta["ss_resolution"].strip("()").split(", ")
check(meta.get("modelspec.sai_model_spec") == "1.0.1", "modelspec.sai_model_spec")
check(meta.get("modelspec.architecture") == "stable-diffusion-v1/lora", "modelspec.architecture")
check(meta.get("modelspec.implementation") == "diffusers", "modelspec.implementation")
check(meta.get("modelspec.title") == meta.get("ss_output_name"), "modelspec.title = ss_output_name")
check(meta.get("modelspec.resolution") == "%sx%s" % tuple(reso), "modelspec.resolution")
check(meta.get("modelspec.date") == datetime.datetime.fromtimestamp(int(t1)).isoformat(), "modelspec.date")

# the data: dirs and buckets add up to the samples per epoch
dirs = json.loads(meta["ss_dataset_dirs"])
per_epoch = int(meta["ss_num_train_images"])
check(sum(d["n_repeats"] * d["img_count"] for d in dirs.values()) == per_epoch, "ss_dataset_dirs adds up")
bi = json.loads(meta["ss_bucket_info"])
if meta.get("ss_enable_bucket") == "True":
    check(sum(b["count"] for b in bi["buckets"].values()) == per_epoch and "mean_img_ar_error" in bi,
          "ss_bucket_info adds up")
else:
    check(bi is None, "ss_bucket_info null without buckets")
sys.exit(1 if fails else 0)
