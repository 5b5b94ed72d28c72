"""Are the built-in probe pairs fair? Every answer should be a word of the Quijote (a model can only prefer a word it
has read), else the pair tells nothing.

    python bench/pairs_in_text.py [--corpus quijote] [--pairs FILE]

One JSON line: how many answers, how often each occurs in the text (the fewest first), and the answers it never
contains (`missing`, which should be empty). It needs the real book (the loader finds it by name: TALLER_DATA, the
cache, or a checked download), so it is a data check here, not a test: the tests run without the corpora.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from taller.data.corpora import load_corpus
from taller.inspect.pairs import PAIRS_FILE, read_pairs

WORD = re.compile(r"[^\W\d_]+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="quijote")
    parser.add_argument("--pairs", default=str(PAIRS_FILE))
    args = parser.parse_args()
    words = Counter(WORD.findall(load_corpus(args.corpus).text))
    answers = [a for pair in read_pairs(args.pairs) for a in pair.answers]
    counts = sorted((words[a], a) for a in answers)
    print(
        json.dumps(
            {
                "corpus": args.corpus,
                "answers": len(answers),
                "fewest": counts[:8],
                "missing": [a for n, a in counts if n == 0],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
