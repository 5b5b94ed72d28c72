"""All the parts, one character at a time: predict() gives the next symbol's distribution, learn(symbol) reads it.

Several rows of text can be read side by side (taller compress cuts a text so, for a network that reads its rows in
one batch): each row has its own place, its own last characters and word, and its own running match (a Cursor); the
counts, the mixer, the match's tables and the APM are shared and learn row after row, in the order of the calls.
A network's distributions (or any other model's) can be given to predict() as more inputs of the mixer.

Two mixers read the same inputs, one with a row of weights per (longest order seen, match band), the other per
previous character; their distributions are averaged. An APM refines the average by the previous character.

The training text is counted at once (counts.py); its last `warm` symbols are then read one at a time like the
text to code, so the mixer, the match bands and the APM start having learnt on text the counts had not seen. The
encoder and the decoder build the same predictor from the same training text and make the same calls, so every
number is the same on both sides (same float64 numpy operations, in the same order, on the same machine).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from taller.models.cm.contexts import Words, order_keys, order_keys_now, powers, word_keys
from taller.models.cm.counts import Counts
from taller.models.cm.match import MIN_MATCH, Match, band
from taller.models.cm.mixer import Mixer
from taller.models.cm.orders import STATES, OrderModels
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
    confidence: bool = True  # each input's weight also read by its own state (count total, deterministic; match band)
    escape_rate: float = 0.05  # how fast each model learns its escape (orders.py; 0: plain Witten–Bell)
    limit: float = 256.0  # a context's counts are halved past this total (nonstationary); 1e18: plain counts
    rate: float = 0.001  # the mixer's learning rate
    state_rate: float = 0.0002  # the learning rate of the weights read by each input's state (confidence)
    boost: float = 4.0  # a mixer row's first steps are (1 + boost) times larger (the boost halves in BOOST_STEPS)
    start: float = 0.3  # the mixer's first weights
    sse_rate: float = 0.005  # how fast the APM learns
    sse_share: float = 0.25  # how much of the output is the APM's
    warm: int = 20_000  # training symbols read one at a time before coding
    mixer2: bool = True  # a second mixer, a row of weights per previous symbol, averaged with the first
    extra_start: float = 0.3  # the mixer's first weight for an input given to predict() (a network's; 1.0: worse)


DEFAULT = Settings()


@dataclass
class Cursor:
    """One row's own state: where it writes in the history, its last symbols, its word, its context keys."""

    position: int
    recent: list[int]
    words: Words
    keys: tuple[list[int], list[int]] = ([], [])


class Predictor:
    def __init__(
        self,
        train: np.ndarray,
        capacity: int | list[int],
        letters: np.ndarray,
        settings: Settings = DEFAULT,
        extra: int = 0,
    ):
        """train (n,) symbols of the training text; capacity: how many symbols will be read after it (a list: in
        each row); letters (V,) which symbols are letters (the word models); extra: inputs given to predict()."""
        s, V = settings, len(letters)
        capacities = [capacity] if isinstance(capacity, int) else list(capacity)
        self.s, self.V, self.extra = s, V, extra
        cut = max(0, len(train) - s.warm)
        known, self.base = train[:cut], V + 1
        self.history = np.full(len(train) + sum(capacities), -1, np.int64)  # -1: not read yet
        self.history[:cut] = known
        self.span = max(s.orders, MIN_MATCH)
        self.pw = powers(self.base, self.span)
        orders = [Counts(np.zeros(cut, np.int64), known, V, s.limit)]
        orders += [Counts(order_keys(known, k, self.base), known, V, s.limit) for k in range(1, s.orders + 1)]
        words: list[Counts] = []
        warm = Cursor(cut, known[-self.span :].tolist(), Words(letters))
        if s.words:
            now, pair, warm.words = word_keys(known, letters)
            words = [Counts(now, known, V, s.limit), Counts(pair, known, V, s.limit)]
        self.models = OrderModels(orders, words, V, s.escape_rate)
        keys = order_keys(known, MIN_MATCH, self.base)
        self.match = Match(self.history, keys, cut, V, max(1, len(capacities))) if s.match else None
        rows = (s.orders + 1) * (len(MATCH_BANDS) + 1) if s.mixer_contexts else 1
        inputs = self.models.inputs + (1 if s.match else 0) + extra
        self.mixer = self.new_mixer(inputs, rows)
        self.mixer2 = self.new_mixer(inputs, V) if s.mixer2 else None
        for mixer in filter(None, (self.mixer, self.mixer2)):
            mixer.weights[:, inputs - extra :] = s.extra_start
        self.apm = APM(V, s.sse_rate, s.sse_share) if s.sse else None
        self.cursors = [warm]
        warm.keys = self.context_keys(warm)
        for symbol in train[cut:].tolist():  # the warm-up, as row 0, without the extra inputs
            self.predict()
            self.learn(symbol)
        starts = len(train) + np.cumsum([0] + capacities[:-1])
        self.cursors = [copy.deepcopy(warm) for _ in capacities]  # every row starts where the training text ends
        for cursor, start in zip(self.cursors, starts.tolist()):
            cursor.position = start

    def new_mixer(self, inputs: int, rows: int) -> Mixer:
        s = self.s
        return Mixer(inputs, rows, s.rate, s.start, STATES if s.confidence else 1, s.state_rate, s.boost)

    def context_keys(self, cursor: Cursor) -> tuple[list[int], list[int]]:
        """(keys of orders 0 … K and of the match context, keys of the word models) before the row's next symbol."""
        keys = order_keys_now(cursor.recent, self.span, self.pw)
        return [0] + keys, list(cursor.words.keys()) if self.s.words else []

    def mixing_context(self, seen: int, row: int) -> int:
        if not self.s.mixer_contexts:
            return 0
        length = self.match.length[row] if self.match else 0
        return seen * (len(MATCH_BANDS) + 1) + sum(length > b for b in MATCH_BANDS)

    def inputs(self, row: int, extra: np.ndarray | None) -> tuple[np.ndarray, int, np.ndarray]:
        """(inputs, V) every part's distribution, the longest order seen, (inputs,) each input's state."""
        order, word = self.cursors[row].keys
        rows, seen, states = self.models.predict(order[: self.s.orders + 1], word)
        parts = [rows]
        if self.match:
            parts.append(self.match.predict(row)[None])
            states.append(band(self.match.length[row]))
        if extra is None and self.extra:
            parts.append(np.full((self.extra, self.V), 1.0 / self.V))
        elif self.extra:
            parts.append(extra)
        return np.vstack(parts), seen, np.array(states + [0] * self.extra, np.intp)

    def predict(self, row: int = 0, extra: np.ndarray | None = None) -> np.ndarray:
        """(V,) the next symbol's distribution in row `row`; extra: (self.extra, V) more inputs (None: uniform, which
        the mixer ignores)."""
        rows, seen, states = self.inputs(row, extra)
        p = self.mixer.mix(rows, self.mixing_context(seen, row), states)
        recent = self.cursors[row].recent
        last = recent[-1] if recent else 0
        if self.mixer2:
            p = 0.5 * (p + self.mixer2.mix(rows, last, states, self.mixer.logp))
        return self.apm.refine(p, last) if self.apm else p

    def learn(self, symbol: int, row: int = 0) -> None:
        """The symbol that came after the last predict() (of the same row)."""
        cursor = self.cursors[row]
        order, word = cursor.keys
        for part in filter(None, (self.mixer, self.mixer2, self.apm)):
            part.learn(symbol)
        self.models.learn(order[: self.s.orders + 1], word, symbol)
        self.history[cursor.position] = symbol
        cursor.recent = (cursor.recent + [symbol])[-self.span :]
        cursor.words.push(symbol)
        cursor.keys = self.context_keys(cursor)
        if self.match:
            self.match.learn(symbol, cursor.position, cursor.keys[0][MIN_MATCH], row)
        cursor.position += 1
