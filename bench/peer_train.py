#!/usr/bin/env python3
"""PyTorch + PEFT figures for the LoRA training step bench_train times: diffusers' UNet2DConditionModel
(float32, CPU) from the same folder, frozen base, a PEFT LoRA (r=4, alpha=4, to_q/to_k/to_v/to_out.0 —
diffusers' train_text_to_image_lora.py targets, which match attn1 and attn2 as lorastyle's default), AdamW
(lr 1e-4, weight decay 1e-2) on the LoRA parameters, gradient clipping at 1.0, MSE loss against a random
target. Random latents, timesteps and text context of the same shapes. Times forward (+loss), backward,
and optimizer (clip + step + zero_grad) separately; median over N repetitions after one warm-up step (a
repetition is the mean of as many steps as make it last >= 0.5 s); then the U-Net inference forward
(adapter attached) under torch.no_grad for the ratio; peak RSS (ru_maxrss) of this process — run one
configuration per process.

Like bench_train, every repetition measures the CPU time other processes used meanwhile (/proc/stat);
one where they used more than --max-other of the machine is repeated (at most N times).

    python3 bench/peer_train.py MODEL_DIR [--size PIXELS] [--batch B] [--rank R] [--reps N] [--threads 2]
                                [--max-other F] [--no-infer] [--method lora|full]
--method full trains every U-Net parameter instead (AdamW over all of them, as diffusers'
train_text_to_image.py), for the LoRA-vs-full comparison.
"""
import math, os, resource, statistics, time

import torch

from peer_common import arg_parser, image_size


def machine_busy():
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return -1.0
    u, n, sy, idle, io, irq, sirq, steal = v
    return (u + n + sy + irq + sirq + steal) / 100.0


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_reps(fn, reps, max_other, label):
    """fn() -> tuple of seconds (total first); returns (kept tuples + (system CPU s, minor faults), dropped,
    worst kept load, calls per repetition), every value per call."""
    ncpu = os.cpu_count()
    t = time.perf_counter()
    fn()
    w = time.perf_counter() - t
    inner = 1 if w >= 0.5 else math.ceil(0.5 / w)
    print(f"{label}: warm-up {w:.4f} s" + (f", each repetition the mean of {inner} calls" if inner > 1 else ""))
    kept, loads, dropped = [], [], 0
    while len(kept) < reps:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        b0, s0, t0 = machine_busy(), self_cpu(), time.perf_counter()
        acc = None
        for _ in range(inner):
            r = fn()
            acc = r if acc is None else tuple(a + b for a, b in zip(acc, r))
        wall = time.perf_counter() - t0
        load = ((machine_busy() - b0) - (self_cpu() - s0)) / (wall * ncpu) if b0 >= 0 else 0.0
        if load > max_other and dropped < reps:
            dropped += 1
            print(f"  repetition {wall / inner:.4f} s dropped: other processes used {100 * load:.0f}% of the machine")
            continue
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        acc = acc + (r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt)
        kept.append(tuple(a / inner for a in acc))
        loads.append(load)
    return kept, dropped, max(loads), inner


def main():
    ap = arg_parser()
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-infer", action="store_true")
    ap.add_argument("--method", choices=["lora", "full"], default="lora",
                    help="full: every U-Net parameter trains (diffusers' train_text_to_image.py)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig
    import diffusers, peft

    t0 = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=torch.float32)
    t_load = time.perf_counter() - t0
    rss_model = rss_now()
    unet.requires_grad_(a.method == "full")
    if a.method == "lora":
        unet.add_adapter(LoraConfig(r=a.rank, lora_alpha=a.rank, init_lora_weights="gaussian",
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    unet.train()
    size, h = image_size(a, unet.config.sample_size)
    B = a.batch
    n_mods = sum(1 for n, m in unet.named_modules() if n.endswith(".lora_A.default"))
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, peft {peft.__version__}, "
          f"{torch.get_num_threads()} threads, load {t_load:.2f} s, RSS after load {rss_model / 2**20:.1f} MiB")
    print(f"method {a.method}: {n_mods} LoRA modules, rank {a.rank}, {sum(p.numel() for p in params)} trainable "
          f"parameters")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, unet.config.in_channels, h, h, generator=g)
    target = torch.randn(B, unet.config.out_channels, h, h, generator=g)
    ctx = torch.randn(B, 77, unet.config.cross_attention_dim, generator=g)
    t = torch.randint(0, 1000, (B,), generator=g)

    def step():
        s0 = time.perf_counter()
        out = unet(x, t, encoder_hidden_states=ctx).sample
        loss = torch.nn.functional.mse_loss(out, target)
        s1 = time.perf_counter()
        loss.backward()
        s2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        s3 = time.perf_counter()
        return (s3 - s0, s1 - s0, s2 - s1, s3 - s2)

    kept, dropped, worst, inner = run_reps(step, a.reps, a.max_other, "train step")
    cols = list(zip(*kept))
    med = statistics.median(cols[0])
    print(f"train step    {size}x{size} batch {B}: median {med:.4f} s (min {min(cols[0]):.4f}, {len(kept)} reps; "
          f"{dropped} dropped as busy; other processes up to {100 * worst:.0f}% of the machine in a kept rep)")
    print(f"  forward+loss {statistics.median(cols[1]):.4f} s, backward {statistics.median(cols[2]):.4f} s, "
          f"optimizer {statistics.median(cols[3]):.5f} s (medians)")
    print(f"  per step: {statistics.median(cols[4]):.3f} s system CPU, {statistics.median(cols[5]):.0f} minor page "
          f"faults (medians)")
    if not a.no_infer:
        unet.eval()

        def fwd():
            s = time.perf_counter()
            with torch.no_grad():
                unet(x, t, encoder_hidden_states=ctx)
            return (time.perf_counter() - s,)

        kept, dropped, worst, inner = run_reps(fwd, a.reps, a.max_other, "unet forward")
        c = [k[0] for k in kept]
        mi = statistics.median(c)
        print(f"unet forward  {size}x{size} batch {B}: median {mi:.4f} s (min {min(c):.4f}, {len(c)} reps of {inner} "
              f"calls; {dropped} dropped; other up to {100 * worst:.0f}%); train step / forward = {med / mi:.2f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
