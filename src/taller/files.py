"""Files every layer writes: atomic writes (a reader sees the old file or the new one, never half) and digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from taller.errors import TallerError


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the new one, never half of it."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise TallerError(f"no pude escribir {path}: {e.strerror or e}; comprueba el espacio libre y los permisos. "
                              "Lo que ya estaba guardado sigue intacto.") from None
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_jsonl(path: Path, keep) -> list[dict]:
    """The JSON objects of a one-object-per-line file for which `keep(obj)` holds; a line cut short by a crash, or
    one that is not an object, is skipped. A missing file has none."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and keep(entry):
            entries.append(entry)
    return entries
