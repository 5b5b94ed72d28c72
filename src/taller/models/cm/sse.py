"""Secondary symbol estimation (an APM, adaptive probability map): the mixed probabilities, corrected.

The mixer may be too sure or not sure enough, and differently after different characters. For each probability p
the mixer gives a symbol, the APM looks at a table row chosen by the previous character, at p's place on a stretched
scale (log p/(1−p) from −8 to 8, in BUCKETS steps), and reads what that probability turned out to mean: the share of
times a symbol given that much, there, actually came. Between two buckets it interpolates. After each character every
symbol's two buckets move a little towards what happened (1 for the character that came, 0 for the rest).

The output, renormalised, is averaged with its input (the APM refines, it does not replace).
"""

from __future__ import annotations

import numpy as np

BUCKETS = 24  # steps of the stretched scale from −LIMIT to LIMIT: BUCKETS + 1 points
LIMIT = 8.0
STEP = 2 * LIMIT / BUCKETS
EDGE = 1e-6  # the table's values stay in [EDGE, 1 − EDGE]


class APM:
    def __init__(self, contexts: int, rate: float, share: float):
        points = -LIMIT + STEP * np.arange(BUCKETS + 1)
        self.table = np.tile(1.0 / (1.0 + np.exp(-points)), (contexts, 1))  # (contexts, BUCKETS + 1): the identity
        self.rate, self.share = rate, share  # how fast it learns; how much of the output is the APM's
        self.row, self.low, self.frac, self.q = 0, np.zeros(0, np.intp), np.zeros(0), np.zeros(0)

    def refine(self, p: np.ndarray, context: int) -> np.ndarray:
        """(V,) probabilities -> (V,) refined ones."""
        stretched = np.clip(np.log(p / np.maximum(1.0 - p, 1e-300)), -LIMIT, LIMIT - 1e-9)
        position = (stretched + LIMIT) / STEP
        low = position.astype(np.intp)  # (V,) the bucket below
        frac = position - low
        row = self.table[context]
        q = row[low] * (1.0 - frac) + row[low + 1] * frac  # (V,)
        self.row, self.low, self.frac, self.q = context, low, frac, q
        return (1.0 - self.share) * p + self.share * (q / q.sum())

    def learn(self, symbol: int) -> None:
        error = -self.q
        error[symbol] += 1.0  # what happened minus what was said, per symbol
        step = self.rate * error
        row = self.table[self.row]
        row += np.bincount(self.low, step * (1.0 - self.frac), minlength=len(row))  # symbols may share a bucket
        row += np.bincount(self.low + 1, step * self.frac, minlength=len(row))
        np.clip(row, EDGE, 1.0 - EDGE, out=row)  # a probability, never 0 or 1
