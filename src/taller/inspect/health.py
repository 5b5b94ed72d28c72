"""The network's health while it learns: the diagnostics of Karpathy's makemore lectures (part 3), for any model.

Every `train.health_every` steps the training loop watches one ordinary step (its own batch: nothing is computed
twice) and writes one line of health.jsonl:

    activations  per activation layer, in the order the forward pass meets them (a GELU or ReLU, a tanh or sigmoid,
                 a recurrent layer's output): the mean and spread (std) of its values, and
                   saturated  the share of values in the flat ends of a bounded function (|tanh| > 0.97): there the
                              slope is almost 0 and almost no gradient passes back
                   dead       the share of a rectifier's units whose slope is ~0 for every input of the batch (a
                              ReLU's below zero, a GELU's far below): they pass no gradient, so they never learn
                              their way out
    gradients    per matrix, the norm of its gradient (before clipping)
    updates      per matrix, ‖ΔW‖ / ‖W‖: the share of the matrix one optimizer step changes (of a matrix with a
                 sparse gradient, a skip-gram's table, the share of the rows that step moved)

Which layers are watched is read from the model's modules (nn.GELU, nn.Tanh, nn.LSTM …), never from its kind. A
layer computed without a module (a recurrence written out, recurrence = "explicit") has no activation entry.
`notes(entry)` says, in Spanish, which values are out of their usual range; `health_plot` draws health.png.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from taller.files import read_jsonl
from taller.inspect.plots import colormap, new_figure, save_figure

HEALTH = "health.jsonl"
RECTIFIERS = (nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU, nn.Mish)  # dead below zero
BOUNDED = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Softsign: (-1.0, 1.0)}  # flat near their bounds
SATURATION = 0.97  # a bounded value is saturated past 97 % of the way from its centre to a bound (|tanh| > 0.97)
DEAD_SLOPE = 0.01  # a rectifier's unit is dead where its slope is below this (ReLU: 0 for x ≤ 0; GELU: x < -3.4)
DEAD_LIMIT = 0.10  # a note when more than this share of a layer's units are dead...
SATURATED_LIMIT = 0.10  # ...or of its values are saturated
UPDATE_RANGE = (1e-4, 1e-1)  # ‖ΔW‖/‖W‖ per step outside this range gets a note (the textbook's rule: ~1e-3)
SILENT = 1e-2  # a matrix whose gradient is below this share of the middle matrix's gets (almost) no signal
NAMED = 3  # tensors named in one note; the rest are counted
LEGEND_ROWS = 26  # lines in one column of a panel's legend


def watched_layers(model: nn.Module) -> list[tuple[str, nn.Module, tuple[float, float] | None]]:
    """(name, module, bounds) of every module whose output is an activation: bounds (low, high) for a bounded one,
    None for a rectifier. A recurrent layer (nn.RNN, nn.LSTM, nn.GRU) gives its state: tanh-bounded unless ReLU."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, nn.RNNBase):
            relu = isinstance(module, nn.RNN) and module.nonlinearity == "relu"  # (an LSTM's and a GRU's: tanh)
            layers.append((name, module, None if relu else (-1.0, 1.0)))
        elif isinstance(module, RECTIFIERS):
            layers.append((name, module, None))
        elif type(module) in BOUNDED:
            layers.append((name, module, BOUNDED[type(module)]))
    return layers


def slope(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The slope of an elementwise activation at each of its inputs x: how much gradient it lets through there.
    (`module.forward`, not `module(…)`: the checkup's own hook must not see this second call.)"""
    with torch.enable_grad():
        x = x.detach().float().requires_grad_()
        (d,) = torch.autograd.grad(module.forward(x).sum(), x)
    return d  # the same shape as x


@torch.no_grad()
def activation_stats(
    y: torch.Tensor, bounds: tuple[float, float] | None, slopes: torch.Tensor | None = None
) -> dict[str, float]:
    """Mean, spread and the share saturated (bounded) or dead (rectifier) of one layer's output y (..., H). A unit is
    dead when its slope (`slopes`, like y) is ~0 for every input of the batch; without slopes, when it is ≤ 0 (ReLU)."""
    y = y.detach().float().reshape(-1, y.shape[-1])  # (N, H): every position of the batch, per unit
    if bounds is None:
        flat = (slopes.abs() < DEAD_SLOPE).reshape(y.shape) if slopes is not None else y <= 0  # (N, H)
        bad = flat.all(dim=0).float().mean()  # a unit that lets no gradient through anywhere in the batch
        key = "dead"
    else:
        low, high = bounds
        centred = (2 * y - low - high) / (high - low)  # (N, H) in [-1, 1]
        bad = (centred.abs() > SATURATION).float().mean()
        key = "saturated"
    mean, std, bad = torch.stack([y.mean(), y.std() if y.numel() > 1 else y.new_zeros(()), bad]).tolist()
    return {"mean": mean, "std": std, key: bad}


class Checkup:
    """One watched training step: `start()` before its forward pass, `gradients()` after its backward pass,
    `updates()` after the optimizer's step; `entry` then holds its line of health.jsonl."""

    def __init__(self, model: nn.Module, step: int, activations: bool = True, **extra):
        self.model, self.activations = model, activations
        self.matrices = {name: p for name, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad}
        self.before: dict[str, torch.Tensor] = {}
        self.hooks: list = []
        self.layers: list[dict] = []
        self.sparse: set[str] = set()  # matrices whose gradient is sparse
        self.entry: dict = {"step": step + 1, **extra}  # the step count once this step is done, as metrics.jsonl

    def start(self) -> None:
        """The matrices as they are before the step, and hooks on every activation layer for its forward pass."""
        self.before = {name: p.detach().clone() for name, p in self.matrices.items()}
        if self.activations:
            self.hooks = [
                module.register_forward_hook(partial(self.record, name, bounds))
                for name, module, bounds in watched_layers(self.model)
            ]

    def record(self, name: str, bounds, module: nn.Module, inputs, output) -> None:
        y = output[0] if isinstance(output, tuple) else output  # a recurrent layer: (output, state)
        if not (isinstance(y, torch.Tensor) and y.ndim >= 1 and y.numel()):
            return
        elementwise = bounds is None and not isinstance(module, nn.RNNBase)  # a rectifier: its slope at its inputs
        slopes = slope(module, inputs[0]) if elementwise else None
        self.layers.append(
            {
                "layer": len(self.layers) + 1,
                "name": name,
                "kind": type(module).__name__,
                **activation_stats(y, bounds, slopes),
            }
        )

    def gradients(self) -> None:
        """After backward (before clipping): the hooks go, the activations and each matrix's gradient norm stay."""
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        names = [name for name, p in self.matrices.items() if p.grad is not None]
        norms = torch.stack([self.matrices[n].grad.detach().float().norm() for n in names]).tolist() if names else []
        self.sparse = {n for n in names if self.matrices[n].grad.is_sparse}  # e.g. a skip-gram's tables
        self.entry.update(activations=self.layers, gradients=dict(zip(names, norms)))

    @torch.no_grad()
    def updates(self) -> None:
        """After the optimizer's step: ‖W_after − W_before‖ / ‖W_before‖ per matrix that got a gradient (one outside
        the step's graph, e.g. the pretrained BERT's letter head under a tagger's own head, is not learning, by
        design: it is not called slow)."""
        names = [n for n in self.matrices if n in self.entry.get("gradients", self.matrices)]
        ratios = torch.stack([self.update_ratio(n) for n in names]).tolist() if names else []
        self.entry["updates"] = dict(zip(names, ratios))
        self.before = {}

    def update_ratio(self, name: str) -> torch.Tensor:
        before = self.before[name].float()
        change = self.matrices[name].detach().float() - before
        if name in self.sparse:  # a sparse gradient moves the few rows a batch touched: the ratio of those rows
            moved = change.abs().sum(dim=1) > 0  # (rows,)
            change, before = change[moved], before[moved]
        return change.norm() / before.norm().clamp(min=1e-12)


class NoCheckup:
    """The steps that are not watched: every phase does nothing."""

    entry = None

    def start(self) -> None:
        pass

    def gradients(self) -> None:
        pass

    def updates(self) -> None:
        pass


def read_health(run_dir: Path) -> list[dict]:
    return read_jsonl(
        Path(run_dir) / HEALTH,
        lambda e: (
            isinstance(e.get("step"), int)
            and isinstance(e.get("activations", []), list)
            and isinstance(e.get("gradients", {}), dict)
            and isinstance(e.get("updates", {}), dict)
        ),
    )


# --- what is out of range, in words ----------------------------------------------------------------------------------


def percent(x: float) -> str:
    return f"{100 * x:.0f} %".replace(".", ",")


def power(x: float) -> str:
    """1e-3 as people write it: '1e-3', '3e-2'."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


def listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED])
    return shown + (f" y {len(names) - NAMED} más" if len(names) > NAMED else "")


def number(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else float("nan")


def activation_notes(layers: list[dict]) -> list[str]:
    notes = []
    for a in layers:
        if not isinstance(a, dict):
            continue
        where = f"la capa {a.get('layer', '?')} ({a.get('name', '?')}, {a.get('kind', '?')})"
        dead, saturated = number(a.get("dead", 0)), number(a.get("saturated", 0))
        if dead > DEAD_LIMIT:
            notes.append(
                f"{where} tiene el {percent(dead)} de unidades muertas: con todas las entradas del lote su "
                "pendiente es casi 0, así que no dejan pasar gradiente y ya no aprenden; revisa la "
                "inicialización o baja el learning rate."
            )
        if saturated > SATURATED_LIMIT:
            notes.append(
                f"{where} tiene el {percent(saturated)} de sus valores saturados (pegados a sus límites, "
                "como |tanh| > 0,97): allí la pendiente es casi 0 y el gradiente apenas pasa; la "
                "inicialización es demasiado grande."
            )
    return notes


def gradient_notes(gradients: dict, first_step: bool = False) -> list[str]:
    """Gradients that are not numbers, or exactly zero. At the first step a zero gradient is not noted: behind a
    projection that starts at zero (a Transformer's zero_init) the query, key and value get none until it moves."""
    broken = [n for n, g in gradients.items() if not math.isfinite(number(g))]
    zero = [n for n, g in gradients.items() if number(g) == 0] if not first_step else []
    notes = (
        [
            f"el gradiente de {listed(broken)} no es un número (nan o infinito): el entrenamiento diverge; baja el "
            "learning rate."
        ]
        if broken
        else []
    )
    if zero:
        what = "esas matrices no aprenden" if len(zero) > 1 else "esa matriz no aprende"
        notes.append(f"el gradiente de {listed(zero)} es cero: {what}.")
    return notes


def update_notes(updates: dict, lr_ratios: dict | None = None, gradients: dict | None = None) -> list[str]:
    """Matrices that change too much or too little per step. One that learns at a fraction of the rate on purpose
    (`lr_ratios`: name -> ratio, e.g. a T5's encoder at 0.1) is called slow only below that fraction of the range.
    A slow one whose gradient is tiny beside the others' (`gradients`: name -> norm) is told apart: the task hardly
    uses it, and a larger learning rate would not change that."""
    low, high = UPDATE_RANGE
    ratios = lr_ratios or {}
    slow = [n for n, r in updates.items() if 0 <= number(r) < low * ratios.get(n, 1.0)]
    fast = [n for n, r in updates.items() if number(r) > high]
    silent = unused(slow, gradients or {})
    slow = [n for n in slow if n not in silent]
    notes = []
    if fast:
        worst = max(number(updates[n]) for n in fast)
        notes.append(
            f"la razón actualización/peso de {listed(fast)} llega a {power(worst)} por paso (lo habitual: "
            f"entre {power(low)} y {power(high)}; la regla clásica dice en torno a 1e-3): cada paso cambia "
            "demasiado esas matrices; baja el learning rate."
        )
    if slow:
        worst = min(number(updates[n]) for n in slow)
        they = "esas matrices apenas se mueven" if len(slow) > 1 else "esa matriz apenas se mueve"
        notes.append(
            f"la razón actualización/peso de {listed(slow)} baja a {power(worst)} por paso (lo habitual: "
            f"entre {power(low)} y {power(high)}): {they}; sube el learning rate."
        )
    if silent:
        many = len(silent) > 1
        notes.append(
            f"{listed(silent)} apenas se mueve{'n' if many else ''} porque apenas recibe{'n' if many else ''} "
            f"gradiente (menos de 1/{round(1 / SILENT)} del de la matriz típica): la tarea casi no "
            f"{'las' if many else 'la'} usa (p. ej. la atención de un decodificador que escribe respuestas de uno o "
            "dos tokens); subir el learning rate no lo cambiaría."
        )
    return notes


def unused(names: list[str], gradients: dict) -> list[str]:
    """Those of `names` whose gradient norm is below SILENT × the median matrix's."""
    norms = sorted(number(g) for g in gradients.values() if math.isfinite(number(g)) and number(g) > 0)
    if not norms:
        return []
    middle = norms[len(norms) // 2]
    return [n for n in names if n in gradients and number(gradients[n]) < SILENT * middle]


def notes(entry: dict) -> list[str]:
    """What is out of its usual range in one checkup, in Spanish; [] when all is well. The update ratios are not
    judged during the learning rate's warm-up, when they are small on purpose."""
    said = activation_notes(entry.get("activations", [])) + gradient_notes(
        entry.get("gradients", {}), first_step=entry.get("step") == 1
    )
    if not entry.get("warming_up"):
        said += update_notes(entry.get("updates", {}), entry.get("lr_ratios"), entry.get("gradients"))
    return said


def summary(entries: list[dict]) -> list[tuple[str, list[str]]]:
    """(title, notes) for the last checkup, and for the first one if it said something else (a bad start). A run
    with one checkup only, in the warm-up, gets no notes: a single early look is no diagnosis."""
    if not entries:
        return []
    if len(entries) == 1 and entries[0].get("warming_up"):  # one early checkup alone says too little to warn
        return [(f"Una sola revisión, al empezar (paso {entries[0]['step']})", [])]
    last = entries[-1]
    out = [(f"En la última revisión (paso {last['step']})", notes(last))]
    first = entries[0]
    if len(entries) > 1 and notes(first) and notes(first) != notes(last):
        out.insert(0, (f"Al empezar (paso {first['step']})", notes(first)))
    return out


# --- the picture -----------------------------------------------------------------------------------------------------


def series(entries: list[dict], part: str, key: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """name -> [(step, value)] of one part of the entries: gradients or updates (key None), or an activation key."""
    out: dict[str, list[tuple[int, float]]] = {}
    for e in entries:
        if key is None:
            for name, value in e.get(part, {}).items():
                out.setdefault(name, []).append((e["step"], number(value)))
        else:
            for a in e.get(part, []):
                if isinstance(a, dict) and key in a:
                    label = f"capa {a.get('layer')} · {a.get('kind')}"
                    out.setdefault(label, []).append((e["step"], number(a[key])))
    return out


def draw_lines(ax, lines: dict[str, list[tuple[int, float]]], title: str, ylabel: str, log: bool = False) -> None:
    colours = colormap("turbo")
    for k, (name, points) in enumerate(lines.items()):
        steps, values = zip(*points)
        short = name.replace("blocks.", "b").replace(".weight", "")
        ax.plot(
            steps,
            values,
            marker="o" if len(steps) < 15 else None,
            markersize=3,
            linewidth=1,
            color=colours(k / max(1, len(lines) - 1)),
            label=short,
        )
    if log and any(v > 0 for points in lines.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("paso", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(
            fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.02),
            frameon=False,
            ncol=1 + len(lines) // (LEGEND_ROWS + 1),
        )
    else:
        ax.text(0.5, 0.5, "nada que medir en este modelo", ha="center", va="center", transform=ax.transAxes)


def health_plot(entries: list[dict], path) -> None:
    """Four panels against the step: activations' spread, saturated or dead share, gradient norms, update ratios."""
    columns = 1 + max(len(series(entries, "gradients")), 1) // (LEGEND_ROWS + 1)  # of the widest legend
    fig = new_figure(figsize=(15 + 2.5 * (columns - 1), 8.5), dpi=90)
    fig.suptitle("Salud de la red mientras aprende (una revisión cada train.health_every pasos)", fontsize=12)
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
    draw_lines(
        axes[0], series(entries, "activations", "std"), "Activaciones: desviación típica por capa", "desviación típica"
    )
    bad = {f"{name} · muertas": pts for name, pts in series(entries, "activations", "dead").items()}
    bad.update({f"{name} · saturadas": pts for name, pts in series(entries, "activations", "saturated").items()})
    bad = {name: [(s, 100 * v) for s, v in pts] for name, pts in bad.items()}
    draw_lines(axes[1], bad, "Unidades muertas o valores saturados", "% de la capa")
    axes[1].axhline(100 * DEAD_LIMIT, color="tab:red", linestyle=":", linewidth=1)
    draw_lines(axes[2], series(entries, "gradients"), "Norma del gradiente de cada matriz", "‖gradiente‖", log=True)
    draw_lines(
        axes[3], series(entries, "updates"), "Razón actualización/peso de cada matriz", "‖ΔW‖ / ‖W‖ por paso", log=True
    )
    axes[3].axhspan(*UPDATE_RANGE, color="tab:green", alpha=0.08)
    axes[3].axhline(1e-3, color="tab:green", linestyle="--", linewidth=1)
    legend = 2.0 * columns / fig.get_figwidth()  # the share of the width a legend takes, beside its panel
    fig.subplots_adjust(left=0.05, right=1 - legend, bottom=0.07, top=0.91, wspace=0.2 + 4 * legend, hspace=0.35)
    save_figure(fig, path)
