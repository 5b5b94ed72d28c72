"""parameters.txt: every tensor of the model with its size and statistics, grouped by what it does."""

from __future__ import annotations

import torch

from taller.text import thousands

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


def parameter_rows(model: torch.nn.Module) -> list[dict]:
    """One row per tensor (shared, tied tensors once): name, shape, count, percent, component and statistics."""
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    rows = []
    for name, p in params:
        x = p.detach().float()
        rows.append(
            {
                "name": name,
                "shape": tuple(p.shape),
                "count": p.numel(),
                "percent": 100 * p.numel() / total,
                "component": component_of(name),
                "mean": x.mean().item(),
                "std": x.std().item() if x.numel() > 1 else 0.0,
                "min": x.min().item(),
                "max": x.max().item(),
            }
        )
    return rows


def by_component(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["component"]] = counts.get(r["component"], 0) + r["count"]
    return counts


def parameter_table(model: torch.nn.Module) -> str:
    rows = parameter_rows(model)
    total = sum(r["count"] for r in rows)
    header = f"{'Nombre':<40} {'Forma':<14} {'Cantidad':>10} {'%':>6} {'Media':>9} {'Desv.':>8} {'Mín.':>8} {'Máx.':>8}"
    lines = ["Parámetros del modelo", "=" * len(header), header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['name']:<40} {str(r['shape']):<14} {thousands(r['count']):>10} {r['percent']:>5.1f}% "
            f"{r['mean']:>9.4f} {r['std']:>8.4f} {r['min']:>8.4f} {r['max']:>8.4f}"
        )
    lines += ["-" * len(header), "", "Por componente:"]
    for component, count in by_component(rows).items():
        lines.append(f"  {component:<16} {thousands(count):>10}  {100 * count / total:5.1f}%")
    buffers = [(name, b) for name, b in model.named_buffers()]
    if buffers:  # e.g. the sinusoidal position code: part of the model, but fixed, so not a parameter
        lines += ["", "Tensores fijos (no se entrenan, no cuentan como parámetros):"]
        lines += [f"  {name:<38} {str(tuple(b.shape)):<14}" for name, b in buffers]
    lines += ["", f"Total: {thousands(total)} parámetros"]
    return "\n".join(lines) + "\n"
