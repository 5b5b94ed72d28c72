"""What `taller embeddings` prints and draws: nearest words, analogies (with an honest rank), a 2-D map of words."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from taller.errors import TallerError
from taller.text import thousands
from taller.inspect.plots import Figure, loss_curves, save_figure


def ranked_table(title: str, ranked) -> str:
    lines = [title, f"  {'n.º':>4}  {'palabra':<18} {'similitud':>9}"]
    lines += [f"  {i:>4}  {r.word:<18} {r.similarity:>9.3f}" for i, r in enumerate(ranked, start=1)]
    return "\n".join(lines)


def near(vectors, word: str, k: int = 10) -> str:
    (word,) = vectors.check_known([word])
    ranked = vectors.ranked(vectors.near_scores(word), exclude=[word], k=k)
    return ranked_table(f"Las {len(ranked)} palabras más cercanas a «{word}» (similitud coseno, entre "
                        f"{thousands(len(vectors.vocab) - 1)}):", ranked)


def analogy(vectors, a: str, b: str, c: str, k: int = 10) -> str:
    a, b, c = vectors.check_known([a, b, c])
    ranked = vectors.ranked(vectors.analogy_scores(a, b, c), exclude=[a, b, c], k=k)
    return ranked_table(f"{a} − {b} + {c} ≈ ? (similitud coseno; sin contar {a}, {b} ni {c}):", ranked)


def expectation(vectors, scores: torch.Tensor, expected: str, exclude: list[str], k: int, corpus_words: int) -> str:
    """Where the expected word really landed, said plainly: found in the top k, or its rank and why it may fail."""
    (expected,) = vectors.check_known([expected])
    if expected in exclude:
        raise TallerError(f"--expect {expected}: esa palabra es una de las de la pregunta y no compite; elige otra.")
    rank, competing, similarity = vectors.rank_of(scores, expected, exclude)
    where = f"«{expected}» es la {rank}.ª de {thousands(competing)} (similitud {similarity:.3f})"
    verb, top = ("está", f"entre las {k} primeras") if k > 1 else ("es", "la primera")
    if rank <= k:
        return f"{where}: {verb} {top}."
    size = f"unas {thousands(round(corpus_words, -3) if corpus_words >= 10_000 else corpus_words)} palabras"
    return (f"{where}: NO {verb} {top}. Un corpus de {size} es pequeño para analogías: word2vec "
            "las aprendió con miles de millones de palabras; aquí los vecinos salen bien más a menudo que las analogías.")


def word_map(vectors, words: list[str], path: Path) -> Path:
    """The chosen words' vectors projected on their two main directions (PCA), labelled, as a PNG."""
    words = vectors.check_known(words)
    words = list(dict.fromkeys(words))
    if len(words) < 2:
        raise TallerError("--plot necesita al menos dos palabras distintas, p. ej. --plot sancho quijote rocinante rucio.")
    x = vectors.unit[[vectors.vocab.index[w] for w in words]]  # (n, D)
    x = x - x.mean(dim=0)  # PCA: centre, then the directions of largest spread
    u, s, _ = torch.linalg.svd(x, full_matrices=False)  # u (n, r), s (r,)
    xy = u[:, :2] * s[:2]  # (n, 2) or (n, 1)
    if xy.shape[1] == 1:
        xy = torch.cat([xy, torch.zeros_like(xy)], dim=1)
    share = (s**2 / max(float((s**2).sum()), 1e-12)).tolist() + [0.0, 0.0]
    fig = Figure(figsize=(7.5, 6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(xy[:, 0], xy[:, 1], color="tab:blue", s=25)
    for (px, py), word in zip(xy.tolist(), words):
        ax.annotate(word, (px, py), xytext=(4, 3), textcoords="offset points", fontsize=11)
    ax.set_xlabel(f"componente principal 1 ({100 * share[0]:.0f} % de la varianza)")
    ax.set_ylabel(f"componente principal 2 ({100 * share[1]:.0f} % de la varianza)")
    ax.set_title("Vectores de palabras proyectados en 2-D (PCA)")
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def skipgram_loss_plot(metrics: list[dict], path) -> None:
    """Train and val loss of a skip-gram (nats per pair: one true context and K negatives) against the step."""
    fig, ax = loss_curves(metrics, "paso (un lote de pares centro–contexto)", "pérdida (nats por par)",
                          "Skip-gram: curvas de pérdida")
    val = [m["val_loss"] for m in metrics if "val_loss" in m]
    if val and math.isfinite(val[0]):
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    save_figure(fig, path)
