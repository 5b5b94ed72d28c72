"""taller compress / decompress: a model's bits per character made into a file.

The model reads the text one token at a time (start/step, as when it writes) and gives the next token's
probabilities; the arithmetic coder (taller/arithmetic.py) spends −log2 p bits on the token that comes. The
decoder runs the same model on the tokens it has decoded so far, so it has the same probabilities at every step.

"The same" must mean bit for bit. So both sides
  - turn probabilities into integer frequencies (each ≥ 1, total ≤ 2^24) with the same float32 operations;
  - make exactly the same calls to the model with tensors of the same shape: the text is cut into up to 64 rows
    read side by side (a batch), each from the start of a line, and a finished row keeps reading a filler token;
  - run PyTorch on one thread (a different number of threads may add numbers in a different order); threads.limited
    sets it from the main thread only, so a compress called from another thread relies on the CRC below.
A CRC-32 of the text in the header catches any disagreement (another PyTorch, another CPU) instead of a wrong text,
and a CRC-32 of each block of steps (about 64 Ki tokens) stops the decoder at the first block that disagrees: a
damaged or crafted file costs one block's work, not the whole length its header claims. The header's length is
checked first against what the coder's bits can hold, and the text is written only once every CRC matched.

The file (.tllr):  "TLLR"  version (1 byte)  the run's identity (SHA-256 of its tokenizer and weights, 32 bytes)
                   tokens (8 bytes)  rows (2 bytes)  CRC-32 of the text (4 bytes)
                   the blocks' CRC-32s (4 bytes each; version 2 on)  the coder's bits.
Version 3 is `--cm` (apps/compress_cm.py): context mixing with the run's network as one of its inputs; its identity
also covers the CM's training text (the run's own training split), and it counts characters, not tokens.
"""

from __future__ import annotations

import bisect
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from taller.apps import compress_cm
from taller.apps.compress_cm import damaged
from taller.arithmetic import STATE_BITS, TOTAL_BITS, Decoder, Encoder, cumulative
from taller.errors import TallerError
from taller.files import MB, atomic_write, megabytes, read_bounded
from taller.models.cm.codec import alphabet
from taller.runs.folder import Run, check_output, run_identity, run_split
from taller.sampling import Reader
from taller.text import thousands
from taller.threads import limited

MAGIC = b"TLLR"
VERSION = 2  # 1: without the blocks' CRCs (still read)
CM_VERSION = 3  # --cm: the CM with the run's network inside it
HEADER = struct.Struct("<4sB32sQHI")  # magic, version, identity, tokens, rows, CRC-32
MAX_ROWS = 64  # rows read side by side
ROW_MIN = 1024  # tokens per row at least (a row starts without context: a few bits more)
TEXT_LIMIT = 16 * MB  # bytes of text to compress (about 15 minutes at 20,000 characters per second)
FILLER = 0  # what a finished row keeps reading, on both sides
BLOCK_TOKENS = 65536  # tokens (all rows together) between two checks of the decoder
CRC = struct.Struct("<I")


@dataclass
class Compressed:
    data: bytes  # the whole .tllr file
    tokens: int
    chars: int
    ideal_bits: float  # Σ −log2 p of the model's own (unquantised) probabilities: what its bits/char promise

    @property
    def bits_per_char(self) -> float:
        return 8 * len(self.data) / max(1, self.chars)


# --- the model, read row by row ---------------------------------------------------------------------------------------


def probabilities(reader: Reader) -> torch.Tensor:
    return F.softmax(reader.logits.float(), dim=-1)  # (S, V) float32


def start_reading(run: Run, rows: int) -> Reader:
    """The model ready to read `rows` texts side by side, each from the start of a line."""
    run.model.eval()
    return Reader(run.model, torch.tensor([run.tokenizer.start_ids()] * rows))


def layout(n: int) -> tuple[int, int]:
    """How n tokens are cut: (rows, tokens per row); the last row may be shorter."""
    if n == 0:
        return 0, 0
    rows = min(MAX_ROWS, max(1, n // ROW_MIN))
    length = math.ceil(n / rows)
    return math.ceil(n / length), length


def block_steps(rows: int) -> int:
    """Steps in a block: about BLOCK_TOKENS tokens over all the rows."""
    return max(1, BLOCK_TOKENS // max(1, rows))


def blocks(n: int) -> int:
    rows, length = layout(n)
    return math.ceil(length / block_steps(rows))


def block_crc(grid: torch.Tensor) -> int:
    """CRC-32 of a block of the (rows, steps) grid of tokens, fillers included, as little-endian int32."""
    return zlib.crc32(grid.to(torch.int32).contiguous().numpy().astype("<i4").tobytes())


def most_tokens(payload_bytes: int, vocab_size: int) -> float:
    """The most tokens `payload_bytes` of the coder's bits can hold: each token costs at least −log2 of the highest
    probability a frequency table can give (every other token keeps a frequency ≥ 1), and the coder's last interval
    holds at most STATE_BITS bits more."""
    lowest = -math.log2(1 - (vocab_size - 1) / (1 << TOTAL_BITS))  # bits per token at least
    return math.inf if lowest <= 0 else (8 * payload_bytes + 2 * STATE_BITS) / lowest


# --- both directions ------------------------------------------------------------------------------------------------


def encode_tokens(run: Run, ids: list[int]) -> tuple[bytes, int, float, bytes]:
    """The coder's bytes for `ids`, the rows, the ideal bits and the blocks' CRCs."""
    rows, length = layout(len(ids))
    if rows == 0:
        return b"", 0, 0.0, b""
    grid = torch.full((rows * length,), FILLER, dtype=torch.long)
    grid[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    grid = grid.view(rows, length)  # (S, L)
    live = [min(length, len(ids) - r * length) for r in range(rows)]  # tokens in each row
    encoder, ideal = Encoder(), 0.0
    with limited(1), torch.inference_mode():  # one thread: both sides add up in the same order
        reader = start_reading(run, rows)
        for t in range(length):
            probs = probabilities(reader)
            cum, tokens = cumulative(probs), grid[:, t]
            lows = cum.gather(1, tokens[:, None])[:, 0].tolist()
            highs = cum.gather(1, tokens[:, None] + 1)[:, 0].tolist()
            totals = cum[:, -1].tolist()
            p = probs.gather(1, tokens[:, None])[:, 0].double().clamp(min=1e-300).log2().tolist()
            for r in range(rows):
                if t < live[r]:
                    encoder.encode(lows[r], highs[r] - lows[r], totals[r])
                    ideal -= p[r]
            reader.feed(tokens.contiguous())
    step = block_steps(rows)
    crcs = b"".join(CRC.pack(block_crc(grid[:, t : t + step])) for t in range(0, length, step))
    return encoder.finish(), rows, ideal, crcs


def decode_tokens(run: Run, data: bytes, n: int, rows: int, crcs: list[int] | None, name: str) -> list[int]:
    """The n tokens written in `data`, checked block by block against `crcs` (None: a version-1 file)."""
    if n == 0:
        return []
    length = layout(n)[1]
    live = [min(length, n - r * length) for r in range(rows)]
    decoder, step = Decoder(data), block_steps(rows)
    grid = torch.full((rows, length), FILLER, dtype=torch.int32)  # (S, L): 4 bytes a token, whatever the header says
    with limited(1), torch.inference_mode():  # one thread: both sides add up in the same order
        reader = start_reading(run, rows)
        for t in range(length):
            cum = cumulative(probabilities(reader)).tolist()  # (S, V+1)
            tokens = [FILLER] * rows
            for r in range(rows):
                if t < live[r]:
                    row = cum[r]
                    j = bisect.bisect_right(row, decoder.target(row[-1])) - 1  # the slice that holds the number
                    decoder.consume(row[j], row[j + 1] - row[j], row[-1])
                    tokens[r] = j
            if decoder.exhausted:
                raise damaged(name, "se acabaron los datos antes del texto (está cortado)")
            grid[:, t] = torch.tensor(tokens, dtype=torch.int32)
            if crcs is not None and ((t + 1) % step == 0 or t + 1 == length):
                b = t // step
                if block_crc(grid[:, b * step : t + 1]) != crcs[b]:
                    raise damaged(
                        name,
                        f"el bloque {thousands(b + 1)} de {thousands(len(crcs))} no coincide con su "
                        "CRC (el resto no se descodifica)",
                    )
            reader.feed(torch.tensor(tokens, dtype=torch.long))
    return grid.view(-1)[:n].tolist()  # rows one after another: the text's order


def cm_training_text(run: Run) -> str:
    return run_split(run.config, "comprimir con --cm (el CM cuenta el texto de entrenamiento de la ejecución)").train


def compress_cm_text(run: Run, text: str) -> Compressed:
    """`text` as a version-3 .tllr file's bytes: any text (a character the network lacks goes by the CM's escape)."""
    compress_cm.check_network(run)
    train = cm_training_text(run)
    payload, rows, ideal, crcs = compress_cm.encode(train, text, run)
    header = HEADER.pack(MAGIC, CM_VERSION, compress_cm.identity(run, train), len(text), rows, text_crc(text))
    return Compressed(header + b"".join(CRC.pack(c) for c in crcs) + payload, len(text), len(text), ideal)


def text_crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def compress_text(run: Run, text: str, name: str = "el texto", cm: bool = False) -> Compressed:
    """`text` as a .tllr file's bytes: only texts the run's tokenizer writes back exactly (with cm, any text)."""
    if cm:
        return compress_cm_text(run, text)
    missing = run.tokenizer.unknown(text)
    if missing:
        shown = " ".join(repr(c) for c in missing[:8])
        raise TallerError(
            f"{name} tiene caracteres que la ejecución {run.dir} nunca vio ({shown}): su modelo no "
            "puede escribirlos; comprime con una ejecución entrenada con un texto que los tenga."
        )
    ids = run.tokenizer.encode(text)
    if run.tokenizer.decode(ids) != text:
        raise TallerError(
            f"el tokenizador de {run.dir} no reproduce {name} exactamente, así que no puede comprimirlo "
            "sin pérdidas; usa una ejecución de caracteres o de BPE."
        )
    payload, rows, ideal, crcs = encode_tokens(run, ids)
    header = HEADER.pack(MAGIC, VERSION, bytes.fromhex(run_identity(run)), len(ids), rows, text_crc(text))
    return Compressed(header + crcs + payload, len(ids), len(text), ideal)


def other_run(name: str, run: Run) -> TallerError:
    return TallerError(
        f"{name} lo comprimió otra ejecución (o {run.dir} ha cambiado desde entonces): "
        "descomprímelo con la misma ejecución que lo comprimió."
    )


def impossible(name: str, n: int, payload: int) -> TallerError:
    return TallerError(
        f"{name}: la cabecera dice {thousands(n)} tokens y sus {thousands(max(0, payload))} bytes "
        "de datos no pueden contener tantos; el fichero está dañado o manipulado."
    )


def decompress_cm_bytes(run: Run, data: bytes, header: tuple, name: str) -> str:
    """A version-3 file: the CM with the run's network, given the run's training text."""
    _, _, identity, n, rows, crc = header
    compress_cm.check_network(run)
    train = cm_training_text(run)
    if identity != compress_cm.identity(run, train):
        raise other_run(name, run)
    if n > TEXT_LIMIT or rows != compress_cm.layout(n, True)[0]:
        raise TallerError(f"{name}: la cabecera dice {thousands(n)} caracteres en {rows} filas; está dañado.")
    table = CRC.size * compress_cm.blocks(n)
    payload = len(data) - HEADER.size - table
    if payload < 0 or n > most_tokens(payload, len(alphabet(train)) + 1):
        raise impossible(name, n, payload)
    crcs = [c for (c,) in CRC.iter_unpack(data[HEADER.size : HEADER.size + table])]
    text = compress_cm.decode(train, data[HEADER.size + table :], n, run, crcs, name)
    if text_crc(text) != crc:
        raise damaged(name, "el texto descomprimido no coincide con el original (CRC distinto)")
    return text


def decompress_bytes(run: Run, data: bytes, name: str = "el fichero") -> str:
    header = read_header(data, name)
    magic, version, identity, n, rows, crc = header
    if version == CM_VERSION:
        return decompress_cm_bytes(run, data, header, name)
    if identity != bytes.fromhex(run_identity(run)):
        raise other_run(name, run)
    if n > TEXT_LIMIT or rows != layout(n)[0]:
        raise TallerError(
            f"{name}: la cabecera dice {thousands(n)} tokens en {rows} filas, lo que es imposible; "
            "el fichero está dañado."
        )
    table = CRC.size * blocks(n) if version >= 2 else 0
    payload = len(data) - HEADER.size - table
    if payload < 0 or n > most_tokens(payload, run.tokenizer.vocab_size):
        raise impossible(name, n, payload)
    crcs = [c for (c,) in CRC.iter_unpack(data[HEADER.size : HEADER.size + table])] if version >= 2 else None
    text = run.tokenizer.decode(decode_tokens(run, data[HEADER.size + table :], n, rows, crcs, name))
    if text_crc(text) != crc:
        raise TallerError(
            f"{name}: el texto descomprimido no coincide con el original (CRC distinto): el fichero "
            "está dañado, o se comprimió con otra versión de PyTorch u otro tipo de CPU."
        )
    return text


def read_header(data: bytes, name: str) -> tuple:
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise TallerError(f"{name} no es un fichero comprimido por taller (.tllr); comprime uno con `taller compress`.")
    fields = HEADER.unpack_from(data)
    if fields[1] not in (1, VERSION, CM_VERSION):
        raise TallerError(
            f"{name} usa la versión {fields[1]} del formato .tllr y este taller lee hasta la {CM_VERSION}; "
            "actualiza taller o vuelve a comprimir."
        )
    return fields


# --- files ----------------------------------------------------------------------------------------------------------


def compress_file(run: Run, path: Path, out: Path, force: bool = False, cm: bool = False) -> Compressed:
    check_output(out, force, "-o")
    try:
        raw = read_bounded(
            path,
            TEXT_LIMIT,
            "indica un fichero de texto UTF-8",
            f"taller comprime ficheros de hasta {megabytes(TEXT_LIMIT)}; pártelo en trozos",
        )
    except FileNotFoundError:
        raise TallerError(f"no existe el fichero {path}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TallerError(f"{path} no es texto UTF-8 (byte {e.start}); taller comprime texto.") from None
    result = compress_text(run, text, str(path), cm)
    atomic_write(out, result.data)
    return result


def decompress_file(run: Run, path: Path, out: Path, force: bool = False) -> str:
    check_output(out, force, "-o")
    try:
        data = read_bounded(path, TEXT_LIMIT + HEADER.size + CRC.size * blocks(TEXT_LIMIT), "indica un fichero .tllr")
    except FileNotFoundError:
        raise TallerError(f"no existe el fichero {path}.") from None
    text = decompress_bytes(run, data, str(path))
    atomic_write(out, text.encode("utf-8"))
    return text
