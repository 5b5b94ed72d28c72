"""Texts of every size, trained as a new user would: does the default beat counting on any of them?

    python bench/sizes.py --quijote 100000 1000000 --refranes 300 4995 --budget 60 180 [--seed 0] [--set k=v ...]
                                                                                          → one JSON line per cell

A cell is a slice and a budget. The slices: the Quijote's first N characters (--quijote N …), or N lines of the
refranes drawn at random, seeded (--refranes N …; 4995 is all of them). Each slice is written to a file; then,
through the command line with its defaults, `taller train --corpus FILE --max-time BUDGET` (the Transformer, which
chooses its dropout and weight average from how many times it expects to read the text), `taller train --model
ngram` (the 8-gram, same split) and `taller train --model mix` of the two. Each line gives the three val bits/char,
the passes the Transformer expected and made, and the dropout and average it chose.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from machine import cpu_info

from taller.data.corpora import load_corpus


def train(*args: str) -> dict:
    """A run through the command line: its state.json, and the passes it expected to make (from its line)."""
    said = subprocess.run(
        [sys.executable, "-m", "taller", "train", *args], check=True, capture_output=True, text=True
    ).stdout
    out = Path(args[args.index("--out") + 1])
    guessed, measured = (re.search(rf"{w}.*?unas ([\d.]+,\d) veces", said) for w in ("Según las veces", "Medidos"))
    return {
        **json.loads((out / "state.json").read_text()),
        "passes_guessed": spanish_number(guessed[1]) if guessed else None,  # from the model's size, before any step
        "passes_measured": spanish_number(measured[1]) if measured else None,  # said only if it changed the choice
    }


def spanish_number(text: str) -> float:
    return float(text.replace(".", "").replace(",", "."))


def slices(a) -> list[tuple[str, str]]:
    """(name, text) of each slice asked for."""
    out = []
    if a.quijote:
        quijote = load_corpus("quijote").text
        out += [(f"quijote-{n}", quijote[:n]) for n in a.quijote]
    if a.refranes:
        lines = [line for line in load_corpus("refranes").text.split("\n") if line]
        out += [
            (f"refranes-{n}", "\n".join(random.Random(a.seed).sample(lines, min(n, len(lines)))) + "\n")
            for n in a.refranes
        ]
    return out


def one_cell(name: str, text: str, budget: float, sets: list[str], tmp: Path) -> dict:
    corpus = tmp / f"{name}.txt"
    corpus.write_text(text, encoding="utf-8")
    t_dir, g_dir, m_dir = (tmp / f"{p}-{name}-{budget:g}" for p in "tgm")
    extra = [a for s in sets for a in ("--set", s)]
    t = train("--corpus", str(corpus), "--max-time", str(budget), "--quiet", "--out", str(t_dir), *extra)
    g = train("--model", "ngram", "--corpus", str(corpus), "--quiet", "--out", str(g_dir))
    m = train(
        "--model", "mix", "--corpus", str(corpus), "--set", f"runs={t_dir},{g_dir}", "--quiet", "--out", str(m_dir)
    )
    chosen = tomllib.loads((t_dir / "config.toml").read_text(encoding="utf-8"))
    return {
        "bench": "sizes",
        "slice": name,
        "chars": len(text),
        "budget_s": budget,
        "overrides": sets,
        "transformer_bpc": t["val_bpc"],
        "ngram_bpc": g["val_bpc"],
        "mix_bpc": m["val_bpc"],
        "transformer_minus_ngram": t["val_bpc"] - g["val_bpc"],
        "passes_guessed": t["passes_guessed"],
        "passes_measured": t["passes_measured"],
        "passes": t["step"] / t["steps_per_epoch"],
        "dropout": chosen["model"].get("dropout"),
        "ema": chosen["train"].get("ema"),
        "steps": t["step"],
        "best_step": t.get("best_step"),
        "chars_per_s": t.get("chars_per_s"),
        **cpu_info(),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quijote", type=int, nargs="*", default=[], metavar="CHARS", help="the Quijote's first CHARS")
    p.add_argument("--refranes", type=int, nargs="*", default=[], metavar="LINES", help="LINES random refranes")
    p.add_argument("--seed", type=int, default=0, help="which refranes are drawn")
    p.add_argument("--budget", type=float, nargs="+", default=[60.0])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for the Transformer")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in slices(a):
            for budget in a.budget:
                started = time.perf_counter()
                cell = one_cell(name, text, budget, a.set, Path(tmp))
                print(json.dumps({**cell, "seed": a.seed, "wall_s": time.perf_counter() - started}), flush=True)
