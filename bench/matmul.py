"""The machine's matrix rate: GFLOP/s of an N×N×N product in fp32 and bf16 (the peak other figures divide by).

    python bench/matmul.py [--n 2048] [--repeat 10]      → one JSON line
"""

import argparse
import json
import time

import torch


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
    return {"fp32_gflops": rate(n, torch.float32, repeat), "bf16_gflops": rate(n, torch.bfloat16, repeat)}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    print(json.dumps({"bench": "matmul", "n": a.n, "threads": torch.get_num_threads(), **peak(a.n, a.repeat)}))
