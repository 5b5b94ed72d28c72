"""One-word blanks: how often does each run write back the exact word?

python bench/fill_words.py RUN [RUN …] [--n 300] [--seed 0]
    Refranes the runs never trained on (they read the Quijote), one word of 3+ letters hidden in each, chosen with
    a fixed seed. A BERT run gets one `_` per hidden letter (it fills a given number of characters: it is told the
    word's length); a T5 run gets a single blank and writes a span of any length (it is not told). A hit is the
    exact word.

python bench/fill_words.py --held-out RUN [RUN …] [--n 500] [--seed 0] [--vocab 0]
    The validation split of the corpus the runs trained on (all of them the same corpus and split): one line per
    blank, one word of 3+ letters hidden in it, told its length, fixed seed. In a corpus of lines (the refranes)
    the model reads the line; in a book (the Quijote, whose lines are wrapped) the line and the ones before and
    after it. Scored side by side on the same blanks, one JSON line per run:
      rank_exact  every word of the training text with the blank's length goes into the blank, the best one kept
                  (inspect/word_blanks.py: the whole line's probability for an n-gram or a GPT — the counting
                  filler is the 8-gram's —, the hidden word's for a BERT, the answer's for a T5);
                  --vocab K keeps the K most frequent of each length (0: all); `covered` says how many blanks
                  had their word among the candidates; --bert-score pll|hidden scores a BERT's words one letter
                  hidden at a time (Salazar et al. 2020) or with the whole blank hidden, whatever it learnt on
      fill_exact  BERT and T5 only: `taller fill`, which writes the blank with no list of words
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time

from taller.data.corpora import load_corpus
from taller.errors import TallerError
from taller.inspect.fill import fill
from taller.inspect.word_blanks import held_out_blanks, rank_exact, vocabulary
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
    run, started = load_run(path, can="fills"), time.perf_counter()
    return kind_of(run.config).title, fill_exact(run, items), time.perf_counter() - started


def fill_exact(run, items) -> float:
    """`taller fill`: a BERT gets one _ per letter; a T5 one blank, and a hit is its span being the word."""
    spans, hits = kind_of(run.config).encoder_decoder, 0
    for line, a, b in items:
        text = line[:a] + ("___" if spans else "_" * (b - a)) + line[b:]
        try:
            filled = fill(run, text).text
        except TallerError:  # a T5 that wrote no span for the blank: a miss
            continue
        hits += filled[a : len(filled) - (len(line) - b)] == line[a:b]
    return hits / len(items)


def held_out(paths: list[str], n: int, seed: int, limit: int, bert_score: str = "") -> None:
    runs = [load_run(p, can=("language_model", "fills")) for p in paths]
    same = {json.dumps([r.config.data.corpus, r.config.data.split, r.config.data.split_seed]) for r in runs}
    if len(same) > 1:
        sys.exit("error: las ejecuciones no entrenaron con el mismo corpus y la misma separación de validación.")
    items, counts = held_out_blanks(runs[0], n, seed), vocabulary(runs[0].config)
    for path, run in zip(paths, runs):
        kind, started = kind_of(run.config), time.perf_counter()
        exact, covered = rank_exact(run, items, limit, counts, bert_score if kind.fills else "")
        row = {
            "run": path,
            "kind": kind.title,
            "corpus": run.config.data.corpus,
            "blanks": n,
            "seed": seed,
            "vocab": limit,
            "covered": round(covered, 4),
            "rank_exact": round(exact, 4),
        }
        if kind.fills and not kind.encoder_decoder:
            row["bert_score"] = bert_score or ("pll" if run.config.model.masking == "chars" else "hidden")
        if kind.fills:
            row["fill_exact"] = round(fill_exact(run, items), 4)
        row["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row, ensure_ascii=False), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=None, help="blanks (300 refranes; 500 held out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--held-out", action="store_true", help="blanks in the validation split of the runs' own corpus")
    p.add_argument("--vocab", type=int, default=0, help="--held-out: the K most frequent words of each length (0: all)")
    p.add_argument(
        "--bert-score",
        choices=("pll", "hidden"),
        default="",
        help="--held-out: how a BERT scores a word (pll: one letter hidden at a time; hidden: the whole blank "
        "hidden); by default, as it learnt (masking = chars: pll, words or spans: hidden)",
    )
    args = p.parse_args()
    try:
        if args.held_out:
            held_out(args.runs, args.n or 500, args.seed, args.vocab, args.bert_score)
            return
        items = blanks(args.n or 300, args.seed)
        for path in args.runs:
            title, rate, seconds = score(path, items)
            print(f"{path} ({title}): palabra exacta en {rate:.1%} de {len(items)} refranes ({seconds:.0f} s)")
    except TallerError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
