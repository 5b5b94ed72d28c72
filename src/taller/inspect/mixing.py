"""Inside a mix: whom the mixer trusted where.

Along a text, character by character: the weight the mixer gave each model there (top), and the probability each
model — and the mix — gave to the character that really came next (bottom). Where the n-gram has counted the context
many times its weight rises; where it has never seen it, the network's does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from taller.inspect.plots import new_figure, save_figure
from taller.text import show_token

CHARACTERS = 96  # characters of the text drawn


@torch.no_grad()
def mixing_trace(run, text: str, unknown: str = "error") -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """The characters predicted (the 2nd … of `text`), each part's weight there (T, K), each part's probability of
    that character (T, K) and the mix's (T,)."""
    block = run.model.block_size or CHARACTERS + 1
    ids = run.tokenizer.encode(text, unknown=unknown)[: min(CHARACTERS, block) + 1]
    idx = torch.tensor([ids])  # (1, T+1)
    logp = run.model.part_predictions(idx[:, :-1])[0]  # (T, K, V)
    targets = idx[0, 1:]  # (T,)
    weights = run.model.mixing_weights(logp)  # (T, K)
    parts = logp.gather(-1, targets[:, None, None].expand(-1, logp.shape[1], 1))[..., 0].exp()  # (T, K)
    mixed = run.model.mix(logp).gather(-1, targets[:, None])[:, 0].exp()  # (T,)
    return [run.tokenizer.pieces[i] for i in ids[1:]], weights, parts, mixed


def mixing_plot(run, text: str, path: Path, unknown: str = "error") -> Path:
    """mixing.png: the mixer's weights along `text`, and how likely each model found each character."""
    chars, weights, parts, mixed = mixing_trace(run, text, unknown)
    names = [part.dir.name for part in run.parts]
    x = range(len(chars))
    fig = new_figure(figsize=(max(7.0, 0.16 * len(chars) + 2), 6.2), dpi=100)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for k, name in enumerate(names):
        top.step(x, weights[:, k].numpy(), where="mid", label=name)
        bottom.step(x, parts[:, k].numpy(), where="mid", label=name, alpha=0.8)
    bottom.step(x, mixed.numpy(), where="mid", label="mezcla", color="black", linewidth=1.6)
    top.set_title("¿En quién confía la mezcla? El peso de cada modelo en cada carácter", fontsize=11)
    top.set_ylabel("peso")
    bottom.set_title("Probabilidad que dio cada modelo al carácter que vino", fontsize=11)
    bottom.set_ylabel("probabilidad")
    bottom.set_ylim(0, 1.02)
    for ax in (top, bottom):
        ax.set_xticks(list(x), [show_token(c) for c in chars], fontsize=7)
        ax.set_xlim(-0.5, len(chars) - 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)
    return path
