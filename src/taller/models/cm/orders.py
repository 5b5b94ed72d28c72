"""The order models (the last 0 … K characters) and the word models, as distributions.

Each context's counts n (V,) become a distribution by Witten–Bell smoothing over the next lower order:

    p_k(s) = (n(s) + e · p_{k-1}(s)) / (N + e)      N = Σ n,  e = d · c,  d = the number of distinct symbols seen there

so a context seen often with few different followers trusts its counts, one seen rarely or with many followers
leans on the shorter context, and an unseen context (N = 0) passes p_{k-1} on. Below order 0 is the uniform 1/V.
The word models are smoothed over order 2 the same way. Every model is one input of the mixer: the mixer, not a
fixed rule, decides how far to trust the long contexts.

Plain Witten–Bell has c = 1. With a learning rate for it, c is learnt while reading, one c per model and context
*state* (the bits of N, and whether one symbol alone came: STATES of them): after each character, log c takes a step
up the gradient of log p_k(y), so an 8th order whose one follower keeps coming learns to trust it more than
Witten–Bell does, and a 3rd order seen twice learns to lean on the 2nd.
"""

from __future__ import annotations

import math

import numpy as np

from taller.models.cm.counts import Counts

WORD_BASE = 2  # the order the word models are smoothed over
STATES = 20  # a context's state: its count total's bits (0 … 9) × whether one symbol alone came
LOG_LIMIT = 4.0  # log c stays within ±this


def state_of(total: float, d: float) -> int:
    return 2 * min(int(total).bit_length(), 9) + (d == 1.0)


def blend(n: np.ndarray, lower: np.ndarray, total: float, e: float) -> np.ndarray:
    """(n + e · lower) / (N + e): the counts with the escape's share of the lower order."""
    return (n + e * lower) / (total + e)


class OrderModels:
    """Orders 0 … K and the two word models: (K + 3, V) distributions for the next symbol."""

    def __init__(self, orders: list[Counts], words: list[Counts], V: int, escape_rate: float = 0.0):
        self.orders, self.words, self.V = orders, words, V
        self.uniform = np.full(V, 1.0 / V)
        self.log_c = [[0.0] * STATES for _ in range(self.inputs)]  # per model and state: log c
        self.escape_rate = escape_rate
        self.last: list[tuple[np.ndarray, np.ndarray, float, float, int]] = []  # per model: lower, p, N, d, state

    @property
    def inputs(self) -> int:
        return len(self.orders) + len(self.words)

    def one(self, i: int, n: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Model i's distribution from its counts n and the lower one, its N and its state (kept for learn())."""
        total = float(n.sum())
        if total == 0.0:  # an unseen context: the lower order passed on
            self.last.append((lower, lower, 0.0, 0.0, 0))
            return lower, 0.0, 0
        d = float(np.count_nonzero(n))
        state = state_of(total, d)
        p = blend(n, lower, total, d * math.exp(self.log_c[i][state]))
        self.last.append((lower, p, total, d, state))
        return p, total, state

    def predict(self, order_keys: list[int], word_keys: list[int]) -> tuple[np.ndarray, int, list[int]]:
        """Keys of orders 0 … K and of the word models -> (inputs, V) distributions, the longest order whose
        context has been seen (0 … K), and each input's state (STATES: how much its context has been seen)."""
        rows, states, p, seen = [], [], self.uniform, 0
        self.last = []
        for k, (counts, key) in enumerate(zip(self.orders, order_keys)):
            p, total, state = self.one(k, counts(key), p)
            rows.append(p)
            states.append(state)
            seen = k if total > 0 else seen
        base = rows[min(WORD_BASE, len(rows) - 1)]
        for i, (counts, key) in enumerate(zip(self.words, word_keys), start=len(self.orders)):
            p, _, state = self.one(i, counts(key), base)
            rows.append(p)
            states.append(state)
        return np.stack(rows), seen, states

    def learn(self, order_keys: list[int], word_keys: list[int], symbol: int) -> None:
        if self.escape_rate:
            self.learn_escapes(symbol)
        for counts, key in zip(self.orders + self.words, order_keys + word_keys):
            counts.learn(key, symbol)

    def learn_escapes(self, symbol: int) -> None:
        """log c of each model's state, one step up ∂ log p(y) / ∂ log c = e · (lower(y) − p(y)) / ((N + e) p(y))."""
        for log_c, (lower, p, total, d, state) in zip(self.log_c, self.last):
            if total:
                e = d * math.exp(log_c[state])
                step = self.escape_rate * e * (lower[symbol] - p[symbol]) / ((total + e) * p[symbol])
                log_c[state] = min(LOG_LIMIT, max(-LOG_LIMIT, log_c[state] + step))
