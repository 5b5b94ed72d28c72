"""How far each weight tensor has travelled from where training started: ‖W_epoch − W_0‖ per tensor and epoch.

The trainer keeps the starting weights (`epoch_000.safetensors`, saved once, so that --resume measures from the same
start) and, at every epoch end, appends one line to `evolution.jsonl`:

    {"epoch": 3, "step": 27, "change": {"embedding.weight": 0.81, "blocks.0.attention.query.weight": 0.42, …}}
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from taller.files import atomic_write, read_jsonl
from taller.runs.checkpoint import load_tensors

INITIAL = "epoch_000.safetensors"
EVOLUTION = "evolution.jsonl"


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter (shared tensors once), on the CPU."""
    return {name: p.detach().float().cpu().clone() for name, p in model.named_parameters()}


def save_initial(run_dir: Path, initial: dict[str, torch.Tensor]) -> None:
    atomic_write(Path(run_dir) / INITIAL, st_save({k: v.contiguous() for k, v in initial.items()}))


def load_initial(run_dir: Path, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The starting weights of a run, or None for a run saved before they were kept."""
    path = Path(run_dir) / INITIAL
    if not path.exists():
        return None
    tensors, _ = load_tensors(path, expected=snapshot(model))
    return tensors


@torch.no_grad()
def weight_change(model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per tensor, the Frobenius norm of (now − start)."""
    return {name: float((p.detach().float().cpu() - initial[name]).norm()) for name, p in model.named_parameters()}


def read_evolution(run_dir: Path) -> list[dict]:
    return read_jsonl(
        Path(run_dir) / EVOLUTION,
        lambda entry: isinstance(entry.get("epoch"), int) and isinstance(entry.get("change"), dict),
    )


def write_evolution(run_dir: Path, entries: list[dict]) -> None:
    atomic_write(Path(run_dir) / EVOLUTION, "".join(json.dumps(e) + "\n" for e in entries).encode("utf-8"))
