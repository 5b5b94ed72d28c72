"""The machine's matrix rate: GFLOP/s of an N×N×N product in fp32, and in bf16 where the CPU has a fast path for it
(AMX or AVX-512 bf16: elsewhere a bf16 product runs on a slow fallback, minutes for one 2048³ product, and is skipped).

    python bench/matmul.py [--n 2048] [--repeat 10]      → one JSON line
"""

import argparse
import json
import time

import torch
from machine import cpu_info


def rate(n: int, dtype: torch.dtype, repeat: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9  # median


def peak(n: int = 2048, repeat: int = 10) -> dict:
    """{"fp32_gflops", "bf16_gflops"}: the rates that exist on this CPU (bf16: None without a fast path)."""
    bf16 = rate(n, torch.bfloat16, repeat) if cpu_info()["bf16_fast"] else None
    return {"fp32_gflops": rate(n, torch.float32, repeat), "bf16_gflops": bf16}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    print(json.dumps({"bench": "matmul", "n": a.n, **peak(a.n, a.repeat), **cpu_info()}))
