"""Training speed: characters/s, model GFLOP/s (6 × parameters × characters/s) and the fraction of the matrix peak
measured in the same run (the best rate this CPU has: bf16 only where it has a fast path), for a preset and for
nanoGPT's CPU "baby" recipe (the `nanogpt-baby` preset).

    python bench/train_speed.py --preset base [--steps 60] [--set dtype=bfloat16 --set d_model=256 ...]
                                                                → one JSON line per shape

--set changes the preset (not the nanoGPT shape, which stays nanoGPT's); dtype=bfloat16 trains under bf16 autocast.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

from machine import cpu_info
from matmul import peak
from taller.config import Config
from taller.models import build_model
from taller.training.device import autocast_for
from taller.training.optim import make_optimizer

def speed(cfg: Config, steps: int) -> dict:
    torch.manual_seed(0)
    cfg.model.vocab_size = 92  # the Quijote's
    model = build_model(cfg.model)
    opt = make_optimizer(model, cfg)
    forward = torch.compile(model) if cfg.train.compile else model  # compiled on the first (warm-up) step
    B, T = cfg.train.batch_size, cfg.model.block_size
    x = torch.randint(0, 92, (B, T))
    autocast = autocast_for(torch.device("cpu"), cfg.train.dtype)
    times = []
    for i in range(steps + 5):
        start = time.perf_counter()
        with autocast:
            logits = forward(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().view(-1, 92), x.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 5:  # warm-up excluded
            times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    params = sum(p.numel() for p in model.parameters())
    chars = B * T / step
    return {"parameters": params, "median_step_ms": 1000 * step, "chars_per_s": chars, "model_gflops": 6 * params * chars / 1e9}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="base")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    p.add_argument("--no-baby", action="store_true", help="skip nanoGPT's shape")
    p.add_argument("--compile", action="store_true", help="torch.compile both shapes (compile=true; needs a C++ compiler)")
    a = p.parse_args()
    machine = peak()
    best = max(rate for rate in machine.values() if rate)
    shapes = {a.preset: Config.preset(a.preset), "nanogpt-baby": Config.preset("nanogpt-baby")}
    shapes[a.preset].apply_overrides(a.set)
    if a.no_baby:
        del shapes["nanogpt-baby"]
    for cfg in shapes.values():
        cfg.train.compile = cfg.train.compile or a.compile
    for name, cfg in shapes.items():
        r = speed(cfg, a.steps)
        overrides = a.set if name == a.preset else []
        print(json.dumps({"bench": "train_speed", "shape": name, "overrides": overrides, "dtype": cfg.train.dtype,
                          "compile": cfg.train.compile,
                          **r, **machine,
                          "fraction_of_peak": r["model_gflops"] / best, **cpu_info()}))
