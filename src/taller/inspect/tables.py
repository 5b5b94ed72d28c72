"""table.txt: the model's top next-character (or next-token) probabilities at every generated position (tab-separated, UTF-8)."""

from __future__ import annotations

from taller.text import show_token


def probability_table(samples) -> str:
    """Header `Posición, Carácter, Probabilidad` (with `Muestra` first when there are several samples);
    five rows per position, most likely first. Space, newline and tab are written ␣, ⏎ and ⇥."""
    several = len(samples) > 1
    unit = samples[0].unit if samples else "Carácter"  # "Token" for word and BPE runs
    rows = [("Muestra\t" if several else "") + f"Posición\t{unit}\tProbabilidad"]
    for k, sample in enumerate(samples, start=1):
        for step in sample.steps:
            for token, prob in step.top:
                rows.append((f"{k}\t" if several else "") + f"{step.position}\t{show_token(token)}\t{prob:.4f}")
    return "\n".join(rows) + "\n"
