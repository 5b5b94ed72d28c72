"""metrics.jsonl: one JSON object per logged step (train loss, val loss, bits per character, speed); health.jsonl
(one per checkup of the network's health, inspect/health.py) is written and cut back the same way."""

from __future__ import annotations

import json
import os
from pathlib import Path

from taller.errors import TallerError
from taller.files import atomic_write, read_jsonl, reason

METRICS = "metrics.jsonl"


def append_metrics(run_dir: Path, entry: dict, name: str = METRICS) -> None:
    """One line more in metrics.jsonl (or `name`). A full disk is a message; the last checkpoint stays intact."""
    path = Path(run_dir) / name
    try:
        # private, as every other file of the run; O_NONBLOCK: a FIFO planted there fails at once instead of waiting
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError as e:
        raise TallerError(
            f"no pude escribir {path}: {reason(e)}; comprueba el espacio libre y los permisos. "
            "El último punto de control sigue intacto."
        ) from None


def truncate_metrics(run_dir: Path, step: int, name: str = METRICS) -> None:
    """Resuming at `step`: metrics.jsonl (or `name`) as it was then. Lines written after that checkpoint are dropped,
    and so is an earlier final score: the run goes on, its final line comes at its new end."""
    kept = [m for m in read_metrics(run_dir, name) if m["step"] <= step and not m.get("final")]
    atomic_write(Path(run_dir) / name, "".join(json.dumps(m) + "\n" for m in kept).encode())


def read_metrics(run_dir: Path, name: str = METRICS) -> list[dict]:
    return read_jsonl(Path(run_dir) / name, lambda entry: isinstance(entry.get("step"), int))
