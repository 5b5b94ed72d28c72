"""The bigram's whole model in one picture: current character down, next character across, colour = P(next | current).

Rows and columns follow the characters' frequency in the training text (the most frequent first), and the largest
probabilities are written in their cells, so that «q → u» or «ñ → o» can be read off the table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from taller.inspect.plots import new_figure, save_figure
from taller.text import number, show_char

SHOWN = 40  # rows and columns drawn: the most frequent characters (a whole vocabulary of ~90 would be unreadable)
LABELLED = 25  # cells with the largest probabilities get their value written in


def bigram_plot(run, path: Path) -> Path:
    """bigram.png: the model's table of next-character probabilities (the most frequent characters)."""
    model, tokenizer = run.model, run.tokenizer
    table = model.table().float()  # (V, V), rows sum to 1
    order = torch.argsort(model.counts.sum(dim=1), descending=True)[:SHOWN]  # most frequent current characters
    part = table[order][:, order]  # (S, S)
    names = [show_char(tokenizer.decode([int(i)])) for i in order]
    fig = new_figure(figsize=(9.5, 8.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(part.numpy(), cmap="Blues", vmin=0.0)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("carácter siguiente")
    ax.set_ylabel("carácter actual")
    ax.set_title(f"Bigrama: P(siguiente | actual), los {len(names)} caracteres más frecuentes")
    top = torch.topk(part.flatten(), min(LABELLED, part.numel()))
    for p, i in zip(top.values, top.indices):
        r, c = divmod(int(i), part.shape[1])
        ax.text(c, r, f"{number(float(p), 2)}".removeprefix("0"), ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="probabilidad")
    fig.tight_layout()
    save_figure(fig, path)
    return path
