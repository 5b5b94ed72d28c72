"""How far counting gets on «¿refranero o Cervantes?»: one character n-gram per label (naive Bayes: the label whose
n-gram finds the line most probable, times the label's share), on the same held-out lines as `taller train --task
clasificar` (data.val_fraction 0.1, data.split_seed 1234).

    python bench/classify_ceiling.py [--orders 3 4 5 6]        → one JSON line per order
"""

import argparse
import json

import numpy as np
from machine import cpu_info

from taller.config import DataConfig
from taller.data.labelled import BUILTIN_TASK, load_labelled
from taller.models.ngram import NGram, NGramConfig


def accuracy(order: int, data, train: list[int], val: list[int]) -> float:
    chars = sorted(set("".join(data.texts)) | {"\n"})
    index = {c: i for i, c in enumerate(chars)}

    def encode(text: str) -> np.ndarray:
        return np.array([index[c] for c in "\n" + text + "\n"])  # each line between two newlines

    models = [
        NGram(NGramConfig(vocab_size=len(chars), order=order)).fit(
            np.concatenate([encode(data.texts[i]) for i in train if data.labels[i] == label])
        )
        for label in range(len(data.names))
    ]
    prior = np.log(np.bincount([data.labels[i] for i in train]))
    right = sum(
        int(np.argmax([m.log_probs(encode(data.texts[i])).sum() + p for m, p in zip(models, prior)]) == data.labels[i])
        for i in val
    )
    return right / len(val)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5, 6])
    a = p.parse_args()
    defaults = DataConfig()
    data = load_labelled(BUILTIN_TASK)
    train, val = data.split(defaults.val_fraction, defaults.split_seed)
    for order in a.orders:
        print(
            json.dumps(
                {
                    "bench": "classify_ceiling",
                    "task": BUILTIN_TASK,
                    "order": order,
                    "val_lines": len(val),
                    "accuracy": accuracy(order, data, train, val),
                    **cpu_info(),
                }
            ),
            flush=True,
        )
