"""A text as bytes, given the training text: the predictor (predictor.py) and the arithmetic coder.

The alphabet is the training text's characters, most frequent first (at most MAX_ALPHABET), plus one escape symbol:
a character the training text never had is coded as the escape, then its code point with a flat 1 / 2^21 (the
models see the escape). So any text can be coded, a BOM, a CRLF or a new letter included.

Each probability becomes an integer frequency with the rule of apps/compress.py (each ≥ 1, total ≤ 2^24), computed
the same way on both sides.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter

import numpy as np

from taller.arithmetic import TOTAL_BITS, Decoder, Encoder
from taller.models.cm.predictor import DEFAULT, Predictor, Settings

MAX_ALPHABET = 255  # symbols with their own counts (the escape is one more)
CODE_POINT_BITS = 21  # Unicode's code points fit in 21 bits


def alphabet(train: str) -> str:
    """The training text's characters, most frequent first (ties by code point), at most MAX_ALPHABET."""
    ranked = sorted(Counter(train).items(), key=lambda item: (-item[1], item[0]))
    return "".join(c for c, _ in ranked[:MAX_ALPHABET])


class Coding:
    """What both sides share: the alphabet, the letters, the training symbols, and a predictor made from them."""

    def __init__(self, train: str, capacity: int | list[int], settings: Settings, extra: int = 0):
        """capacity: the characters to code (a list: in each row read side by side); extra: the mixer's inputs
        given from outside (a network's distribution)."""
        self.chars = alphabet(train)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.escape = len(self.chars)
        self.V = len(self.chars) + 1
        letters = np.array([c.isalpha() for c in self.chars] + [False])
        self.predictor = Predictor(self.symbols(train), capacity, letters, settings, extra)

    def symbols(self, text: str) -> np.ndarray:
        return np.array([self.index.get(c, self.escape) for c in text], np.int64)

    def cumulative(self, p: np.ndarray) -> list[int]:
        """(V,) probabilities -> V + 1 cumulative integer frequencies: symbol j owns [cum[j], cum[j+1]); the rule of
        arithmetic.cumulative (each ≥ 1, total ≤ 2^TOTAL_BITS), in numpy: a few µs instead of torch's calls."""
        freq = np.floor(p * float((1 << TOTAL_BITS) - len(p))).astype(np.int64) + 1  # (V,)
        return [0] + np.cumsum(freq).tolist()

    def write(self, encoder: Encoder, p: np.ndarray, symbol: int, c: str) -> float:
        """Code one character with the probabilities p (V,): its symbol and, after the escape, its code point.
        -> its ideal bits."""
        cum = self.cumulative(p)
        encoder.encode(cum[symbol], cum[symbol + 1] - cum[symbol], cum[-1])
        if symbol != self.escape:
            return -math.log2(p[symbol])
        encoder.encode(ord(c), 1, 1 << CODE_POINT_BITS)
        return CODE_POINT_BITS - math.log2(p[symbol])

    def read(self, decoder: Decoder, p: np.ndarray) -> tuple[int, str]:
        """The next character's symbol and the character, with the probabilities p (V,). A code point no text can
        hold (a surrogate, beyond U+10FFFF: only a damaged file has one) reads as U+FFFD, for the CRC to catch."""
        cum = self.cumulative(p)
        symbol = min(bisect.bisect_right(cum, decoder.target(cum[-1])) - 1, self.V - 1)
        decoder.consume(cum[symbol], cum[symbol + 1] - cum[symbol], cum[-1])
        if symbol != self.escape:
            return symbol, self.chars[symbol]
        point = decoder.target(1 << CODE_POINT_BITS)
        decoder.consume(point, 1, 1 << CODE_POINT_BITS)
        return symbol, chr(point) if point < 0xD800 or 0xDFFF < point <= 0x10FFFF else "\ufffd"


def encode(train: str, text: str, settings: Settings = DEFAULT) -> tuple[bytes, float]:
    """`text` coded given `train` -> (the coder's bytes, the ideal bits Σ −log2 p)."""
    coding, encoder, ideal = Coding(train, len(text), settings), Encoder(), 0.0
    predictor = coding.predictor
    for c, symbol in zip(text, coding.symbols(text).tolist()):
        ideal += coding.write(encoder, predictor.predict(), symbol, c)
        predictor.learn(symbol)
    return encoder.finish(), ideal


def decode(train: str, data: bytes, n: int, settings: Settings = DEFAULT) -> str:
    """The n characters coded in `data` given `train` (a damaged `data` gives a wrong text: the caller checks it)."""
    coding, decoder, out = Coding(train, n, settings), Decoder(data), []
    predictor = coding.predictor
    for _ in range(n):
        symbol, c = coding.read(decoder, predictor.predict())
        out.append(c)
        predictor.learn(symbol)
    return "".join(out)
