"""The train/val split: validation text that training never sees, chosen by a fixed rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taller.errors import TallerError

MIX_SLICE = 0.05  # the share of the training text, at its end, on which a mix fits its table (models/mix.py) …
MAX_MIX_SLICE = 100_000  # … but at most this many tokens


def mix_slice_length(train_tokens: int, share: float = MIX_SLICE, cap: int = MAX_MIX_SLICE) -> int:
    """How many tokens at the end of the training text a mix fits its table on: a network trained for mixing leaves
    exactly these unread (train.mix_slice), so that on them it is as unsure as on new text."""
    return min(cap, max(2, int(train_tokens * share))) if share > 0 else 0


@dataclass
class Split:
    train: str
    val: str
    kind: str  # "tail", "lines" or "after" (split_text); "prepared" for a folder from `taller prepare` (texts empty)
    parts: tuple[tuple[str, int, int], ...] = ()  # several texts (a+b): (name, start, end) of each one's val in `val`


def split_text(
    text: str, *, lines: bool, val_fraction: float = 0.1, seed: int = 1234, kind: str = "auto", max_chars: int = 0
) -> Split:
    """Hold out validation text that training never sees. `kind` is "tail", "lines", "after" or "auto" (lines for a
    corpus of lines, else tail).

    - tail: the last `val_fraction` of the characters (a book: val is its ending).
    - lines: `val_fraction` of the whole lines, chosen at random with a fixed seed, so that no proverb is in both
      halves and, in an alphabetical file, val is not all 'Z'. The newline stays as the end-of-proverb character.
    - after: train on exactly the first `max_chars` characters (a lesson's text) and validate on the
      `val_fraction × max_chars` characters that follow them.
    With `max_chars`, tail and lines first cut the text to its first `max_chars` characters.
    """
    kind = ("lines" if lines else "tail") if kind == "auto" else kind
    if kind == "after":
        n_val = max(2, round(max_chars * val_fraction))
        if len(text) < max_chars + n_val:
            raise TallerError(
                f"el texto tiene {len(text)} caracteres, menos que max_chars={max_chars} más {n_val} de "
                "validación; baja data.max_chars o usa --set split=tail."
            )
        return Split(text[:max_chars], text[max_chars : max_chars + n_val], kind)
    if max_chars:
        text = text[:max_chars]
    if kind == "lines":
        items = [line for line in text.split("\n") if line.strip()]
        if len(items) < 2:
            raise TallerError(
                "el corpus tiene menos de 2 líneas: no se puede separar validación por líneas; usa --set split=tail."
            )
        n_val = max(1, round(len(items) * val_fraction))
        val_idx = set(np.random.default_rng(seed).choice(len(items), size=n_val, replace=False).tolist())
        train = [s for i, s in enumerate(items) if i not in val_idx]
        val = [s for i, s in enumerate(items) if i in val_idx]
        return Split("\n".join(train) + "\n", "\n".join(val) + "\n", kind)
    cut = int(len(text) * (1 - val_fraction))
    return Split(text[:cut], text[cut:], kind)


def split_corpus(corpus, data) -> Split:
    """The split a [data] section asks for, of a loaded corpus; several texts (a+b) are split each by its own rule
    (a book by its tail, proverbs by whole lines), and the trains and the vals put one after another."""
    if corpus.parts:
        return joined([(p.name, split_corpus(p, data)) for p in corpus.parts])
    return split_text(
        corpus.text,
        lines=corpus.lines,
        val_fraction=data.val_fraction,
        seed=data.split_seed,
        kind=data.split,
        max_chars=data.max_chars,
    )


def joined(splits: list[tuple[str, Split]]) -> Split:
    """Several texts' splits as one: trains one after another, vals too, each ending in a newline; where each val is."""
    train, val, parts = "", "", []
    for name, split in splits:
        train += split.train if split.train.endswith("\n") else split.train + "\n"
        start = len(val)
        val += split.val if split.val.endswith("\n") else split.val + "\n"
        parts.append((name, start, len(val)))
    return Split(train, val, "+".join(s.kind for _, s in splits), tuple(parts))
