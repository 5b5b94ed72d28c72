"""`taller tokenize RUN --text TEXT`: how the run's tokenizer cuts a text, token by token.

    Mañana voy al taller        (in a terminal: each token on its own background colour, alternating)
    Mañana│␣voy│␣al│␣t│aller   (not a terminal, or NO_COLOR set: plain, with a visible separator)

then the ids and the characters per token: the number that says how much text each prediction covers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from taller.data.tokenizers import LISTED, load_tokenizer
from taller.errors import TallerError
from taller.text import number, show_token

BACKGROUNDS = (153, 222, 157, 218)  # light blue, yellow, green, pink (256-colour palette), with black text
SEPARATOR = "│"
NAMES = {"char": "de caracteres", "word": "de palabras", "bpe": "BPE de bytes"}


def use_colour(stream=None) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def coloured(pieces: list[str]) -> str:
    """Each token on its own background; spaces stay spaces (the colour shows them), newlines show as ⏎."""
    out = []
    for k, piece in enumerate(pieces):
        shown = piece.replace("\n", "⏎").replace("\t", "⇥")
        out.append(f"\x1b[30;48;5;{BACKGROUNDS[k % len(BACKGROUNDS)]}m{shown}\x1b[0m")
    return "".join(out)


def plain(pieces: list[str]) -> str:
    return SEPARATOR.join(show_token(p) for p in pieces)


def tokenize_text(tokenizer, text: str, colour: bool = False) -> str:
    """The report `taller tokenize` prints for one text."""
    if not text:
        raise TallerError('--text está vacío; escribe el texto que quieres partir, por ejemplo --text "No hay mal".')
    missing = tokenizer.unknown(text)
    if missing:
        shown = " ".join(repr(c) for c in missing[:LISTED])
        raise TallerError(f"el texto tiene caracteres que este tokenizador nunca vio: {shown}; quítalos o cámbialos.")
    ids, _ = tokenizer.token_chars(text)
    pieces = [tokenizer.pieces[int(i)] for i in ids]
    per_token = len(text) / len(ids)
    lines = [
        f"Tokenizador {NAMES[tokenizer.kind]} ({tokenizer.vocab_size} tokens en el vocabulario)",
        "",
        coloured(pieces) if colour else plain(pieces),
        "",
        "ids: " + " ".join(str(int(i)) for i in ids),
        "",
        f"{len(ids)} tokens para {len(text)} caracteres: {number(per_token)} caracteres por token",
    ]
    if tokenizer.kind == "bpe" and any(p.startswith("\\x") for p in pieces):
        lines.append(
            "(\\xNN: un byte suelto; los caracteres fuera del ASCII ocupan 2 a 4 bytes y a veces se "
            "reparten entre tokens)"
        )
    return "\n".join(lines)


def tokenize_run(run_dir: str | Path, text: str, colour: bool | None = None) -> str:
    """Read only the run's tokenizer.json (no model) and show how it cuts `text`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TallerError(
            f"no existe la carpeta de ejecución {run_dir}; entrena una con `taller train --out {run_dir}`."
        )
    if (run_dir / "vocab.json").exists() and not (run_dir / "tokenizer.json").exists():
        raise TallerError(
            f"{run_dir} es un skip-gram: sus palabras no se tokenizan, se consultan con "
            f"`taller embeddings {run_dir} --near palabra`."
        )
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    return tokenize_text(tokenizer, text, use_colour() if colour is None else colour)
