"""Muon's Newton–Schulz iteration in float32 and in bf16 on this CPU: milliseconds per optimizer step for the hidden
matrices of a preset (PyTorch's own torch.optim.Muon always runs it in bf16, which is slow without a bf16 fast path).

    python bench/newton_schulz.py [--preset base] [--repeat 50]        → one JSON line
"""

import argparse
import json
import time

import torch
from machine import cpu_info

from taller.config import Config
from taller.models import build_model
from taller.training.optim import hidden_matrices, orthogonalise


def ms_per_step(shapes: list[torch.Size], dtype: torch.dtype, repeat: int) -> float:
    grads = [torch.randn(s) for s in shapes]
    for g in grads:  # warm-up
        orthogonalise(g, dtype=dtype)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for g in grads:
            orthogonalise(g, dtype=dtype)
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="base")
    p.add_argument("--repeat", type=int, default=50)
    a = p.parse_args()
    cfg = Config.preset(a.preset).model
    cfg.vocab_size = 92
    shapes = [m.shape for m in hidden_matrices(build_model(cfg))]
    print(
        json.dumps(
            {
                "bench": "newton_schulz",
                "preset": a.preset,
                "matrices": len(shapes),
                "ms_float32": ms_per_step(shapes, torch.float32, a.repeat),
                "ms_bfloat16": ms_per_step(shapes, torch.bfloat16, a.repeat),
                **cpu_info(),
            }
        )
    )
