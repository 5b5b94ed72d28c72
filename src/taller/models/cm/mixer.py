"""The online mixer: logistic mixing in the log domain over the alphabet (see models/mix.py), learning while it reads.

    log p(s) = Σ_i w_i · log p_i(s) − log Z

The weights are not one vector but a small table, one row per mixing context (here: how long a context the order
models have seen, and how long the match has run), so the mixer can trust the 8th order after «Sancho Pan» and the
2nd order after a rare word. After each character the row that was used takes one step down the gradient of the
character's cost −log p(y):

    ∂(−log p(y)) / ∂w_i = −(log p_i(y) − Σ_s p(s) · log p_i(s))

An input that gave the coming character more than the mix expected gains weight; one that gave it less loses some.
"""

from __future__ import annotations

import numpy as np

FLOOR = -30.0  # log-probabilities below this count as this


class Mixer:
    def __init__(self, inputs: int, contexts: int, rate: float, start: float):
        self.weights = np.full((contexts, inputs), start)  # (contexts, inputs)
        self.rate = rate
        self.logp = np.zeros(0)  # (inputs, V) the last inputs, kept for learn()
        self.p = np.zeros(0)  # (V,) the last mixed distribution
        self.row = 0

    def mix(self, probs: np.ndarray, context: int) -> np.ndarray:
        """(inputs, V) distributions and the mixing context -> (V,) the mixed distribution."""
        self.row, self.logp = context, np.maximum(np.log(probs), FLOOR)
        z = self.weights[context] @ self.logp  # (V,)
        e = np.exp(z - z.max())
        self.p = e / e.sum()
        return self.p

    def learn(self, symbol: int) -> None:
        gradient = self.logp[:, symbol] - self.logp @ self.p  # (inputs,): minus the gradient of −log p(y)
        self.weights[self.row] += self.rate * gradient
