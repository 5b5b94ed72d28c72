"""parameters.txt: every tensor of the model with its size and statistics, grouped by what it does."""

from __future__ import annotations

import torch

from ..text import thousands

COMPONENTS = [  # (name fragment, component) — first match wins
    ("embedding", "embedding"),
    ("position", "posicional"),
    ("attention", "atención"),
    ("feed_forward", "feed-forward"),
    ("lstm", "LSTM"),
    ("norm", "normalización"),
    ("output", "salida"),
]


def component_of(name: str) -> str:
    for fragment, component in COMPONENTS:
        if fragment in name:
            return component
    return "otros"


def parameter_table(model: torch.nn.Module) -> str:
    params = list(model.named_parameters())  # shared (tied) tensors appear once
    total = sum(p.numel() for _, p in params)
    header = f"{'Nombre':<40} {'Forma':<14} {'Cantidad':>10} {'%':>6} {'Media':>9} {'Desv.':>8} {'Mín.':>8} {'Máx.':>8}"
    lines = ["Parámetros del modelo", "=" * len(header), header, "-" * len(header)]
    by_component: dict[str, int] = {}
    for name, p in params:
        x = p.detach().float()
        std = x.std().item() if x.numel() > 1 else 0.0
        lines.append(f"{name:<40} {str(tuple(p.shape)):<14} {thousands(p.numel()):>10} {100 * p.numel() / total:>5.1f}% "
                     f"{x.mean().item():>9.4f} {std:>8.4f} {x.min().item():>8.4f} {x.max().item():>8.4f}")
        by_component[component_of(name)] = by_component.get(component_of(name), 0) + p.numel()
    lines += ["-" * len(header), "", "Por componente:"]
    for component, count in by_component.items():
        lines.append(f"  {component:<16} {thousands(count):>10}  {100 * count / total:5.1f}%")
    buffers = [(name, b) for name, b in model.named_buffers()]
    if buffers:  # e.g. the sinusoidal position code: part of the model, but fixed, so not a parameter
        lines += ["", "Tensores fijos (no se entrenan, no cuentan como parámetros):"]
        lines += [f"  {name:<38} {str(tuple(b.shape)):<14}" for name, b in buffers]
    lines += ["", f"Total: {thousands(total)} parámetros"]
    return "\n".join(lines) + "\n"
