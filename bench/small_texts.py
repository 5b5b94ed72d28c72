"""Small texts: a teacher's own file of a few hundred sayings, trained as a new user would.

    python bench/small_texts.py --lines 300 1000 [--seed 0] [--budget 90] [--set key=value ...]   → one JSON line each

For each size, that many lines of the refranes drawn at random (seeded) are written to a file; then, through the
command line with its defaults: `taller train --corpus FILE --max-time BUDGET` (the Transformer), `taller train --model
ngram` (the 8-gram, same split) and `taller train --model mix` of the two. Each line gives the three val bits/char.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_info

from taller.data.corpora import load_corpus


def train(*args: str) -> dict:
    subprocess.run([sys.executable, "-m", "taller", "train", *args], check=True, stdout=subprocess.DEVNULL)
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "state.json").read_text())


def one_size(lines: list[str], n: int, seed: int, budget: float, sets: list[str], tmp: Path) -> dict:
    text = "\n".join(random.Random(seed).sample(lines, n)) + "\n"
    corpus = tmp / f"refranes-{n}.txt"
    corpus.write_text(text, encoding="utf-8")
    extra = [a for s in sets for a in ("--set", s)]
    t = train("--corpus", str(corpus), "--max-time", str(budget), "--out", str(tmp / f"t{n}"), *extra)
    g = train("--model", "ngram", "--corpus", str(corpus), "--out", str(tmp / f"g{n}"))
    m = train(
        "--model",
        "mix",
        "--corpus",
        str(corpus),
        "--set",
        f"runs={tmp / f't{n}'},{tmp / f'g{n}'}",
        "--out",
        str(tmp / f"m{n}"),
    )
    return {
        "bench": "small_texts",
        "lines": n,
        "chars": len(text),
        "seed": seed,
        "budget_s": budget,
        "overrides": sets,
        "transformer_bpc": t["val_bpc"],
        "steps": t["step"],
        "best_step": t.get("best_step"),
        "ngram_bpc": g["val_bpc"],
        "mix_bpc": m["val_bpc"],
        "transformer_minus_ngram": t["val_bpc"] - g["val_bpc"],
        **cpu_info(),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, nargs="+", default=[300, 1000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=90)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for the Transformer")
    a = p.parse_args()
    refranes = [line for line in load_corpus("refranes").text.split("\n") if line]
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.lines:
            started = time.perf_counter()
            print(
                json.dumps(
                    {
                        **one_size(refranes, n, a.seed, a.budget, a.set, Path(tmp)),
                        "wall_s": time.perf_counter() - started,
                    }
                ),
                flush=True,
            )
