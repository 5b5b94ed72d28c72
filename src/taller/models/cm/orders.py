"""The order models (the last 0 … K characters) and the word models, as distributions.

Each context's counts n (V,) become a distribution by Witten–Bell smoothing over the next lower order:

    p_k(s) = (n(s) + d · p_{k-1}(s)) / (N + d)      N = Σ n,  d = the number of distinct symbols seen there

so a context seen often with few different followers trusts its counts, one seen rarely or with many followers
leans on the shorter context, and an unseen context (N = 0) passes p_{k-1} on. Below order 0 is the uniform 1/V.
The word models are smoothed over order 2 the same way. Every model is one input of the mixer: the mixer, not a
fixed rule, decides how far to trust the long contexts.
"""

from __future__ import annotations

import numpy as np

from taller.models.cm.counts import Counts

WORD_BASE = 2  # the order the word models are smoothed over


def smoothed(n: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, float]:
    """(V,) counts and the (V,) lower-order distribution -> (V,) the smoothed distribution, and N."""
    total = float(n.sum())
    if total == 0.0:
        return lower, 0.0
    d = float(np.count_nonzero(n))
    return (n + d * lower) / (total + d), total


class OrderModels:
    """Orders 0 … K and the two word models: (K + 3, V) distributions for the next symbol."""

    def __init__(self, orders: list[Counts], words: list[Counts], V: int):
        self.orders, self.words, self.V = orders, words, V
        self.uniform = np.full(V, 1.0 / V)

    @property
    def inputs(self) -> int:
        return len(self.orders) + len(self.words)

    def predict(self, order_keys: list[int], word_keys: list[int]) -> tuple[np.ndarray, int]:
        """Keys of orders 0 … K and of the word models -> (inputs, V) distributions, and the longest order whose
        context has been seen (0 … K)."""
        rows, p, seen = [], self.uniform, 0
        for k, (counts, key) in enumerate(zip(self.orders, order_keys)):
            p, total = smoothed(counts(key), p)
            rows.append(p)
            seen = k if total > 0 else seen
        base = rows[min(WORD_BASE, len(rows) - 1)]
        rows += [smoothed(counts(key), base)[0] for counts, key in zip(self.words, word_keys)]
        return np.stack(rows), seen

    def learn(self, order_keys: list[int], word_keys: list[int], symbol: int) -> None:
        for counts, key in zip(self.orders + self.words, order_keys + word_keys):
            counts.learn(key, symbol)
