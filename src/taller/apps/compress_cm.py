"""taller compress --cm: context mixing (models/cm/) with a network inside it, both sides of the coder.

The network reads the text's rows side by side, in one batch per step, as plain `taller compress` does; the CM
reads the same rows interleaved in a fixed order: at step t row 0 predicts its t-th character, then row 1, …, each
from its own history (its last characters, its word, its running match), while the counts, the mixer and the APM are
shared and learn row after row. The network's distribution over the next character is one more input of the CM's
mixer, which learns online how far to trust it. The decoder makes the same calls with the same shapes, so it has
the same numbers (one thread, the same machine; the CRCs catch anything else).

A character the network's tokenizer lacks is read by the network as FILLER (the CM codes it with its escape), so
any text can be coded. Without a network (run None) the CM reads the text as one row.
"""

from __future__ import annotations

import hashlib
import math
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from taller.arithmetic import Decoder, Encoder
from taller.errors import TallerError
from taller.models.cm.codec import Coding
from taller.models.cm.predictor import DEFAULT, Settings
from taller.runs.folder import Run, run_identity
from taller.sampling import Reader
from taller.text import thousands
from taller.threads import limited

MAX_ROWS = 64  # rows read side by side (the network's batch)
ROW_MIN = 1024  # characters per row at least
FILLER = 0  # what a finished row, or a character the network lacks, feeds the network
FLOOR = 1e-5  # added to the network's probabilities: a character it never gives still costs finite bits
BLOCK_CHARS = 65536  # characters (all rows together) between two checks of the decoder
FORMAT = b"taller-cm-2"  # what the identity of a file says of the CM (a change to models/cm/ changes it)


def damaged(name: str, why: str) -> TallerError:
    return TallerError(
        f"{name} está dañado: {why}; no escribo nada. Vuelve a comprimir el texto original con `taller compress`."
    )


def identity(run: Run, train: str) -> bytes:
    """What makes a CM file's probabilities: the run's network, the CM's training text and the CM's format."""
    h = hashlib.sha256(FORMAT)
    h.update(bytes.fromhex(run_identity(run)))
    h.update(hashlib.sha256(train.encode("utf-8")).digest())
    return h.digest()


def block_steps(rows: int) -> int:
    """Steps in a block: about BLOCK_CHARS characters over all the rows."""
    return max(1, BLOCK_CHARS // max(1, rows))


def blocks(n: int, network: bool = True) -> int:
    rows, length = layout(n, network)
    return math.ceil(length / block_steps(rows)) if rows else 0


def block_crc(grid: list[list[str]], start: int, end: int) -> int:
    """CRC-32 of steps start … end-1 of the (rows, steps) grid of characters, step by step, UTF-8."""
    return zlib.crc32("".join(row[t] for t in range(start, end) for row in grid).encode("utf-8"))


def layout(n: int, network: bool) -> tuple[int, int]:
    """How n characters are cut: (rows, characters per row); the last row may be shorter. One row without a
    network (the CM alone loses a little at each row's start, and gains nothing from a batch)."""
    if n == 0:
        return 0, 0
    rows = min(MAX_ROWS, max(1, n // ROW_MIN)) if network else 1
    length = math.ceil(n / rows)
    return math.ceil(n / length), length


def check_network(run: Run) -> None:
    """The CM reads characters: the run's network must read one character per token."""
    if run.tokenizer.kind != "char":
        raise TallerError(
            f"--cm necesita una ejecución de caracteres y {run.dir} usa el tokenizador {run.tokenizer.kind}; "
            "entrena una con `--set tokenizer=char` o comprime sin --cm."
        )


class Network:
    """A char-level run read row by row: its next-character distributions in the CM's alphabet."""

    def __init__(self, run: Run, coding: Coding, rows: int):
        check_network(run)
        tokenizer = run.tokenizer
        pieces = tokenizer.pieces
        self.ids = {c: i for i, c in enumerate(pieces)}  # character -> the network's token
        zero = len(pieces)  # a column of zeros: a CM symbol the network lacks
        self.source = np.array([self.ids.get(c, zero) for c in coding.chars] + [zero])  # (V,) CM symbol -> token
        self.outside = np.array([i for i, c in enumerate(pieces) if c not in coding.index], np.intp)  # -> escape
        self.escape = coding.escape
        run.model.eval()
        self.reader = Reader(run.model, torch.tensor([tokenizer.start_ids()] * rows))

    def predict(self) -> np.ndarray:
        """(rows, V) the next character's distribution in each row, in the CM's alphabet (gathered, not multiplied:
        the same numbers whatever BLAS does)."""
        probs = F.softmax(self.reader.logits.float(), dim=-1).double().numpy()  # (rows, Vnet)
        probs = np.concatenate([probs, np.zeros((len(probs), 1))], axis=1)
        mapped = probs[:, self.source]  # (rows, V)
        mapped[:, self.escape] = probs[:, self.outside].sum(axis=1)
        return mapped + FLOOR

    def feed(self, chars: list[str]) -> None:
        self.reader.feed(torch.tensor([self.ids.get(c, FILLER) for c in chars], dtype=torch.long))


def grid_rows(n: int, rows: int, length: int) -> list[int]:
    return [min(length, n - r * length) for r in range(rows)]  # characters in each row


def encode(train: str, text: str, run: Run | None, settings: Settings = DEFAULT) -> tuple[bytes, int, float, list[int]]:
    """`text` coded given `train` (and the run's network) -> (the coder's bytes, rows, the ideal bits, the blocks'
    CRC-32s)."""
    rows, length = layout(len(text), run is not None)
    live = grid_rows(len(text), rows, length)
    coding = Coding(train, live, settings, extra=1 if run else 0)
    predictor, encoder, ideal = coding.predictor, Encoder(), 0.0
    symbols = coding.symbols(text).tolist()
    with limited(1), torch.inference_mode():  # one thread: both sides add up in the same order
        network = Network(run, coding, rows) if run and rows else None
        for t in range(length):
            extra = network.predict() if network else None
            chars = [text[r * length + t] if t < live[r] else "" for r in range(rows)]
            for r in range(rows):
                if t < live[r]:
                    symbol = symbols[r * length + t]
                    p = predictor.predict(r, None if extra is None else extra[r : r + 1])
                    ideal += coding.write(encoder, p, symbol, chars[r])
                    predictor.learn(symbol, r)
            if network:
                network.feed(chars)
    grid = [[text[r * length + t] if t < live[r] else "" for t in range(length)] for r in range(rows)]
    step = block_steps(rows)
    crcs = [block_crc(grid, t, min(length, t + step)) for t in range(0, length, step)]
    return encoder.finish(), rows, ideal, crcs


def decode(
    train: str,
    data: bytes,
    n: int,
    run: Run | None,
    crcs: list[int] | None = None,
    name: str = "el fichero",
    settings: Settings = DEFAULT,
) -> str:
    """The n characters coded in `data` given `train` and the run, checked block by block against `crcs` (a
    damaged `data` stops at the first block that disagrees; without crcs it gives a wrong text: the caller checks)."""
    rows, length = layout(n, run is not None)
    live = grid_rows(n, rows, length)
    coding = Coding(train, live, settings, extra=1 if run else 0)
    predictor, decoder, step = coding.predictor, Decoder(data), block_steps(rows)
    grid = [[""] * length for _ in range(rows)]
    with limited(1), torch.inference_mode():
        network = Network(run, coding, rows) if run and rows else None
        for t in range(length):
            extra = network.predict() if network else None
            for r in range(rows):
                if t < live[r]:
                    p = predictor.predict(r, None if extra is None else extra[r : r + 1])
                    symbol, grid[r][t] = coding.read(decoder, p)
                    predictor.learn(symbol, r)
            if decoder.exhausted:
                raise damaged(name, "se acabaron los datos antes del texto (está cortado)")
            if crcs is not None and ((t + 1) % step == 0 or t + 1 == length):
                b = t // step
                if block_crc(grid, b * step, t + 1) != crcs[b]:
                    raise damaged(
                        name,
                        f"el bloque {thousands(b + 1)} de {thousands(len(crcs))} no coincide con su "
                        "CRC (el resto no se descodifica)",
                    )
            if network:
                network.feed([grid[r][t] for r in range(rows)])
    return "".join("".join(row) for row in grid)
