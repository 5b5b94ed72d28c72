"""The match model: find the last time the recent characters occurred, and predict what came after them.

«dijo don Quijot» was read before, many times: what followed it then was «e». The model keeps, for every context of
MIN_MATCH characters, the position right after its last occurrence. When no match is running it looks the current
context up; while the predicted characters keep coming, the match grows one character at a time; the first miss
ends it. The longer a match has run, the surer its prediction: how sure is learnt while reading, as the share of
hits in each band of lengths (counts of hits and tries per band).

Rows read side by side (taller compress) share the tables and the bands; each row has its own running match.

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
    def __init__(self, history: np.ndarray, train_keys: np.ndarray, known: int, V: int, rows: int = 1):
        """history: room for every symbol (training text, then what is coded; -1 where nothing is written yet), the
        first `known` filled in; train_keys (known,) the MIN_MATCH-context key before each of those positions."""
        self.history, self.V = history, V
        order = np.argsort(train_keys, kind="stable")
        keys = train_keys[order]
        last = np.flatnonzero(np.diff(keys, append=keys[-1] + 1 if len(keys) else 0))  # each key's last occurrence
        self.keys, self.after = keys[last], order[last]  # sorted keys, the position after their last context
        self.table: dict[int, int] = {}  # key -> position, for what is coded (it overrides the training text's)
        self.pointer, self.length = [0] * rows, [0] * rows  # per row: the predicted symbol is history[pointer]
        self.hits = np.ones(len(BANDS) - 1)  # per band: hits and tries (a prior of one in two)
        self.tries = np.full(len(BANDS) - 1, 2.0)

    def find(self, key: int) -> int:
        """The position after the last occurrence of context `key`, or -1."""
        if key in self.table:
            return self.table[key]
        i = int(np.searchsorted(self.keys, key))
        return int(self.after[i]) if i < len(self.keys) and self.keys[i] == key else -1

    def expected(self, row: int = 0) -> int:
        """The symbol row `row`'s match predicts, or -1 without a match (or where nothing is written yet)."""
        pointer = self.pointer[row]
        return int(self.history[pointer]) if self.length[row] and pointer < len(self.history) else -1

    def predict(self, row: int = 0) -> np.ndarray:
        """(V,) the distribution the match gives."""
        p = np.full(self.V, 1.0 / self.V)
        expected = self.expected(row)
        if expected >= 0 and self.V > 1:
            b = band(self.length[row])
            hit = self.hits[b] / self.tries[b]
            p[:] = (1.0 - hit) / (self.V - 1)
            p[expected] = hit
        return p

    def learn(self, symbol: int, position: int, key: int, row: int = 0) -> None:
        """`symbol` came at `position` (in row `row`); `key` is the MIN_MATCH context before position + 1."""
        if self.length[row]:
            expected = self.expected(row)
            if expected >= 0:
                b = band(self.length[row])
                self.hits[b] += expected == symbol
                self.tries[b] += 1
            hit = expected == symbol
            self.pointer[row], self.length[row] = (self.pointer[row] + 1, self.length[row] + 1) if hit else (0, 0)
        if not self.length[row]:
            found = self.find(key)
            if found >= 0:
                self.pointer[row], self.length[row] = found, MIN_MATCH
        self.table[key] = position + 1
