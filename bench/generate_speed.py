"""Generation speed: characters/s for 500 characters with the KV cache (as `taller generate` runs: a small step on one
thread, see taller.threads.for_steps), with the cache on every thread, and without the cache.

    python bench/generate_speed.py [--run RUN] [--preset base] [--block 256] [--batch 1] [--top 0]  → one JSON line

--top 0 is `taller generate` as students run it; --top 5 also records the top-5 table of every step (--table).
--profile prints to stderr the functions that take most of the cached path's time (cProfile) and, per character,
PyTorch's operations: how many of each and their time (torch.profiler; its own cost inflates the small ones).
"""

import argparse
import cProfile
import json
import pstats
import sys
import time

from machine import cpu_info
from torch.profiler import profile

from taller import sampling, threads
from taller.config import Config
from taller.data.tokenizers import CharTokenizer
from taller.models import build_model
from taller.runs.folder import load_run


def chars_per_s(model, tok, a, cached: bool, one_thread: bool) -> float:
    threads.STEP_ALONE_BELOW = 4_000_000 if one_thread else 0
    times = []
    for _ in range(a.repeat):
        start = time.perf_counter()
        sampling.generate(
            model,
            tok,
            "En un lugar de la Mancha",
            a.batch,
            max_chars=a.chars,
            seed=0,
            stop=None,
            use_cache=cached,
            top=a.top,
        )
        times.append(time.perf_counter() - start)
    return a.batch * a.chars / sorted(times)[len(times) // 2]  # median


def operations(model, tok, a) -> None:
    """PyTorch's operations per generated character, the costliest first."""
    with profile() as prof:
        chars_per_s(model, tok, a, cached=True, one_thread=True)
    n = a.repeat * a.chars * a.batch
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    print(f"per character: {sum(e.count for e in rows) / n:.0f} operations", file=sys.stderr)
    for e in rows[:25]:
        calls, us = e.count / n, e.self_cpu_time_total / n
        print(f"{e.key[:48]:48s} {calls:6.1f} calls {us:7.1f} µs ({us / calls:5.1f} each)", file=sys.stderr)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--run", help="a run folder (default: an untrained model of --preset with context --block)")
    p.add_argument("--preset", default="base")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--chars", type=int, default=500)
    p.add_argument("--top", type=int, default=0, help="candidates recorded per step (5: as for table.txt)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each path; the median is reported")
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    if a.run:
        run = load_run(a.run)
        model, tok = run.model, run.tokenizer
    else:
        tok = CharTokenizer([chr(c) for c in range(32, 124)])
        whole = Config.preset(a.preset)
        whole.apply_overrides(a.set)
        cfg = whole.model
        cfg.vocab_size, cfg.block_size = tok.vocab_size, a.block
        model = build_model(cfg).eval()
    result = {
        "bench": "generate_speed",
        "preset": None if a.run else a.preset,
        "overrides": a.set,
        "block_size": model.block_size,
        "batch": a.batch,
        "chars": a.chars,
        "top": a.top,
    }
    result["chars_per_s_cache"] = chars_per_s(model, tok, a, cached=True, one_thread=True)
    result["chars_per_s_cache_all_threads"] = chars_per_s(model, tok, a, cached=True, one_thread=False)
    result["chars_per_s_no_cache"] = chars_per_s(model, tok, a, cached=False, one_thread=True)
    result["speedup"] = result["chars_per_s_cache"] / result["chars_per_s_no_cache"]
    if a.profile:
        profiler = cProfile.Profile()
        profiler.runcall(chars_per_s, model, tok, a, True, True)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
        operations(model, tok, a)
    print(json.dumps({**result, **cpu_info()}))
