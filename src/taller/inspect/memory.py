"""How far back does a model look? Change one character k positions back and see how much the prediction moves.

    for a window of text ending at position t, the model predicts the next character: a distribution p
    replace the character at t − k + 1 by another one (k = 1: the last character read) → a distribution q
    memory(k) = ½ Σ |p − q|, the share of probability that moved, averaged over many windows of validation text

A bigram only ever reads the last character: its memory is 0 from k = 2 on. An n-gram reads the last n − 1: 0 beyond
k = n − 1. A Transformer sees its whole window and nothing before it; a recurrent network has no window, but what it
read long ago fades. `taller explain` draws a run's curve in memory.png; `taller compare` draws its models together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taller.errors import TallerError
from taller.inspect.plots import new_figure, save_figure
from taller.models.modes import evaluating
from taller.runs.folder import validation_tokens

WINDOWS = 64  # windows of validation text averaged (each costs `reach` forward passes)
REACH = 64  # how far back to look at most (a Transformer's window is its own limit)


@torch.no_grad()
def memory_curve(
    model, ids: np.ndarray, vocab_size: int, reach: int = REACH, windows: int = WINDOWS, seed: int = 0
) -> np.ndarray:
    """memory(k) for k = 1 … reach (a Transformer: at most its block_size), averaged over `windows` windows of `ids`."""
    with evaluating(model):
        reach = min(reach, model.block_size or reach, len(ids) - 1)
        if vocab_size < 2:  # one character: there is no other to put in its place, and nothing can move
            return np.zeros(reach)
        g = np.random.default_rng(seed)
        ends = g.integers(reach, len(ids), size=windows)  # each window: ids[end - reach : end]
        total = np.zeros(reach)
        for end in ends:
            window = torch.from_numpy(np.asarray(ids[end - reach : end], dtype=np.int64))  # (R,)
            variants = window.repeat(reach + 1, 1)  # (R+1, R): row 0 as it is, row k with position R-k changed
            k = torch.arange(1, reach + 1)
            offsets = torch.from_numpy(g.integers(1, vocab_size, size=reach))  # another character, never the same
            variants[k, reach - k] = (window[reach - k] + offsets) % vocab_size
            probs = torch.softmax(model.start(variants)[0].float(), dim=-1)  # (R+1, V) next-character distributions
            total += 0.5 * (probs[1:] - probs[0]).abs().sum(dim=-1).numpy()  # (R,) total variation per k
        return total / len(ends)


def memory_plot(curves: dict[str, np.ndarray], path: Path, title: str = "¿Hasta dónde mira atrás el modelo?") -> Path:
    """memory.png: one curve per model, k (characters back) across, the share of probability that moved up."""
    fig = new_figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=name)
    ax.set_xlabel("k: caracteres hacia atrás del carácter cambiado")
    ax.set_ylabel("probabilidad que se mueve (½ Σ |p − q|)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def validation_ids(run) -> np.ndarray:
    """The run's validation text as its tokens (read again from its corpus, split by its own rule)."""
    return validation_tokens(run, "medir la memoria")[0]


def run_memory(run, path: Path) -> Path | str:
    """memory.png of one run, or a note saying why it can't be measured."""
    try:
        ids = validation_ids(run)
    except TallerError as e:
        return f"No mido la memoria: {e}"
    curve = memory_curve(run.model, ids, run.tokenizer.vocab_size)
    return memory_plot({run.config.model.kind: curve}, path)
