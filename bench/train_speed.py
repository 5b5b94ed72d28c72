"""Training speed: characters/s, model GFLOP/s (6 × parameters × characters/s) and the fraction of the matrix peak
measured in the same run (the best rate this CPU has: bf16 only where it has a fast path), for a preset and for
nanoGPT's CPU "baby" recipe (the `nanogpt-baby` preset).

    python bench/train_speed.py --preset base [--steps 60] [--set dtype=bfloat16 --set d_model=256 ...]
                                                                → one JSON line per shape
    python bench/train_speed.py --preset base --health 100 [--steps 400] [--repeats 7]
                                                                → one JSON line: the cost of the health checkups

--set changes the preset (not the nanoGPT shape, which stays nanoGPT's); dtype=bfloat16 trains under bf16 autocast.
--health N trains the preset `--repeats` times with a checkup every N steps (train.health_every = N) and as many
times without, alternating, and compares the medians of their characters/s, every step timed (checkups included).
It also times the watched steps themselves: (mean watched step − median plain step) / N / median plain step is the
share of the training time the checkups take, an estimate that the machine's drift from run to run does not blur.
"""

import argparse
import io
import json
import statistics
import time

import torch
import torch.nn.functional as F
from machine import cpu_info
from matmul import peak

from taller.config import Config
from taller.inspect.health import Checkup, NoCheckup
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
    return {
        "parameters": params,
        "median_step_ms": 1000 * step,
        "chars_per_s": chars,
        "model_gflops": 6 * params * chars / 1e9,
    }


def timed_steps(cfg: Config, steps: int, health_every: int) -> tuple[list[float], list[float]]:
    """Seconds of each plain step and of each watched step (a checkup, as the training loop makes it, and its line of
    health.jsonl serialised and written), after 5 warm-up steps."""
    torch.manual_seed(0)
    cfg.model.vocab_size = 92
    model = build_model(cfg.model)
    opt = make_optimizer(model, cfg)
    B, T = cfg.train.batch_size, cfg.model.block_size
    x = torch.randint(0, 92, (B, T))
    plain, watched, log = [], [], io.StringIO()
    for i in range(steps + 5):
        start = time.perf_counter()
        checkup = Checkup(model, i, lr=cfg.train.lr) if health_every and i % health_every == 0 else NoCheckup()
        checkup.start()
        loss = F.cross_entropy(model(x).view(-1, 92), x.view(-1))  # (B, T, V) logits
        opt.zero_grad(set_to_none=True)
        loss.backward()
        checkup.gradients()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        checkup.updates()
        loss.item()
        if checkup.entry is not None:
            log.write(json.dumps(checkup.entry) + "\n")
        if i >= 5:
            (plain if checkup.entry is None else watched).append(time.perf_counter() - start)
    return plain, watched


def health_cost(cfg: Config, steps: int, every: int, repeats: int) -> dict:
    """Characters/s with and without checkups (medians of `repeats` alternating runs), and the checkups' own share."""
    chars = cfg.train.batch_size * cfg.model.block_size
    with_, without, extra = [], [], []
    for _ in range(repeats):
        plain, _ = timed_steps(cfg, steps, 0)
        without.append(chars * len(plain) / sum(plain))
        plain, watched = timed_steps(cfg, steps, every)
        with_.append(chars * (len(plain) + len(watched)) / (sum(plain) + sum(watched)))
        step = statistics.median(plain)
        extra.append((statistics.mean(watched) - step) / every / step)
    a, b = statistics.median(with_), statistics.median(without)
    return {
        "health_every": every,
        "steps": steps,
        "repeats": repeats,
        "chars_per_s_without": b,
        "chars_per_s_with": a,
        "cost_percent_from_speeds": 100 * (1 - a / b),
        "cost_percent_from_watched_steps": 100 * statistics.median(extra),
        "runs_without": without,
        "runs_with": with_,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="base")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    p.add_argument("--no-baby", action="store_true", help="skip nanoGPT's shape")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile both shapes (compile=true; needs a C++ compiler)"
    )
    p.add_argument(
        "--health", type=int, metavar="N", help="the cost of a health checkup every N steps (the preset only)"
    )
    p.add_argument("--repeats", type=int, default=7, help="--health: runs with and without (7)")
    a = p.parse_args()
    if a.health:
        cfg = Config.preset(a.preset)
        cfg.apply_overrides(a.set)
        print(
            json.dumps(
                {
                    "bench": "train_speed.health",
                    "shape": a.preset,
                    "overrides": a.set,
                    **health_cost(cfg, a.steps, a.health, a.repeats),
                }
            )
        )
        raise SystemExit
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
        print(
            json.dumps(
                {
                    "bench": "train_speed",
                    "shape": name,
                    "overrides": overrides,
                    "dtype": cfg.train.dtype,
                    "compile": cfg.train.compile,
                    **r,
                    **machine,
                    "fraction_of_peak": r["model_gflops"] / best,
                    **cpu_info(),
                }
            )
        )
