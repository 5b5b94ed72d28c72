"""The character tokenizer: every distinct character of the corpus gets a number.

Saved as `tokenizer.json` in the run folder, so a run always decodes with the vocabulary it was trained on.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np

from .errors import TallerError

FORMAT = "taller-char-v1"


class CharTokenizer:
    def __init__(self, chars: list[str]):
        self.chars = list(chars)  # id -> character
        self.index = {c: i for i, c in enumerate(self.chars)}  # character -> id
        if len(self.index) != len(self.chars):
            raise TallerError("tokenizer.json tiene caracteres repetidos en su vocabulario; el fichero está dañado.")

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """Text -> ids. Unknown characters raise a clear error, or with unknown='replace' are replaced:
        first by the same letter without its accent (ñ -> n, á -> a), else by a space, else dropped."""
        missing = self.unknown(text)
        if missing:
            if unknown != "replace":
                shown = " ".join(repr(c) for c in missing[:20])
                raise TallerError(f"el texto tiene caracteres que el modelo nunca vio: {shown}. "
                                  "Quítalos o usa --reemplazar-desconocidos para sustituirlos.")
            text = "".join(self.replacement(c) if c in missing else c for c in text)
        return [self.index[c] for c in text]

    def replacement(self, ch: str) -> str:
        base = unicodedata.normalize("NFKD", ch)[:1]
        for candidate in (base, base.lower(), base.upper(), " "):
            if candidate in self.index:
                return candidate
        return ""

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def encode_array(self, text: str) -> np.ndarray:
        """A whole corpus -> a numpy array of the smallest integer type that holds the vocabulary."""
        table = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size and (codes.max() >= len(table) or (table[codes] < 0).any()):
            self.encode(text)  # raises with the list of unknown characters
        dtype = np.uint8 if len(self.chars) <= 256 else np.uint16 if len(self.chars) <= 65536 else np.int32
        return table[codes].astype(dtype)

    # --- files ----------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "type": "char", "chars": self.chars}, ensure_ascii=False, indent=1)

    def save(self, path: Path) -> None:
        from .checkpoint import atomic_write

        atomic_write(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> CharTokenizer:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TallerError(f"falta {path}; la carpeta no es una ejecución completa de taller.") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TallerError(f"{path} no es JSON válido; el fichero está dañado.") from None
        if not isinstance(d, dict) or d.get("type") != "char":
            raise TallerError(f"{path}: tipo de tokenizador desconocido; se esperaba 'char'.")
        chars = d.get("chars")
        if not isinstance(chars, list) or not chars or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise TallerError(f"{path}: 'chars' debe ser una lista de caracteres sueltos; el fichero está dañado.")
        return cls(chars)
