"""A corpus larger than we would like to hold in memory: generate ~1 GB of text, `taller prepare` it, train from it.

    .venv/bin/python bench/prepare_big.py [--size-mb 1000] [--steps 100] [--readers]

Prints one JSON line: the preparation's wall time, MB/s and peak memory (RSS of the child process, from wait4), and
the peak memory of training `--steps` steps from the prepared folder. With --readers it also compares two ways of
reading random windows from the 1 GB token file in a child process each: fancy-indexing an np.memmap and one
os.pread per window (what training does). Everything is written under a temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_info

ROOT = Path(__file__).resolve().parent.parent
TALLER = [sys.executable, "-m", "taller"]


def source_lines() -> list[str]:
    """Quijote and refranes lines from $TALLER_DATA (else the repository's sibling shared/corpora)."""
    data = Path(os.environ.get("TALLER_DATA") or ROOT.parent / "shared" / "corpora")
    lines = []
    for name in ("quijote.txt", "refranes.txt"):
        path = data / name
        if path.exists():
            lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        sys.exit(f"no encuentro quijote.txt ni refranes.txt en {data}; define TALLER_DATA.")
    return lines


def write_big_text(path: Path, size_mb: float, seed: int = 0) -> int:
    """The lines again and again, each pass in a new order, some lowercased or upper-cased: ~size_mb MB of UTF-8."""
    rng = np.random.default_rng(seed)
    lines = source_lines()
    written, target = 0, int(size_mb * 1e6)
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            order = rng.permutation(len(lines))
            change = rng.random(len(lines))  # (n,) which lines get a variation in this pass
            block = (
                "\n".join(
                    lines[i].lower() if c < 0.1 else lines[i].upper() if c < 0.12 else lines[i]
                    for i, c in zip(order, change)
                )
                + "\n"
            )
            f.write(block)
            written += len(block.encode("utf-8"))  # whole passes: a little over size_mb
    return path.stat().st_size


def measure(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process, its own peak taken from wait4's rusage."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if child.returncode != 0:
        sys.exit(f"falló {' '.join(command)}:\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text  # ru_maxrss is in KiB on Linux


READER = """
import os, sys, numpy as np, resource
path, how, n_batches, B, T = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
count = os.path.getsize(path)
starts = np.random.default_rng(0).integers(0, count - T - 1, size=(n_batches, B))
total = 0
if how == "memmap":
    tokens = np.memmap(path, dtype=np.uint8, mode="r")
    for row in starts:
        total += int(tokens[row[:, None] + np.arange(T + 1)].sum())  # (B, T+1) fancy indexing
else:
    fd = os.open(path, os.O_RDONLY)
    for row in starts:
        total += int(np.stack([np.frombuffer(os.pread(fd, T + 1, int(s)), np.uint8) for s in row]).sum())
print(total)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mb", type=float, default=1000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--readers", action="store_true", help="also compare np.memmap and os.pread on random windows")
    p.add_argument("--reader-batches", type=int, default=3000, help="batches of 32 windows of 65 tokens per reader")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    work = Path(tempfile.mkdtemp(prefix="taller-big-"))
    try:
        text = work / "big.txt"
        started = time.perf_counter()
        size = write_big_text(text, args.size_mb)
        generate_s = time.perf_counter() - started
        prep_s, prep_rss, _ = measure(
            TALLER + ["prepare", "--corpus", str(text), "--out", str(work / "prep"), "--quiet"], env
        )
        meta = json.loads((work / "prep" / "meta.json").read_text(encoding="utf-8"))
        text.unlink()  # the text is no longer needed: training reads only the tokens
        train_s, train_rss, _ = measure(
            TALLER
            + [
                "train",
                "--corpus",
                str(work / "prep"),
                "--out",
                str(work / "run"),
                "--steps",
                str(args.steps),
                "--device",
                "cpu",
                "--quiet",
                "--set",
                "samples=1",
                "--set",
                "plot_every=0",
            ],
            env,
        )
        state = json.loads((work / "run" / "state.json").read_text(encoding="utf-8"))
        result = {
            "bench": "prepare_big",
            "source_mb": round(size / 1e6, 1),
            "generate_s": round(generate_s, 1),
            "tokens": meta["count"],
            "dtype": meta["dtype"],
            "vocab": meta["vocab_size"],
            "val_tokens": meta["count"] - meta["split"],
            "prepare_s": round(prep_s, 1),
            "prepare_mb_s": round(size / 1e6 / prep_s, 1),
            "prepare_peak_rss_mb": round(prep_rss),
            "train_steps": state["step"],
            "train_s": round(train_s, 1),
            "train_peak_rss_mb": round(train_rss),
            "final_val_bpc": round(state["val_bpc"], 3),
        }
        if args.readers:
            tokens = str(work / "prep" / "tokens.bin")
            for how in ("memmap", "pread"):
                seconds, rss, _ = measure(
                    [sys.executable, "-c", READER, tokens, how, str(args.reader_batches), "32", "64"]
                )
                result[f"{how}_peak_rss_mb"], result[f"{how}_s"] = round(rss), round(seconds, 1)
        print(json.dumps({**result, **cpu_info()}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
