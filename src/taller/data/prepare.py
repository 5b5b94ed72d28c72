"""`taller prepare`: a text file of any size → a folder of tokens that training reads from disk (see prepared.py).

The text is never read whole: it streams through in chunks of CHUNK bytes, twice.

    pass 1  chunk → code points → count them            → the character vocabulary (skipped when a tokenizer is given)
    pass 2  chunk → tokenizer.encode → append to tokens.bin, and hash the source bytes on the way

Memory stays at a few chunks whatever the size of the file. The tokenizer is anything with `vocab_size`,
`encode(str) -> list[int]` (or the faster `encode_array(str) -> np.ndarray`) and `save(path)`: the char tokenizer
today, BPE tomorrow.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from taller.data.corpora import BINARY_CHECK, MAX_LINE, MIN_LINES, TEXT_FILE
from taller.data.prepared import FORMAT, META, TOKENS, VAL_MAX
from taller.data.tokenizers import LISTED, AnyTokenizer, CharTokenizer, smallest_dtype
from taller.errors import TallerError
from taller.files import atomic_write, open_regular, reason, regular_file
from taller.text import number, thousands

CHUNK = 8 * 1024 * 1024  # bytes read at a time
LINE_CHECK = 64 * 1024 * 1024  # characters inspected to tell a corpus of lines from prose


def text_chunks(path: Path, hasher=None, bar=None):
    """The UTF-8 text of `path`, chunk by chunk, cleaned as read_text_file cleans a whole file (no BOM, \\n
    newlines)."""
    try:
        yield from _text_chunks(path, hasher, bar)
    except OSError as e:  # unreadable, or gone while reading: the source's fault, not the output's
        raise TallerError(f"no pude leer {path}: {reason(e)}; comprueba que existe y que puedes leerlo.") from None


def _text_chunks(path: Path, hasher, bar):
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, carry = 0, ""
    with open_regular(path, TEXT_FILE) as f:
        while True:
            data = f.read(CHUNK)
            if offset == 0 and b"\x00" in data[:BINARY_CHECK]:
                raise TallerError(f"{path} parece un fichero binario, no texto; {TEXT_FILE}.")
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                raise TallerError(
                    f"{path} no es texto UTF-8 (cerca del byte {offset + e.start}); conviértelo, p. ej. con "
                    f"`iconv -f latin1 -t utf-8 {path.name} > nuevo.txt`."
                ) from None
            if hasher is not None:
                hasher.update(data)
            if bar is not None:
                bar.update(len(data))
            if offset == 0:
                text = text.lstrip("\ufeff")
            offset += len(data)
            text = carry + text
            carry = text[-1:] if data and text.endswith("\r") else ""  # a \r\n may straddle two chunks
            text = (text[:-1] if carry else text).replace("\r\n", "\n")
            if text:
                yield text
            if not data:
                return


class LineShape:
    """corpora.looks_like_lines, fed chunk by chunk: at least MIN_LINES lines, none empty (but at the end), none blank,
    none longer than MAX_LINE characters. A corpus of lines (proverbs, names) is sampled a line at a time."""

    def __init__(self):
        self.lines, self.length, self.visible, self.empty_run, self.ok = 0, 0, False, 0, True

    def feed(self, text: str) -> None:
        *finished, last = text.split("\n")
        for part in finished:
            self._extend(part)
            self._end_line()
        self._extend(last)

    def _extend(self, part: str) -> None:
        self.length += len(part)
        self.visible = self.visible or bool(part.strip())

    def _end_line(self) -> None:
        if self.length == 0:
            self.empty_run += 1  # an empty line is fine only if nothing but empty lines follows
        else:
            self.ok = self.ok and self.visible and self.length <= MAX_LINE and self.empty_run == 0
            self.lines += 1
        self.length, self.visible = 0, False

    def result(self) -> bool:
        if self.length:
            self._end_line()
        return self.ok and self.lines >= MIN_LINES


def char_vocabulary(path: Path, bar=None) -> list[str]:
    """Pass 1: every distinct character of the file, sorted (as CharTokenizer.from_text sorts them)."""
    seen = np.zeros(0x110000, dtype=bool)  # one flag per Unicode code point
    for text in text_chunks(path, bar=bar):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n,)
        counts = np.bincount(codes)  # (max code + 1,)
        seen[: len(counts)] |= counts > 0
    return [chr(c) for c in np.flatnonzero(seen)]


def encode_chunk(tokenizer: AnyTokenizer, text: str) -> np.ndarray:
    return tokenizer.encode_array(text)


def check_source(path: Path) -> int:
    """The size of the text file `path`, refusing a missing or empty one and anything but a regular file."""
    try:
        size = regular_file(path, TEXT_FILE).st_size
    except FileNotFoundError:
        raise TallerError(f"no existe el fichero {path}; comprueba la ruta.") from None
    if size == 0:
        raise TallerError(f"{path} está vacío; el corpus necesita texto con el que aprender.")
    return size


@dataclass
class Encoded:
    """What pass 2 learnt on its way through the text."""

    count: int  # tokens written
    characters: int  # characters read
    lines: bool  # a corpus of short lines (LineShape, judged on its first LINE_CHECK characters)
    source_sha256: str  # of the source's bytes
    tokens_sha256: str  # of tokens.bin
    val: int = 0  # the last `val` tokens are validation


def check_out_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TallerError(
            f"{out} ya existe y no está vacía; bórrala o elige otra carpeta con --out. No se ha tocado nada."
        )


def make_out_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TallerError(f"no puedo crear {out}: {reason(e)}; elige otra carpeta con --out.") from None


def char_tokenizer(source: Path, bar) -> CharTokenizer:
    """Pass 1: a character tokenizer for every character of `source`."""
    chars = char_vocabulary(source, bar=bar)
    if not "".join(chars).strip():
        raise TallerError(f"{source} sólo tiene espacios en blanco; el corpus necesita texto con el que aprender.")
    return CharTokenizer(chars)


def encode_into(f, source: Path, tokenizer, dtype: np.dtype, bar) -> Encoded:
    """Pass 2: every chunk of `source` encoded and appended to the open file `f`, hashing both on the way."""
    hasher, tokens_hasher = hashlib.sha256(), hashlib.sha256()
    count = characters = 0
    shape = LineShape()
    for text in text_chunks(source, hasher=hasher, bar=bar):
        try:
            ids = encode_chunk(tokenizer, text).astype(dtype)  # (n,) little-endian
        except TallerError:  # a given vocabulary that lacks characters of this text
            missing = " ".join(repr(c) for c in tokenizer.unknown(text)[:LISTED])
            raise TallerError(
                f"{source} tiene caracteres que no están en el vocabulario dado: {missing}; "
                "prepara sin --tokenizer-file para sacar el vocabulario del texto."
            ) from None
        data = ids.tobytes()
        f.write(data)
        tokens_hasher.update(data)
        count, characters = count + len(ids), characters + len(text)
        if characters <= LINE_CHECK:  # a corpus is judged by its beginning: ~1 s, however large
            shape.feed(text)
    return Encoded(count, characters, shape.result(), hasher.hexdigest(), tokens_hasher.hexdigest())


def validation_tokens(source: Path, count: int, val_fraction: float, val_max: int) -> int:
    """How many of the last tokens are held out for validation; at least 2 must be left to train on."""
    n_val = min(val_max, max(2, round(count * val_fraction)))
    if count - n_val < 2:
        raise TallerError(
            f"{source} tiene sólo {count} tokens: no alcanza para entrenar y validar; usa un texto más largo."
        )
    return n_val


def write_tokens(
    source: Path, out: Path, tokenizer, dtype: np.dtype, bar, val_fraction: float, val_max: int
) -> Encoded:
    """out/tokens.bin, written to a hidden file first and renamed once complete: it never exists half written."""
    tmp = out / f".{TOKENS}.tmp"
    try:
        with open(tmp, "wb") as f, bar("Tokens") as b:
            encoded = encode_into(f, source, tokenizer, dtype, b)
            f.flush()
            os.fsync(f.fileno())
        encoded.val = validation_tokens(source, encoded.count, val_fraction, val_max)
        os.replace(tmp, out / TOKENS)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise TallerError(f"no pude escribir {out / TOKENS}: {reason(e)}; comprueba el espacio libre.") from None
        raise
    return encoded


def prepared_meta(
    source: Path, size: int, tokenizer, dtype: np.dtype, encoded: Encoded, val_rule: str, seconds: float
) -> dict:
    """meta.json: the format, where validation starts, and the source it came from."""
    count = encoded.count
    return {
        "format": FORMAT,
        "tokens": TOKENS,
        "dtype": dtype.name,
        "count": count,
        "split": count - encoded.val,
        "val_tokens": encoded.val,
        "val_rule": val_rule,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer": tokenizer.kind,
        "characters": encoded.characters,
        "lines": encoded.lines,  # its first 64 M characters are short lines: samples stop at a line's end
        "tokens_sha256": encoded.tokens_sha256,
        "source": {
            "path": str(source.resolve()),
            "bytes": size,
            "mtime": source.stat().st_mtime,
            "sha256": encoded.source_sha256,
        },
        "seconds": round(seconds, 2),
    }


def prepare(
    corpus: str | Path,
    out: str | Path,
    *,
    tokenizer=None,
    val_fraction: float = 0.1,
    val_max: int = VAL_MAX,
    progress: bool = True,
    log=print,
) -> dict:
    """Write the prepared folder `out` for the text file `corpus`; return its metadata."""
    source, out = Path(corpus).expanduser(), Path(out).expanduser()
    size = check_source(source)
    check_out_folder(out)
    started = time.perf_counter()

    def bar(desc):
        return tqdm(total=size, unit="B", unit_scale=True, desc=desc, disable=not progress, mininterval=1.0)

    if tokenizer is None:
        with bar("Vocabulario") as b:
            tokenizer = char_tokenizer(source, b)
    dtype = smallest_dtype(tokenizer.vocab_size)
    make_out_folder(out)
    encoded = write_tokens(source, out, tokenizer, dtype, bar, val_fraction, val_max)
    seconds = time.perf_counter() - started
    val_rule = f"los últimos min({val_fraction:g} × count, {val_max}) tokens"
    meta = prepared_meta(source, size, tokenizer, dtype, encoded, val_rule, seconds)
    tokenizer.save(out / "tokenizer.json")
    atomic_write(
        out / META, json.dumps(meta, indent=1, ensure_ascii=False).encode("utf-8")
    )  # last: the folder is complete
    log(
        f"Preparado {out}: {thousands(encoded.count)} tokens ({dtype.name}, vocabulario de {tokenizer.vocab_size}), "
        f"{thousands(encoded.val)} de validación al final · {number(size / 1e6, 1)} MB en {number(seconds, 1)} s "
        f"({number(size / 1e6 / max(seconds, 1e-9), 1)} MB/s)."
    )
    return meta
