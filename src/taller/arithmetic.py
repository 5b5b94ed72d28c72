"""Arithmetic coding: a text as one number, written with as many bits as the model says it is surprising.

Each symbol owns a slice of [0, 1) as wide as its probability. Coding a text narrows an interval step by step: start
with [0, 1), keep the slice of the first symbol, inside it the slice of the second, and so on. Any number inside the
last interval names the whole text; an interval of width P needs about −log2 P bits, the sum of −log2 p over the
symbols: exactly what the model's bits per character promise.

With integers (Witten, Neal & Cleary, 1987). The interval is [low, high], two 32-bit integers. Probabilities are
integer frequencies, `freq` of a `total`, each ≥ 1 (a symbol with frequency 0 could never be written). After each
symbol the interval is renormalised, doubling it until it is wide again:

    both ends in the lower half   → the next bit of the number is 0: write it, double
    both ends in the upper half   → the next bit is 1: write it, double
    low in the second quarter and high in the third (the interval straddles the middle, narrow)
                                  → the bit is not known yet: remember one "pending" bit and double around the middle;
                                    when the next bit is known, the pending bits are its opposite (01111 or 10000)

No carries, no floats: the decoder repeats the same integer steps and reads the bits back. It finds each symbol by
asking which slice holds the number read so far.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STATE_BITS = 32
FULL = (1 << STATE_BITS) - 1  # high starts as 0xFFFFFFFF: the interval [0, 1) with the ones going on forever
HALF = 1 << (STATE_BITS - 1)
QUARTER = 1 << (STATE_BITS - 2)
MAX_TOTAL = QUARTER  # after renormalising high − low > QUARTER: every symbol of a total ≤ QUARTER keeps width ≥ 1
TOTAL_BITS = 24  # the frequencies `cumulative` makes add up to at most 2^24 (the coder allows up to MAX_TOTAL = 2^30)


def cumulative(probs: torch.Tensor) -> torch.Tensor:
    """(S, V) probabilities -> (S, V+1) integer cumulative frequencies: symbol j owns [cum[j], cum[j+1]). Every
    symbol gets at least 1 and the total stays ≤ 2^24, with the same float operations on both sides of a coder."""
    V = probs.shape[-1]
    freq = (probs * ((1 << TOTAL_BITS) - V)).floor().long() + 1  # (S, V)
    return F.pad(freq.cumsum(dim=-1), (1, 0))


class Encoder:
    """Narrow [low, high] symbol by symbol; the bits that become certain go out at once."""

    def __init__(self):
        self.low, self.high = 0, FULL
        self.pending = 0  # bits decided later: the opposite of the next bit that is written
        self.bits = bytearray()  # one byte per bit written (0 or 1): packed at the end

    def encode(self, start: int, freq: int, total: int) -> None:
        """Keep the slice [start, start + freq) of `total` of the current interval."""
        assert 0 <= start and 0 < freq and start + freq <= total <= MAX_TOTAL
        width = self.high - self.low + 1
        self.high = self.low + width * (start + freq) // total - 1
        self.low = self.low + width * start // total
        while True:
            if self.high < HALF:  # the lower half: the next bit is 0
                self.emit(0)
            elif self.low >= HALF:  # the upper half: the next bit is 1
                self.emit(1)
                self.low, self.high = self.low - HALF, self.high - HALF
            elif self.low >= QUARTER and self.high < HALF + QUARTER:  # straddles the middle, narrowly
                self.pending += 1
                self.low, self.high = self.low - QUARTER, self.high - QUARTER
            else:
                return
            self.low, self.high = 2 * self.low, 2 * self.high + 1  # double the interval (a 1 comes in at the bottom)

    def emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend(bytes([1 - bit]) * self.pending)
        self.pending = 0

    def finish(self) -> bytes:
        """Two more bits pick a number inside the last interval whatever follows them (the decoder reads zeros past
        the end); the bits packed into bytes, the last one padded with zeros."""
        self.pending += 1
        self.emit(0 if self.low < QUARTER else 1)
        return np.packbits(np.frombuffer(bytes(self.bits), dtype=np.uint8)).tobytes()


class Decoder:
    """The encoder's steps again, reading the number instead of writing it."""

    def __init__(self, data: bytes):
        self.data, self.size = bytes(data), 8 * len(data)  # read a bit at a time: memory stays that of the data
        self.position = 0
        self.low, self.high = 0, FULL
        self.value = 0  # the first 32 bits of the number
        for _ in range(STATE_BITS):
            self.value = 2 * self.value + self.next_bit()

    def next_bit(self) -> int:
        p = self.position
        bit = (self.data[p >> 3] >> (7 - (p & 7))) & 1 if p < self.size else 0  # past the end: zeros
        self.position += 1
        return bit

    def target(self, total: int) -> int:
        """Where the number falls, in frequency units of `total`: the symbol whose slice [start, start + freq) holds
        it is the one that was written."""
        width = self.high - self.low + 1
        return ((self.value - self.low + 1) * total - 1) // width

    def consume(self, start: int, freq: int, total: int) -> None:
        """The symbol found: narrow the interval as the encoder did, reading a bit for each doubling."""
        width = self.high - self.low + 1
        self.high = self.low + width * (start + freq) // total - 1
        self.low = self.low + width * start // total
        while True:
            if self.high < HALF:
                pass
            elif self.low >= HALF:
                self.low, self.high, self.value = self.low - HALF, self.high - HALF, self.value - HALF
            elif self.low >= QUARTER and self.high < HALF + QUARTER:
                self.low, self.high, self.value = self.low - QUARTER, self.high - QUARTER, self.value - QUARTER
            else:
                return
            self.low, self.high = 2 * self.low, 2 * self.high + 1
            self.value = 2 * self.value + self.next_bit()

    @property
    def exhausted(self) -> bool:
        """Whether the decoder has read more than a state's width past the data (the stream was cut short)."""
        return self.position > self.size + STATE_BITS
