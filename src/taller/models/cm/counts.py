"""Per-context counts: for each context key, how often each symbol followed it.

The training text is counted at once: each (context, next symbol) pair is one integer, key · V + symbol, and
np.unique counts them (as the n-gram does). The pairs come out sorted, so one context's symbols are a run of rows:
`start[i]:start[i+1]` for the i-th distinct context.

While coding, a context that comes up gets a dense (V,) vector of its counts, kept in a dict and updated after every
character. The state is *nonstationary*: when a context's total passes `limit`, all its counts are halved, so recent
characters weigh more than old ones (PPMd rescales the same way). Per-context counts are the simplest adaptive state
to read: the probability of a symbol is plainly how often it came.
"""

from __future__ import annotations

import numpy as np


class Counts:
    def __init__(self, keys: np.ndarray, ids: np.ndarray, V: int, limit: float):
        """keys (n,) the context before each position of the training text, ids (n,) the symbol there."""
        self.V, self.limit = V, limit
        pairs, counts = np.unique(keys * V + ids, return_counts=True)  # sorted by context, then symbol
        contexts = pairs // V
        first = np.flatnonzero(np.diff(contexts, prepend=-1))  # where each context's run starts
        self.contexts = contexts[first]  # (C,) sorted distinct contexts
        self.start = np.append(first, len(pairs))  # (C+1,)
        self.symbols, self.counts = (pairs % V).astype(np.intp), counts.astype(np.float64)
        self.live: dict[int, np.ndarray] = {}  # context -> (V,) counts, for the contexts met while coding

    def __call__(self, key: int) -> np.ndarray:
        """The (V,) counts after context `key` (a live vector: learn() changes it)."""
        vec = self.live.get(key)
        if vec is None:
            vec = np.zeros(self.V)
            i = int(np.searchsorted(self.contexts, key))
            if i < len(self.contexts) and self.contexts[i] == key:
                a, b = self.start[i], self.start[i + 1]
                vec[self.symbols[a:b]] = self.counts[a:b]
                total = vec.sum()
                if total > self.limit:
                    vec *= self.limit / total  # the same proportions, as much weight as the limit allows
            self.live[key] = vec
        return vec

    def learn(self, key: int, symbol: int) -> None:
        vec = self(key)
        vec[symbol] += 1.0
        if vec.sum() > self.limit:
            vec *= 0.5
