"""Validation text by text, for a corpus of several texts (`--corpus quijote+refranes`): each text's val scored alone.

The corpus's split (data/split.py) cut each text by its own rule and knows where each one's val lies; here each of
those pieces is tokenized on its own and handed to the objective's own scoring, so that a run trained on a book and
on proverbs says how it does on each, and on both together (its usual val figures).
"""

from __future__ import annotations

import numpy as np

from taller.text import number


def part_vals(data) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ids, characters per id) of each text's val; none for a corpus of one text."""
    val = data.split.val
    return [(name, *data.tokenizer.token_chars(val[start:end])) for name, start, end in data.split.parts]


def by_text_line(scores: dict[str, float], unit: str, digits: int = 3) -> str:
    """«Validación por texto: quijote 1,850 · refranes 2,310 bits/carácter»."""
    return (
        "Validación por texto: " + " · ".join(f"{name} {number(x, digits)}" for name, x in scores.items()) + f" {unit}"
    )
