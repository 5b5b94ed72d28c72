"""Inside a recurrent network as it reads: its state, and the LSTM's gates, character by character.

Each panel is units (down) × characters of the text (across). For the LSTM, the forget gate is the lesson's point:
where it is near 1 the memory is kept, where it drops towards 0 the memory is wiped (after a full stop, a space…).
"""

from __future__ import annotations

from pathlib import Path

import torch

from taller.inspect.plots import new_figure, save_figure
from taller.text import show_token

UNITS = 32  # units drawn per panel: those that move most along the text
CHARACTERS = 64  # characters of the text read


def recurrent_plot(run, text: str, path: Path, unknown: str = "error") -> Path:
    """recurrent.png: the last layer's state (and gates) while the model reads `text`."""
    ids = run.tokenizer.encode(text, unknown=unknown)[:CHARACTERS]
    pieces = [show_token(run.tokenizer.decode([i])) for i in ids]
    trace = run.model.trace(torch.tensor([ids]))  # name -> (T, H)
    moving = torch.argsort(trace["estado"].var(dim=0), descending=True)[:UNITS]  # the units that change most
    fig = new_figure(figsize=(max(6.0, 0.22 * len(ids) + 2), 2.4 * len(trace) + 0.6), dpi=100)
    for row, (name, values) in enumerate(trace.items()):
        ax = fig.add_subplot(len(trace), 1, row + 1)
        gate = name.startswith("puerta")
        image = ax.imshow(
            values[:, moving].T.numpy(),
            aspect="auto",
            cmap="viridis" if gate else "RdBu_r",
            vmin=0.0 if gate else -1.0,
            vmax=1.0,
            interpolation="nearest",
        )
        ax.set_title(name + (" (0 = cerrada, 1 = abierta)" if gate else " h (de −1 a 1)"), fontsize=10)
        ax.set_ylabel(f"{len(moving)} unidades", fontsize=8)
        ax.set_yticks([])
        ax.set_xticks(range(len(pieces)), pieces, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle("Lo que la red recurrente lleva consigo mientras lee (la última capa)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return path
