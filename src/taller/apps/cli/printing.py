"""What the commands print besides tables: the sampling's probabilities step by step, and the surprise spots."""

from __future__ import annotations

from taller.inspect.surprise import top_spots
from taller.text import number, show_token


def sampling_words(temperature: float, top_k: int, top_p: float, greedy: bool) -> str:
    """How the next token is chosen, in words ("temperatura 0.5 · top-k 3"); "" when it is drawn from the model's
    own probabilities."""
    if greedy:
        return "greedy: siempre el más probable"
    parts = [f"temperatura {temperature:g}"] if temperature != 1.0 else []
    parts += [f"top-k {top_k}"] if top_k else []
    parts += [f"top-p {top_p:g}"] if top_p < 1.0 else []
    return " · ".join(parts)


def print_probs(sample, index, how: str) -> None:
    """Each step's five best candidates with the model's probability and, when the sampling reshapes it (`how`
    says how), the probability each was drawn with: «modelo → muestreo»."""
    title = f"Muestra {index}: " if index else ""
    print(f"{title}probabilidades del siguiente {sample.unit.lower()} tras «{sample.prompt}»")
    if how:
        print(f"  modelo: las del modelo (temperatura 1) → muestreo: con las que se elige ({how})")
    print(f"{'Posición':>8}  {'Elegido':<7}  candidatos ({'modelo → muestreo' if how else 'probabilidad'})")
    for step in sample.steps:
        if how:
            cands = "  ".join(
                f"{show_token(c)} {number(p, 3)}→{number(q, 3)}" for (c, p), q in zip(step.top, step.sampled)
            )
        else:
            cands = "  ".join(f"{show_token(c)} {number(p, 3)}" for c, p in step.top)
        print(f"{step.position:>8}  {show_token(step.token):<7}  {cands}")


def print_spots(title: str, values, text: str, sign: float, unit: str) -> None:
    """The characters where `values` (bits, or a difference of bits) is largest, each in its context."""
    print(f"\n{title}:")
    for s in top_spots(values, text, sign=sign):
        context = show_token(s["before"][-16:]) + "[" + show_token(s["char"]) + "]" + show_token(s["after"])
        print(f"  posición {s['position'] + 1:>7}  {context:<26}  {number(s['bits'])} {unit}")
