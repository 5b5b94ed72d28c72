"""Contexts as integer keys, computed two ways that agree exactly: for the whole training text at once (numpy,
wrapping uint64 arithmetic) and one character at a time while coding (Python integers masked to 64 bits).

A context of order k is the k symbols before a position, each +1 (0 stands for "before the start"), as the digits
of a number in base B = V + 1, taken modulo 2^64 and folded to KEY_BITS bits. While B^k < 2^KEY_BITS the key is the
context itself; beyond, two contexts may share a key (about one pair in 2^KEY_BITS: harmless, both sides agree).

The word contexts: the letters of the current word so far (a hash), and that together with the previous word.
"""

from __future__ import annotations

import numpy as np

KEY_BITS = 54  # a key times the alphabet (≤ 256) still fits in 62 bits: the (context, symbol) pairs of counts.py
KEY_MASK = (1 << KEY_BITS) - 1
M64 = (1 << 64) - 1
WORD_PRIME = 0x100000001B3  # FNV's 64-bit prime: a word's letters mixed into one number
PAIR_PRIME = 0x9E3779B97F4A7C15  # the golden ratio in 64 bits: the previous word mixed with the current one


def fold(full: int) -> int:
    """A 64-bit number -> a key of KEY_BITS bits (the high bits xored into the low ones)."""
    return (full ^ (full >> KEY_BITS)) & KEY_MASK


def fold_array(full: np.ndarray) -> np.ndarray:
    """The same as fold, for a uint64 array -> int64 keys."""
    return ((full ^ (full >> np.uint64(KEY_BITS))) & np.uint64(KEY_MASK)).astype(np.int64)


def powers(base: int, k: int) -> list[int]:
    """[1, B, B², …, B^(k-1)] modulo 2^64."""
    return [pow(base, j, 1 << 64) for j in range(k)]


def order_keys(ids: np.ndarray, order: int, base: int) -> np.ndarray:
    """(n,) symbols -> (n,) int64: the key of the `order` symbols before each position."""
    full = np.zeros(len(ids), np.uint64)
    with np.errstate(over="ignore"):
        for j, power in enumerate(powers(base, order), start=1):
            digit = np.zeros(len(ids), np.uint64)
            digit[j:] = ids[:-j].astype(np.uint64) + np.uint64(1)
            full += digit * np.uint64(power)  # wraps modulo 2^64, as the Python side masks
    return fold_array(full)


def order_keys_now(recent: list[int], orders: int, pw: list[int]) -> list[int]:
    """The keys of orders 1 … `orders` before the next position; recent[-1] is the last symbol (fewer than `orders`
    symbols at the start)."""
    keys, full = [], 0
    for j in range(1, orders + 1):
        if j <= len(recent):
            full = (full + (recent[-j] + 1) * pw[j - 1]) & M64
        keys.append(fold(full))
    return keys


class Words:
    """The word state: a hash of the current word's letters so far and of the previous word."""

    def __init__(self, letters: np.ndarray):
        self.letters = letters  # (V,) bool: which symbols are letters
        self.word, self.previous, self.last = 0, 0, 0

    def keys(self) -> tuple[int, int]:
        """(current word so far with the last symbol, that with the previous word)."""
        now = fold((self.word * WORD_PRIME + self.last + 1) & M64)
        return now, fold((self.previous * PAIR_PRIME + now) & M64)

    def push(self, symbol: int) -> None:
        if self.letters[symbol]:
            self.word = (self.word * WORD_PRIME + symbol + 1) & M64
        elif self.word:
            self.previous, self.word = self.word, 0
        self.last = symbol


def word_keys(ids: np.ndarray, letters: np.ndarray) -> tuple[np.ndarray, np.ndarray, Words]:
    """(n,) symbols -> the two word keys before each position, and the word state after the last one (a Python loop:
    about a second per million characters)."""
    words = Words(letters)
    now, pair = np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64)
    for t, symbol in enumerate(ids.tolist()):
        now[t], pair[t] = words.keys()
        words.push(symbol)
    return now, pair, words
