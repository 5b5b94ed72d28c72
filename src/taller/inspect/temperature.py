"""temperature.png: what temperature does to one prediction. The model gives the characters after a context one set of
scores (logits); sampling divides them by the temperature before the softmax:

    p_T(c) = exp(z_c / T) / Σ_c' exp(z_c' / T)

T < 1 sharpens the distribution (the likeliest takes more), T > 1 flattens it (the unlikely get a chance), T = 1 is the
model's own. One panel per temperature, the same characters in the same order, and each panel's entropy in bits
(how many yes/no questions the choice is worth: lower is surer).
"""

from __future__ import annotations

from pathlib import Path

import torch

from taller.inspect.plots import new_figure, save_figure
from taller.sampling import next_token_logits, sampling_probs
from taller.text import number, show_token

SHOWN = 15  # characters drawn per panel: the model's likeliest, in its own order
QUOTED = 30  # characters of the context quoted in the title


def entropy_bits(probs: torch.Tensor) -> float:
    """−Σ p log2 p of a (V,) distribution (0 · log 0 counts as 0)."""
    p = probs[probs > 0]
    return float(-(p * p.log2()).sum())


def at_temperatures(run, text: str, temperatures: list[float], unknown: str = "error") -> dict[float, torch.Tensor]:
    """Per temperature, the (V,) distribution the next token is drawn from after `text`."""
    logits = next_token_logits(run.model, run.tokenizer, text, unknown)  # (V,)
    return {t: sampling_probs(logits[None], t)[0] for t in temperatures}


def temperature_plot(
    run, text: str, temperatures: list[float], path: Path, unknown: str = "error"
) -> dict[float, float]:
    """Draw temperature.png; return each temperature's entropy in bits."""
    dists = at_temperatures(run, text, temperatures, unknown)
    any_one = next(iter(dists.values()))  # temperature keeps the order: the model's likeliest first in each
    order = torch.argsort(any_one, descending=True)[:SHOWN].tolist()  # the same characters in every panel
    labels = [show_token(run.tokenizer.pieces[i]) for i in order]
    entropies = {t: entropy_bits(p) for t, p in dists.items()}
    top = max(float(p[order].max()) for p in dists.values())
    fig = new_figure(figsize=(max(6.0, 3.4 * len(dists)), 3.8), dpi=100)
    quoted = text if len(text) <= QUOTED else "…" + text[-QUOTED:]
    unit = "carácter" if run.tokenizer.kind == "char" else "token"
    fig.suptitle(f"¿Qué {unit} sigue a «{show_token(quoted)}»? La misma predicción a cada temperatura", fontsize=11)
    for k, (t, probs) in enumerate(dists.items()):
        ax = fig.add_subplot(1, len(dists), k + 1)
        values = probs[order].numpy()
        ax.bar(range(len(order)), values, color="tab:orange" if t < 1 else "tab:blue" if t == 1 else "tab:purple")
        ax.set_xticks(range(len(order)), labels, fontsize=8)
        ax.set_ylim(0, min(1.0, top * 1.1))
        own_label = " (la del modelo)" if t == 1 else ""
        ax.set_title(f"temperatura {t:g}{own_label}\nentropía {number(entropies[t], 2)} bits", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.set_ylabel("probabilidad de elegirlo")
    fig.tight_layout()
    save_figure(fig, path)
    return entropies
