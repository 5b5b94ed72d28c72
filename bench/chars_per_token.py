"""Characters per token: how much text each token covers, for BPE and word vocabularies of several sizes.

Each tokenizer learns from the training split only (the first 90% of the Quijote) and is measured on the val
split (the last 10%): characters of val / tokens of val. A char tokenizer is 1.00 by definition.

    python bench/chars_per_token.py [--corpus quijote]                                     → one JSON line
"""

import argparse
import json
import time

from machine import cpu_info

from taller.config import DataConfig
from taller.data.corpora import prepare_corpus
from taller.data.split import split_text
from taller.data.tokenizers import BpeTokenizer, WordTokenizer

SIZES = {"bpe": (256, 512, 1024, 2048), "word": (512, 2000, 8000)}
KINDS = {"bpe": BpeTokenizer, "word": WordTokenizer}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    a = p.parse_args()
    data = DataConfig(corpus=a.corpus)
    corpus = prepare_corpus(data)
    split = split_text(corpus.text, lines=corpus.lines, val_fraction=data.val_fraction, seed=data.split_seed)
    result = {
        "bench": "chars_per_token",
        "corpus": a.corpus,
        "train_chars": len(split.train),
        "val_chars": len(split.val),
    }
    for kind, sizes in SIZES.items():
        for size in sizes:
            started = time.perf_counter()
            tok = KINDS[kind].train(split.train, size)
            ids, chars = tok.token_chars(split.val)
            assert chars.sum() == len(split.val)  # every val character is covered exactly once
            result[f"{kind}_{size}"] = {
                "vocab": tok.vocab_size,
                "val_tokens": len(ids),
                "chars_per_token": round(len(split.val) / len(ids), 3),
                "train_s": round(time.perf_counter() - started, 2),
            }
    print(json.dumps({**result, **cpu_info()}))
