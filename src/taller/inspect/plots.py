"""Pictures of training: the weights at an epoch (one panel per tensor) and the loss curves.

Every picture of taller is drawn through this module, and matplotlib is imported in one place only, `matplotlib_api`,
on the first picture: importing taller (or taller.inspect) does not load it, and a command that draws nothing never
pays for it.
"""

from __future__ import annotations

import functools
import io
import math
from typing import TYPE_CHECKING

import torch

from taller.evaluate import LN2
from taller.files import atomic_write
from taller.text import number, short

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PALETTE_COLOURS = 256  # colours a palette PNG keeps: the eye sees no difference on a heatmap
PANELS_PER_ROW = 6  # epoch_plot: tensors side by side in one row


@functools.cache
def matplotlib_api():
    """matplotlib, imported on first use with the Agg backend (pictures to files, never a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure  # the object API (Figure): no global pyplot state

    return matplotlib


def new_figure(figsize: tuple[float, float], dpi: int) -> Figure:
    """An empty figure `figsize` inches wide and high, at `dpi` dots per inch."""
    return matplotlib_api().figure.Figure(figsize=figsize, dpi=dpi)


def colormap(name: str):
    """A matplotlib colour map by name ("turbo", "Blues"…): a function from [0, 1] to a colour."""
    return matplotlib_api().colormaps[name]


def save_figure(fig: Figure, path, palette: bool = False) -> None:
    """Write a PNG atomically; `palette` keeps 256 colours (weight heatmaps: 2.5× smaller, the same to the eye)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    if palette:
        from PIL import Image  # matplotlib's own dependency

        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(colors=PALETTE_COLOURS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def principal_plane(x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """PCA: the (n, 2) coordinates of the rows of `x` (n, D) along their two directions of largest spread, and the
    share of the variance each direction explains. A direction that does not exist (one row, or rows all alike)
    is an axis of zeros that explains 0 %."""
    x = x.float() - x.float().mean(dim=0)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)  # u (n, r), s (r,), r = min(n, D)
    xy = u[:, :2] * s[:2]  # (n, 2), or (n, 1) when there is one direction only
    xy = torch.cat([xy, torch.zeros(len(x), 2 - xy.shape[1])], dim=1)
    share = (s**2 / max(float((s**2).sum()), 1e-12)).tolist() + [0.0, 0.0]
    return xy, share[:2]


def epoch_plot(model, epoch: int, path, step: int | None = None) -> None:
    """The seed's picture, readable: 2-D weights as heatmaps with a colour bar, 1-D biases and norms as lines
    (`step`: a picture of the weights between two epochs' ends, titled by its step)."""
    params = [(name, p.detach().float().cpu()) for name, p in model.named_parameters()]
    cols = PANELS_PER_ROW
    rows = math.ceil(len(params) / cols)
    fig = new_figure(figsize=(cols * 3.2, rows * 2.6 + 1.2), dpi=80)
    when = f"Época {epoch}" if step is None else f"Paso {step}"
    fig.suptitle(
        f"Estado de la red neuronal - {when} (rojo +, azul −; cada matriz, hasta el ±máx de su título)", fontsize=14
    )
    for i, (name, x) in enumerate(params):
        ax = fig.add_subplot(rows, cols, i + 1)
        shape = "×".join(str(n) for n in x.shape)
        ax.set_title(
            f"{name.replace('blocks.', 'b').replace('.weight', '.w').replace('.bias', '.b')} ({shape})", fontsize=8
        )
        ax.tick_params(labelsize=6)
        if x.ndim >= 2:  # red +, blue −, white 0, each panel scaled to its own largest |w| (said in its title)
            x = x.reshape(x.shape[0], -1)
            limit = float(x.abs().max()) or 1.0
            ax.imshow(x.numpy(), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_title(f"{ax.get_title()}\n±{short(float(f'{limit:.2g}'))}", fontsize=8)
            ax.axis("off")  # no ticks nor colour bar: they were most of the picture's drawing time
        else:
            ax.plot(x.numpy(), linewidth=0.8)
            ax.set_xticks([])  # the index along the vector tells nothing; three values up the side are enough
            ax.locator_params(axis="y", nbins=3)
            ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=1 - 1.3 / fig.get_figheight(), wspace=0.45, hspace=0.5)
    save_figure(fig, path, palette=True)


def loss_curves(metrics: list[dict], xlabel: str, ylabel: str, title: str):
    """A new figure with the train loss (a line) and the val loss (dots) against the step: (fig, ax)."""
    fig = new_figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    train = [(m["step"], m["train_loss"]) for m in metrics if "train_loss" in m]
    val = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    if train:
        ax.plot(*zip(*train), label="entrenamiento", color="tab:blue", alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validación", color="tab:orange")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig, ax


def loss_plot(metrics: list[dict], path, baseline_bpc: float | None = None) -> None:
    """Train and val loss (nats per token) against the step, with bits per character on the right axis, and the
    8-gram's figure as a dashed line when known (`baseline_bpc`, training/verdict.py).

    For word and BPE runs the right axis divides by the val text's characters per token (from its exact val_bpc)."""
    scored = [m for m in metrics if m.get("val_bpc")]
    per_token = scored[-1]["val_loss"] / LN2 / scored[-1]["val_bpc"] if scored else 1.0  # 1: characters
    unit = "carácter" if abs(per_token - 1) < 1e-6 else "token"
    fig, ax = loss_curves(metrics, "paso", f"pérdida (nats por {unit})", "Curvas de pérdida")
    if baseline_bpc is not None:
        ax.axhline(
            baseline_bpc * LN2 * per_token, color="#9ca3af", linestyle="--", linewidth=1, label="8-grama (solo cuenta)"
        )
        ax.legend()
    right = ax.secondary_yaxis("right", functions=(lambda n: n / LN2 / per_token, lambda b: b * LN2 * per_token))
    right.set_ylabel(
        "bits por carácter" + ("" if unit == "carácter" else f" ({number(per_token, 2)} caracteres por token)")
    )
    fig.tight_layout()
    save_figure(fig, path)
