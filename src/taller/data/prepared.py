"""A corpus on disk as tokens: what `taller prepare` writes, and what training reads without loading it.

    DIR/tokens.bin       every token of the corpus one after another, raw little-endian uint8 | uint16 | uint32
    DIR/meta.json        dtype, count, where validation starts, the source file (bytes, mtime, SHA-256)
    DIR/tokenizer.json   the vocabulary

    tokens.bin:  [ train: tokens 0 … split-1 ][ val: split … count-1 ]      (val: the end, at most VAL_MAX tokens)

Training reads each window with one os.pread at its offset (B reads of T+1 tokens per step). Fancy-indexing a
np.memmap instead would map every page it touches into this process, and the resident memory (RSS) grows with the
pages seen, towards the size of the file; with pread the pages stay in the kernel's page cache, shared and
reclaimable, and the process holds only the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from taller.data.batches import Batches
from taller.data.corpora import CORPORA, Corpus
from taller.data.split import Split
from taller.data.tokenizers import load_tokenizer
from taller.errors import TallerError
from taller.files import SMALL_JSON, load_json

FORMAT = "taller-tokens-v1"
META = "meta.json"
TOKENS = "tokens.bin"
VAL_MAX = 250_000  # tokens of validation at most: enough for a steady score, and small enough to hold in memory
DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32}


def is_prepared(corpus: str) -> bool:
    """A folder given as corpus is a prepared one (open_prepared says what is missing if it is not); a built-in
    corpus name (refranes, quijote) stays a name even beside a folder of that name."""
    return corpus not in CORPORA and Path(corpus).expanduser().is_dir()


# --- reading ------------------------------------------------------------------------------------------------------


def read_meta(folder: Path) -> dict:
    """meta.json of a prepared folder, checked against tokens.bin before anything is read."""
    folder = Path(folder).expanduser()
    path = folder / META
    redo = f"vuelve a prepararlo con `taller prepare --corpus TEXTO.txt --out {folder}`"
    try:
        meta = load_json(path, SMALL_JSON, f"está dañado: {redo}")
    except FileNotFoundError:
        raise TallerError(
            f"{folder} es una carpeta pero no un corpus preparado (falta {META}); indica un fichero de "
            f"texto o prepara uno con `taller prepare --corpus TEXTO.txt --out {folder}`."
        ) from None
    ok = (
        isinstance(meta, dict)
        and meta.get("format") == FORMAT
        and meta.get("dtype") in DTYPES
        and all(
            isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) for k in ("count", "split", "vocab_size")
        )
    )
    if not ok:
        raise TallerError(f"{path} no tiene el formato {FORMAT} (format, dtype, count, split, vocab_size); {redo}.")
    if not 0 < meta["split"] < meta["count"] or meta["count"] - meta["split"] < 2:
        raise TallerError(
            f"{path}: split={meta['split']} no deja entrenamiento y validación en {meta['count']} tokens; {redo}."
        )
    tokens = folder / TOKENS
    expected = meta["count"] * np.dtype(DTYPES[meta["dtype"]]).itemsize
    size = tokens.stat().st_size if tokens.exists() else None
    if size != expected:
        found = "no existe" if size is None else f"tiene {size} bytes"
        raise TallerError(
            f"{tokens} {found} y {META} espera {expected} ({meta['count']} × {meta['dtype']}): "
            f"está incompleto o es de otra preparación; {redo}."
        )
    return meta


@dataclass
class TokenFile:
    """Tokens [start, stop) of a tokens.bin, read on demand; len() and read() are all training needs."""

    path: Path
    dtype: np.dtype
    start: int
    stop: int

    def __post_init__(self):
        self.fd = os.open(self.path, os.O_RDONLY)

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, i: int, n: int) -> np.ndarray:
        """Tokens i … i+n-1 of this part: one pread, no mapping."""
        size = self.dtype.itemsize
        data = os.pread(self.fd, n * size, (self.start + i) * size)
        if len(data) != n * size:
            raise TallerError(f"{self.path} se ha acortado mientras se leía; vuelve a prepararlo con `taller prepare`.")
        return np.frombuffer(data, dtype=self.dtype)

    def array(self) -> np.ndarray:
        """The whole part in memory (only for the small validation part)."""
        return self.read(0, len(self)).copy()

    def batches(self, cfg, device: torch.device, batch_size: int, share: tuple[int, int] = (0, 1)) -> DiskBatches:
        if cfg.train.sampler != "random":
            raise TallerError(
                "un corpus preparado se muestrea con ventanas al azar: usa --set sampler=random "
                "(sampler=shuffled necesitaría la lista de todas las ventanas en memoria)."
            )
        return DiskBatches(self, cfg.model.block_size, batch_size, device, seed=cfg.train.seed + 1, share=share)


class DiskBatches(Batches):
    """Random windows as Batches draws them (the same generator, the same starts), read from disk."""

    def __init__(
        self,
        tokens: TokenFile,
        block_size: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        share: tuple[int, int] = (0, 1),
    ):
        if len(tokens) < block_size + 1:
            raise TallerError(
                f"el corpus preparado tiene {len(tokens)} tokens de entrenamiento, menos que el contexto "
                f"({block_size}) + 1; usa un texto más largo o un block_size menor."
            )
        self.ids = tokens  # len() only: never loaded
        self.block_size, self.batch_size, self.device = block_size, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.share = share

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([self.ids.read(s, self.block_size + 1) for s in starts.tolist()])  # (B, T+1)
        windows = torch.from_numpy(rows.astype(np.int64))
        x, y = windows[:, :-1], windows[:, 1:]  # (B, T) inputs and their next tokens
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def open_prepared(data, tokenizer_path: Path | None = None):
    """A prepared folder as training sees it: (corpus, split, tokenizer, train TokenFile, val array)."""
    folder = Path(data.corpus).expanduser()
    meta = read_meta(folder)
    if data.start_marker or data.end_marker or data.lowercase or data.join_lines or data.max_chars:
        raise TallerError(
            "start_marker, end_marker, lowercase, join_lines y max_chars no se aplican a un corpus ya "
            "preparado: quítalos, o recorta el texto antes de `taller prepare`."
        )
    tokenizer = load_tokenizer(tokenizer_path or folder / "tokenizer.json")
    if data.tokenizer not in ("char", tokenizer.kind):  # "char" is also the default: the folder's own is taken
        raise TallerError(
            f"{folder} ya está tokenizado ({tokenizer.kind}): quita --tokenizer, o prepara el texto con "
            f"`taller prepare --tokenizer-file runs/…/tokenizer.json` de una ejecución {data.tokenizer}."
        )
    data.tokenizer = tokenizer.kind  # config.toml says what was really used
    if tokenizer.kind != "char":
        data.tokenizer_vocab = tokenizer.vocab_size
    if tokenizer.vocab_size != meta["vocab_size"]:
        raise TallerError(
            f"el vocabulario ({tokenizer.vocab_size} tokens) no es el de {folder} "
            f"({meta['vocab_size']}): la ejecución se entrenó con otra preparación."
        )
    dtype = np.dtype(DTYPES[meta["dtype"]]).newbyteorder("<")
    train = TokenFile(folder / TOKENS, dtype, 0, meta["split"])
    val = TokenFile(folder / TOKENS, dtype, meta["split"], meta["count"]).array()
    corpus = Corpus(name=folder.name, text="", source=str(folder), lines=meta.get("lines") is True)
    return corpus, Split(train="", val="", kind="prepared"), tokenizer, train, val
