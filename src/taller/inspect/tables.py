"""table.txt: at every generated position, the model's top next-character (or next-token) probabilities and what the
sampling made of them (tab-separated, UTF-8)."""

from __future__ import annotations

from taller.text import show_token


def probability_table(samples) -> str:
    """Header `Posición, Carácter, Modelo, Muestreo` (with `Muestra` first when there are several samples); five rows
    per position, most likely first. `Modelo`: the model's own probability (temperature 1); `Muestreo`: the same
    token's probability in the distribution actually drawn from (after temperature, top-k and top-p; greedy: 1 for
    the best, 0 for the rest). Space, newline and tab are written ␣, ⏎ and ⇥."""
    several = len(samples) > 1
    unit = samples[0].unit if samples else "Carácter"  # "Token" for word and BPE runs
    rows = [("Muestra\t" if several else "") + f"Posición\t{unit}\tModelo\tMuestreo"]
    for k, sample in enumerate(samples, start=1):
        for step in sample.steps:
            for (token, prob), drawn in zip(step.top, step.sampled or [p for _, p in step.top]):
                rows.append(
                    (f"{k}\t" if several else "") + f"{step.position}\t{show_token(token)}\t{prob:.4f}\t{drawn:.4f}"
                )
    return "\n".join(rows) + "\n"
