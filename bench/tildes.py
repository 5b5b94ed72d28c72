"""«Tildes» on a corpus's own validation text: the accents stripped and put back, scored word by word.

Rows: `none` (the stripped text as it is), `lookup` (each word's most frequent training form) and, for each run
given, what `taller tildes RUN` writes (an accent tagger, or any character language model through the noisy
channel). Word accuracy, errors, accuracy on the ambiguous words (two forms or more in training, the second at ≥ 5 %
of ≥ 10 occurrences: taller/data/accents.py) and the seconds taken to fix the validation text.

    python bench/tildes.py --corpus quijote [RUN …]        → one JSON line per row
"""

import argparse
import json
import time

from machine import cpu_info

from taller.config import DataConfig
from taller.data.accents import Lookup, strip, word_scores
from taller.data.corpora import prepare_corpus
from taller.data.split import split_corpus
from taller.inspect.tildes import load_fixer


def row(name: str, fixer, split, lookup: Lookup) -> dict:
    start = time.perf_counter()
    fixed = fixer(split.val)
    seconds = time.perf_counter() - start
    return {"bench": "tildes", "model": name, **word_scores(fixed, split.val, lookup), "seconds": round(seconds, 1)}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("runs", nargs="*")
    a = p.parse_args()
    data = DataConfig(corpus=a.corpus)
    split = split_corpus(prepare_corpus(data), data)
    lookup = Lookup(split.train)
    fixers = [("none", strip), ("lookup", lambda text: lookup.fix(strip(text)))]
    for run_dir in a.runs:
        run, fixer = load_fixer(run_dir)  # a run's own split must be this corpus's for the figures to mean anything
        fixers.append((f"{run.config.model.kind}:{run_dir}", fixer))
    for name, fixer in fixers:
        print(json.dumps({**row(name, fixer, split, lookup), "corpus": a.corpus, **cpu_info()}), flush=True)
