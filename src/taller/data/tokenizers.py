"""Tokenizers: how a text becomes the numbers a model reads.

    char   every distinct character of the corpus gets a number (the teaching one)
    word   the most frequent words of the training text get a number each; any other word is spelled with
           characters, and a character never seen in training becomes <unk>
    bpe    byte-level BPE (Hugging Face `tokenizers`): start from the 256 bytes, merge the most frequent pair again
           and again until the vocabulary has the size asked for

All three share one small interface: kind, vocab_size, encode, decode, encode_array, token_chars (how many
characters of the text each token completes, for bits per character), pieces (id -> text shown), unknown,
start_ids, to_json and save. Saved as `tokenizer.json` in the run folder, so a run always decodes with the
vocabulary it was trained on; `load_tokenizer` reads any of them back, never executing anything.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from taller.errors import TallerError
from taller.files import VOCABULARY_LIMIT, atomic_write, load_json_object

FORMAT = "taller-char-v1"
KINDS = ("char", "word", "bpe")
MAX_VOCAB = 200_000  # the most tokens a tokenizer.json may hold: a guard against damaged files
LISTED = 20  # unknown characters listed in an error


def smallest_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type whose values 0 … vocab_size-1 all fit, little-endian.

    Ids are never negative. The same type is written raw to a prepared tokens.bin (uint8 | uint16 | uint32, see
    prepared.py) and held in memory; whoever makes a torch tensor of them first turns them into int64.
    """
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype).newbyteorder("<")
    raise TallerError(f"un vocabulario de {vocab_size} tokens no cabe en 32 bits; usa uno más pequeño.")


class CharTokenizer:
    kind = "char"

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
                refuse_unknown(missing)
            text = replace_unknown(text, self)
        return [self.index[c] for c in text]

    def replacement(self, ch: str) -> str:
        base = unicodedata.normalize("NFKD", ch)[:1]
        for candidate in (base, base.lower(), base.upper(), " "):
            if candidate in self.index:
                return candidate
        return ""

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @property
    def pieces(self) -> list[str]:  # id -> the text of that token
        return self.chars

    def start_ids(self) -> list[int]:
        """What an empty prompt starts from: a newline (for proverbs, "the start of a refrán")."""
        return [self.index.get("\n", 0)]

    def token_chars(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, characters each token completes): one character per token."""
        ids = self.encode_array(text)
        return ids, np.ones(len(ids), dtype=np.int32)

    def encode_array(self, text: str) -> np.ndarray:
        """A whole corpus -> a numpy array of the smallest integer type that holds the vocabulary."""
        table = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size and (codes.max() >= len(table) or (table[codes] < 0).any()):
            self.encode(text)  # raises with the list of unknown characters
        return table[codes].astype(smallest_dtype(len(self.chars)))

    # --- files ----------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "type": "char", "chars": self.chars}, ensure_ascii=False, indent=1)

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> CharTokenizer:
        d = read_json(path)
        if d.get("type") != cls.kind:
            raise TallerError(f"{path}: tipo de tokenizador desconocido; se esperaba '{cls.kind}'.")
        return cls.from_dict(d, path)

    @classmethod
    def from_dict(cls, d: dict, path) -> CharTokenizer:
        chars = d.get("chars")
        if not isinstance(chars, list) or not chars or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise TallerError(f"{path}: 'chars' debe ser una lista de caracteres sueltos; el fichero está dañado.")
        return cls(chars)


def read_json(path: Path) -> dict:
    """tokenizer.json as a dict, or a clear error."""
    return load_json_object(path, VOCABULARY_LIMIT, f"falta {path}; la carpeta no es una ejecución completa de taller.")


def replace_unknown(text: str, tokenizer) -> str:
    """Each character the tokenizer does not know -> the same letter without its accent, else a space, else nothing."""
    missing = set(tokenizer.unknown(text))
    return "".join(tokenizer.replacement(c) if c in missing else c for c in text) if missing else text


REPLACE_ADVICE = "Quítalos o usa --reemplazar-desconocidos para sustituirlos"
EDIT_ADVICE = "Quítalos o cámbialos por otros que aparezcan en su texto de entrenamiento"  # commands without the flag


def refuse_unknown(missing: list[str], who: str = "el modelo", advice: str = REPLACE_ADVICE) -> None:
    """The one refusal of characters a model never saw, listing them (`who`: which model, when there are two)."""
    shown = " ".join(repr(c) for c in missing[:LISTED])
    raise TallerError(f"el texto tiene caracteres que {who} nunca vio: {shown}. {advice}.")


def check_known(tokenizer, text: str, who: str = "el modelo", advice: str = EDIT_ADVICE) -> None:
    """Refuse `text` (listing them) if it has characters `tokenizer` does not know, instead of dropping them."""
    missing = tokenizer.unknown(text)
    if missing:
        refuse_unknown(missing, who, advice)


# --- words ----------------------------------------------------------------------------------------------------------

WORD = re.compile(r"\w+|\W")  # a run of letters and digits, or any single other character (space, comma, newline…)
UNKNOWN = "\ufffd"  # what <unk> decodes to: one character, the replacement mark �


class WordTokenizer(CharTokenizer):
    """The most frequent words of the training text, each one token; every other word is spelled with characters.

    Vocabulary: the training text's characters (ids 0 … C-1), then its most frequent words of two or more
    characters (C … V-2), then <unk> (V-1) for a character training never saw. Spaces and punctuation are tokens of
    their own, so decode(encode(text)) == text for any text made of known characters.
    """

    kind = "word"

    def __init__(self, chars: list[str], words: list[str]):
        super().__init__(chars)
        self.words = list(words)
        for w in self.words:
            if not (isinstance(w, str) and len(w) >= 2 and WORD.fullmatch(w)):
                raise TallerError(f"tokenizer.json: {w!r} no es una palabra válida; el fichero está dañado.")
        self.word_index = {w: len(self.chars) + i for i, w in enumerate(self.words)}  # word -> id
        if len(self.word_index) != len(self.words):
            raise TallerError("tokenizer.json tiene palabras repetidas en su vocabulario; el fichero está dañado.")
        self.unk_id = len(self.chars) + len(self.words)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> WordTokenizer:
        chars = sorted(set(text))
        n_words = vocab_size - len(chars) - 1
        if n_words < 1:
            raise TallerError(
                f"data.tokenizer_vocab={vocab_size} no alcanza: el vocabulario de palabras incluye los "
                f"{len(chars)} caracteres del texto y <unk>; usa al menos {len(chars) + 2} (por ejemplo 2000)."
            )
        counts = Counter(w for w in WORD.findall(text) if len(w) >= 2)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # most frequent first; ties alphabetical
        return cls(chars, [w for w, _ in ranked[:n_words]])

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.words) + 1

    @property
    def pieces(self) -> list[str]:
        return self.chars + self.words + [UNKNOWN]

    def unknown(self, text: str) -> list[str]:
        """Characters training never saw; not «�», which is <unk> itself (a model's sample may contain it)."""
        return [c for c in super().unknown(text) if c != UNKNOWN]

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """Text -> ids. Unknown characters: 'error' explains, 'replace' substitutes them, 'unk' makes them <unk>."""
        return self.token_chars(text, unknown)[0].tolist()

    def token_chars(self, text: str, unknown: str = "unk") -> tuple[np.ndarray, np.ndarray]:
        """(ids, characters each token covers). A known word is one token; any other word, one token per character."""
        missing = self.unknown(text)
        if missing and unknown == "replace":
            text = replace_unknown(text, self)
        elif missing and unknown != "unk":
            refuse_unknown(missing)
        ids, lengths = [], []
        for w in WORD.findall(text):
            i = self.word_index.get(w)
            if i is not None:
                ids.append(i)
                lengths.append(len(w))
            else:
                ids.extend(self.index.get(c, self.unk_id) for c in w)
                lengths.extend([1] * len(w))
        return np.array(ids, dtype=smallest_dtype(self.vocab_size)), np.array(lengths, dtype=np.int32)

    def encode_array(self, text: str) -> np.ndarray:
        return self.token_chars(text, unknown="unk")[0]

    def decode(self, ids) -> str:
        pieces = self.pieces
        return "".join(pieces[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps(
            {"format": "taller-word-v1", "type": "word", "chars": self.chars, "words": self.words},
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def from_dict(cls, d: dict, path) -> WordTokenizer:
        chars, words = CharTokenizer.from_dict(d, path).chars, d.get("words")
        if not isinstance(words, list) or len(chars) + len(words) + 1 > MAX_VOCAB:
            raise TallerError(
                f"{path}: 'words' debe ser una lista de palabras (como mucho {MAX_VOCAB}); el fichero está dañado."
            )
        return cls(chars, words)


# --- byte-level BPE -------------------------------------------------------------------------------------------------


def byte_symbols() -> dict[str, int]:
    """Byte-level BPE writes each of the 256 bytes as a printable character (GPT-2's table): character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b  # space is Ġ, newline is Ċ
            extra += 1
    return table


BYTES = byte_symbols()


class BpeTokenizer:
    """Byte-level BPE through Hugging Face `tokenizers`: any text encodes (there are no unknown characters)."""

    kind = "bpe"

    def __init__(self, hf):
        self.hf = hf  # a tokenizers.Tokenizer
        self._pieces = None

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BpeTokenizer:
        """Start from the 256 bytes; merge the most frequent neighbouring pair until there are vocab_size tokens."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if not 256 <= vocab_size <= MAX_VOCAB:
            raise TallerError(f"data.tokenizer_vocab={vocab_size}: un BPE de bytes necesita entre 256 y {MAX_VOCAB}.")
        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # words keep their leading space: Ġcasa
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        hf.train_from_iterator([text], trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def token_bytes(self, i: int) -> bytes:
        return bytes(BYTES[c] for c in self.hf.id_to_token(int(i)))

    @property
    def pieces(self) -> list[str]:
        """id -> text; a token that holds only part of a character shows its bytes, e.g. \\xc3."""
        if self._pieces is None:
            texts = [self.token_bytes(i).decode("utf-8", errors="backslashreplace") for i in range(self.vocab_size)]
            self._pieces = [
                "".join(c if c.isprintable() or c in " \n\t" else f"\\x{ord(c):02x}" for c in t) for t in texts
            ]
        return self._pieces

    def unknown(self, text: str) -> list[str]:
        return []  # every text is bytes

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        return self.hf.encode(text).ids if text else []

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids])

    def start_ids(self) -> list[int]:
        return self.encode("\n")[-1:]

    def encode_array(self, text: str) -> np.ndarray:
        return np.array(self.encode(text), dtype=smallest_dtype(self.vocab_size))

    def token_chars(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, characters each token completes). A character split over several tokens counts for the last one."""
        enc = self.hf.encode(text) if text else None
        if enc is None or not enc.ids:
            return np.zeros(0, dtype=smallest_dtype(self.vocab_size)), np.zeros(0, dtype=np.int32)
        starts, ends = np.array(enc.offsets, dtype=np.int64).T  # (N,), (N,) character offsets in `text`
        shared = np.r_[starts[1:] < ends[:-1], False]  # the next token finishes this token's last character
        done = np.maximum.accumulate(ends - shared)  # (N,) characters complete after each token
        return np.array(enc.ids, dtype=smallest_dtype(self.vocab_size)), np.diff(done, prepend=0).astype(np.int32)

    def to_json(self) -> str:
        return json.dumps(
            {"format": "taller-bpe-v1", "type": "bpe", "tokenizer": json.loads(self.hf.to_str())},
            ensure_ascii=False,
            indent=1,
        )

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json().encode("utf-8"))

    @classmethod
    def from_dict(cls, d: dict, path) -> BpeTokenizer:
        """Only a byte-level BPE with nothing else attached is accepted; parsing it runs no code."""
        from tokenizers import Tokenizer

        t = d.get("tokenizer")
        model = t.get("model") if isinstance(t, dict) else None
        vocab = model.get("vocab") if isinstance(model, dict) else None

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise TallerError(f"{path}: {what}; el fichero está dañado o no es de taller.")

        need(isinstance(model, dict) and model.get("type") == "BPE", "se esperaba un modelo BPE")
        need(
            isinstance(vocab, dict) and 256 <= len(vocab) <= MAX_VOCAB,
            f"el vocabulario debe tener de 256 a {MAX_VOCAB} tokens",
        )
        need(all(isinstance(k, str) and k and set(k) <= BYTES.keys() for k in vocab), "hay tokens que no son bytes")
        need(
            sorted(v for v in vocab.values() if isinstance(v, int) and not isinstance(v, bool))
            == list(range(len(vocab))),
            "los números de los tokens deben ser 0, 1, 2… sin huecos",
        )
        need(BYTES.keys() <= vocab.keys(), "faltan bytes en el vocabulario")
        need(isinstance(model.get("merges"), list) and len(model["merges"]) < len(vocab), "'merges' no es válido")
        need(
            all(isinstance(t.get(k), dict) and t[k].get("type") == "ByteLevel" for k in ("pre_tokenizer", "decoder")),
            "se esperaba un BPE de bytes (ByteLevel)",
        )
        need(
            not t.get("normalizer") and not t.get("post_processor") and not t.get("added_tokens"),
            "no se admiten normalizador, postprocesado ni tokens añadidos",
        )
        try:
            hf = Tokenizer.from_str(json.dumps(t))
        except Exception as e:  # the Rust parser's own error: any message, one type
            raise TallerError(
                f"{path}: el tokenizador BPE no se puede leer ({str(e)[:200]}); el fichero está dañado."
            ) from None
        need(hf.get_vocab_size() == len(vocab), "el vocabulario no cuadra")
        return cls(hf)


# --- choosing and loading -------------------------------------------------------------------------------------------

TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BpeTokenizer}
AnyTokenizer = CharTokenizer | WordTokenizer | BpeTokenizer  # each: kind, encode, encode_array, decode, unknown …


def build_tokenizer(data, split):
    """The tokenizer a DataConfig asks for. Word and BPE learn from the training text only."""
    if data.tokenizer == "word":
        return WordTokenizer.train(split.train, data.tokenizer_vocab)
    if data.tokenizer == "bpe":
        return BpeTokenizer.train(split.train, data.tokenizer_vocab)
    return CharTokenizer.from_text(split.train + split.val)  # char: every character of the corpus, as always


def load_tokenizer(path: Path):
    """Any tokenizer.json written by taller (char, word or bpe), checked field by field."""
    return tokenizer_from_dict(read_json(path), path)


def tokenizer_from_dict(d: dict, path):
    kind = d.get("type")
    if kind not in TOKENIZERS:
        raise TallerError(f"{path}: tipo de tokenizador desconocido {str(kind)[:40]!r}; se esperaba char, word o bpe.")
    return TOKENIZERS[kind].from_dict(d, path)
