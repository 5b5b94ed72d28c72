"""Generation speed at batch 1: characters/s for 500 characters with and without the KV cache.

    python bench/generate_speed.py [--run RUN] [--block 256] [--top 0]     → one JSON line

--top 0 is `taller generate` as students run it; --top 5 also records the top-5 table of every step (--table).
"""

import argparse
import json
import time

import torch

from machine import cpu_info
from taller.config import Config
from taller.sampling import generate
from taller.models import build_model
from taller.runs.folder import load_run
from taller.data.tokenizers import CharTokenizer

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--run", help="a run folder (default: an untrained base model with context --block)")
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--chars", type=int, default=500)
    p.add_argument("--top", type=int, default=0, help="candidates recorded per step (5: as for table.txt)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each path; the median is reported")
    a = p.parse_args()
    if a.run:
        run = load_run(a.run)
        model, tok = run.model, run.tokenizer
    else:
        tok = CharTokenizer([chr(c) for c in range(32, 124)])
        cfg = Config.preset("base").model
        cfg.vocab_size, cfg.block_size = tok.vocab_size, a.block
        model = build_model(cfg).eval()
    result = {"bench": "generate_speed", "block_size": model.block_size, "chars": a.chars, "top": a.top,
              "threads": torch.get_num_threads()}
    for cached in (True, False):
        times = []
        for _ in range(a.repeat):
            start = time.perf_counter()
            generate(model, tok, "En un lugar de la Mancha", 1, max_chars=a.chars, seed=0, stop=None,
                     use_cache=cached, top=a.top)
            times.append(time.perf_counter() - start)
        result["chars_per_s_" + ("cache" if cached else "no_cache")] = a.chars / sorted(times)[len(times) // 2]
    result["speedup"] = result["chars_per_s_cache"] / result["chars_per_s_no_cache"]
    print(json.dumps({**result, **cpu_info()}))
