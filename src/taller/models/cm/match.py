"""The match model: find the last time the recent characters occurred, and predict what came after them.

«dijo don Quijot» was read before, many times: what followed it then was «e». The model keeps, for every context of
MIN_MATCH characters, the position right after its last occurrence. When no match is running it looks the current
context up; while the predicted characters keep coming, the match grows one character at a time; the first miss
ends it. The longer a match has run, the surer its prediction: how sure is learnt while reading, as the share of
hits in each band of lengths (counts of hits and tries per band).

Its input to the mixer gives the predicted symbol that probability and spreads the rest evenly; with no match it is
uniform, which the log-domain mixer ignores (a constant added to every log-probability cancels when normalising).
"""

from __future__ import annotations

import numpy as np

MIN_MATCH = 6  # characters a context must share to start a match
BANDS = (0, 1, 8, 12, 16, 20, 24, 32, 48, 64, 1 << 30)  # lengths: band b holds BANDS[b] ≤ length < BANDS[b+1]


def band(length: int) -> int:
    return next(b for b in range(len(BANDS) - 1) if length < BANDS[b + 1])


class Match:
    def __init__(self, history: np.ndarray, train_keys: np.ndarray, known: int, V: int):
        """history: room for every symbol (training text, then what is coded), the first `known` filled in;
        train_keys (known,) the MIN_MATCH-context key before each of those positions."""
        self.history, self.V = history, V
        order = np.argsort(train_keys, kind="stable")
        keys = train_keys[order]
        last = np.flatnonzero(np.diff(keys, append=keys[-1] + 1 if len(keys) else 0))  # each key's last occurrence
        self.keys, self.after = keys[last], order[last]  # sorted keys, the position after their last context
        self.table: dict[int, int] = {}  # key -> position, for what is coded (it overrides the training text's)
        self.pointer, self.length = 0, 0  # the predicted symbol is history[pointer]
        self.hits = np.ones(len(BANDS) - 1)  # per band: hits and tries (a prior of one in two)
        self.tries = np.full(len(BANDS) - 1, 2.0)

    def find(self, key: int) -> int:
        """The position after the last occurrence of context `key`, or -1."""
        if key in self.table:
            return self.table[key]
        i = int(np.searchsorted(self.keys, key))
        return int(self.after[i]) if i < len(self.keys) and self.keys[i] == key else -1

    def expected(self) -> int:
        """The predicted symbol, or -1 without a match."""
        return int(self.history[self.pointer]) if self.length else -1

    def predict(self) -> np.ndarray:
        """(V,) the distribution the match gives."""
        p = np.full(self.V, 1.0 / self.V)
        if self.length and self.V > 1:
            b = band(self.length)
            hit = self.hits[b] / self.tries[b]
            p[:] = (1.0 - hit) / (self.V - 1)
            p[self.expected()] = hit
        return p

    def learn(self, symbol: int, position: int, key: int) -> None:
        """`symbol` came at `position`; `key` is the MIN_MATCH context before position + 1."""
        if self.length:
            b = band(self.length)
            hit = self.expected() == symbol
            self.hits[b] += hit
            self.tries[b] += 1
            self.pointer, self.length = (self.pointer + 1, self.length + 1) if hit else (0, 0)
        if not self.length:
            found = self.find(key)
            if found >= 0:
                self.pointer, self.length = found, MIN_MATCH
        self.table[key] = position + 1
