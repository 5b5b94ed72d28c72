"""One-word blanks in refranes: how often does each run write back the exact word?

    python bench/fill_words.py RUN [RUN …] [--n 300] [--seed 0]

Refranes the runs never trained on (they read the Quijote), one word of 3+ letters hidden in each, chosen with a
fixed seed. A BERT run gets one `_` per hidden letter (it fills a given number of characters: it is told the word's
length); a T5 run gets a single blank and writes a span of any length (it is not told). A hit is the exact word.
"""

from __future__ import annotations

import argparse
import random
import re
import time

from taller.data.corpora import load_corpus
from taller.errors import TallerError
from taller.inspect.fill import fill
from taller.models import kind_of
from taller.runs.folder import load_run

WORD = re.compile(r"[^\W\d_]{3,}")


def blanks(n: int, seed: int) -> list[tuple[str, int, int]]:
    """(refrán, start, end) of the hidden word, for n refranes drawn with `seed`."""
    lines = [line for line in load_corpus("refranes").text.split("\n") if WORD.search(line)]
    rng = random.Random(seed)
    out = []
    for line in rng.sample(lines, n):
        m = rng.choice(list(WORD.finditer(line)))
        out.append((line, m.start(), m.end()))
    return out


def score(path: str, items: list[tuple[str, int, int]]) -> tuple[str, float, float]:
    run = load_run(path, can="fills")
    spans = kind_of(run.config).encoder_decoder
    hits, started = 0, time.perf_counter()
    for line, a, b in items:
        text = line[:a] + ("___" if spans else "_" * (b - a)) + line[b:]
        try:
            filled = fill(run, text).text
        except TallerError:  # a T5 that wrote no span for the blank: a miss
            continue
        hits += filled[a:len(filled) - (len(line) - b)] == line[a:b]  # what went into the blank
    return kind_of(run.config).title, hits / len(items), time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    items = blanks(args.n, args.seed)
    for path in args.runs:
        title, rate, seconds = score(path, items)
        print(f"{path} ({title}): palabra exacta en {rate:.1%} de {len(items)} refranes ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
