"""All the parts, one character at a time: predict() gives the next symbol's distribution, learn(symbol) reads it.

The training text is counted at once (counts.py); its last `warm` symbols are then read one at a time like the
text to code, so the mixer, the match bands and the APM start having learnt on text the counts had not seen. The
encoder and the decoder build the same predictor from the same training text and make the same calls, so every
number is the same on both sides (same float64 numpy operations, in the same order, on the same machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taller.models.cm.contexts import Words, order_keys, order_keys_now, powers, word_keys
from taller.models.cm.counts import Counts
from taller.models.cm.match import MIN_MATCH, Match
from taller.models.cm.mixer import Mixer
from taller.models.cm.orders import OrderModels
from taller.models.cm.sse import APM

MATCH_BANDS = (0, 16, 32)  # the mixer's context: none, or a match longer than each of these


@dataclass(frozen=True)
class Settings:
    """What the predictor is made of (the ablation turns each part off in turn)."""

    orders: int = 8  # order models 0 … orders
    words: bool = True  # the two word models
    match: bool = True  # the match model
    sse: bool = True  # the APM after the mixer
    mixer_contexts: bool = True  # a row of weights per (longest order seen, match band); False: one row
    limit: float = 256.0  # a context's counts are halved past this total (nonstationary); 1e18: plain counts
    rate: float = 0.002  # the mixer's learning rate
    start: float = 0.3  # the mixer's first weights
    sse_rate: float = 0.005  # how fast the APM learns
    sse_share: float = 0.25  # how much of the output is the APM's
    warm: int = 20_000  # training symbols read one at a time before coding


DEFAULT = Settings()


class Predictor:
    def __init__(self, train: np.ndarray, capacity: int, letters: np.ndarray, settings: Settings = DEFAULT):
        """train (n,) symbols of the training text; capacity: how many symbols will be read after it; letters (V,)
        which symbols are letters (the word models)."""
        s, V = settings, len(letters)
        self.s, self.V = s, V
        cut = max(0, len(train) - s.warm)
        known, self.base = train[:cut], V + 1
        self.history = np.zeros(len(train) + capacity, np.int64)
        self.history[:cut] = known
        self.position = cut
        self.span = max(s.orders, MIN_MATCH)
        self.pw = powers(self.base, self.span)
        orders = [Counts(np.zeros(cut, np.int64), known, V, s.limit)]
        orders += [Counts(order_keys(known, k, self.base), known, V, s.limit) for k in range(1, s.orders + 1)]
        words: list[Counts] = []
        self.words = Words(letters)
        if s.words:
            now, pair, self.words = word_keys(known, letters)
            words = [Counts(now, known, V, s.limit), Counts(pair, known, V, s.limit)]
        self.models = OrderModels(orders, words, V)
        self.match = Match(self.history, order_keys(known, MIN_MATCH, self.base), cut, V) if s.match else None
        rows = (s.orders + 1) * (len(MATCH_BANDS) + 1) if s.mixer_contexts else 1
        self.mixer = Mixer(self.models.inputs + (1 if s.match else 0), rows, s.rate, s.start)
        self.apm = APM(V, s.sse_rate, s.sse_share) if s.sse else None
        self.recent = known[-self.span :].tolist()
        self.keys = self.context_keys()
        for symbol in train[cut:].tolist():
            self.predict()
            self.learn(symbol)

    def context_keys(self) -> tuple[list[int], list[int]]:
        """(keys of orders 0 … K and of the match context, keys of the word models) before the next symbol."""
        keys = order_keys_now(self.recent, self.span, self.pw)
        return [0] + keys, list(self.words.keys()) if self.s.words else []

    def mixing_context(self, seen: int) -> int:
        if not self.s.mixer_contexts:
            return 0
        length = self.match.length if self.match else 0
        return seen * (len(MATCH_BANDS) + 1) + sum(length > b for b in MATCH_BANDS)

    def inputs(self) -> tuple[np.ndarray, int]:
        """(inputs, V) every part's distribution, and the longest order seen."""
        order, word = self.keys
        rows, seen = self.models.predict(order[: self.s.orders + 1], word)
        if self.match:
            rows = np.vstack([rows, self.match.predict()])
        return rows, seen

    def predict(self) -> np.ndarray:
        """(V,) the next symbol's distribution."""
        rows, seen = self.inputs()
        p = self.mixer.mix(rows, self.mixing_context(seen))
        if self.apm:
            p = self.apm.refine(p, self.recent[-1] if self.recent else 0)
        return p

    def learn(self, symbol: int) -> None:
        """The symbol that came after the last predict()."""
        order, word = self.keys
        self.mixer.learn(symbol)
        if self.apm:
            self.apm.learn(symbol)
        self.models.learn(order[: self.s.orders + 1], word, symbol)
        self.history[self.position] = symbol
        self.recent = (self.recent + [symbol])[-self.span :]
        self.words.push(symbol)
        self.keys = self.context_keys()
        if self.match:
            self.match.learn(symbol, self.position, self.keys[0][MIN_MATCH])
        self.position += 1
