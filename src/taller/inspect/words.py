"""A skip-gram's word vectors, and what `taller embeddings` prints and draws: nearest words, analogies (with an
honest rank), a 2-D map of words."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from taller.config import Config
from taller.errors import TallerError
from taller.inspect.plots import loss_curves, new_figure, principal_plane, save_figure
from taller.models import build_model, kind_of
from taller.models.skipgram import VOCAB_FILE, WordVocab
from taller.runs.checkpoint import checkpoint_file, load_tensors, read_state
from taller.text import number, thousands


@dataclass
class Ranked:
    word: str
    similarity: float


class WordVectors:
    """A run's word vectors, unit length, with the vocabulary: what `taller embeddings` asks questions of."""

    def __init__(self, vocab: WordVocab, vectors: torch.Tensor, run_dir: Path | None = None, state: dict | None = None):
        if vectors.shape[0] != len(vocab):
            raise TallerError(
                f"el vocabulario tiene {len(vocab)} palabras pero los vectores son {vectors.shape[0]}; "
                "la carpeta mezcla ficheros de ejecuciones distintas."
            )
        self.vocab, self.dir, self.state = vocab, run_dir, state or {}
        self.unit = F.normalize(vectors.float(), dim=1)  # (V, D): cosine similarity is a dot product now

    @classmethod
    def load(cls, run_dir: str | Path) -> WordVectors:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise TallerError(
                f"no existe la carpeta de ejecución {run_dir}; entrena una con "
                f"`taller train --corpus quijote --model skipgram --out {run_dir}`."
            )
        state = read_state(run_dir)
        cfg = Config.load(run_dir / "config.toml", saved=True)
        if not kind_of(cfg).word_vectors:
            raise TallerError(
                f"{run_dir} es un modelo de lenguaje «{cfg.model.kind}», no un skip-gram: no tiene vectores "
                "de palabras. Entrena uno con `taller train --corpus quijote --model skipgram`."
            )
        vocab = WordVocab.load(run_dir / VOCAB_FILE)
        cfg.model.vocab_size = len(vocab)
        expected = build_model(cfg.model).state_dict()
        tensors, _ = load_tensors(checkpoint_file(run_dir, "model.safetensors", state), expected=expected)
        return cls(vocab, tensors["vectors.weight"], run_dir, state)

    def check_known(self, words: list[str]) -> list[str]:
        """The words, lowercased; one clear error listing those that are not in the vocabulary."""
        words = [w.strip().lower() for w in words]
        unknown = list(dict.fromkeys(w for w in words if w not in self.vocab.index))
        if unknown:
            shown = ", ".join(f"«{w}»" for w in unknown)
            where = f" de {self.dir}" if self.dir else ""
            raise TallerError(
                f"no están en el vocabulario{where}: {shown} (sólo tiene las {thousands(len(self.vocab))} "
                f"palabras que aparecen al menos {self.vocab.counts[-1]} veces en el texto de "
                "entrenamiento); prueba con otras."
            )
        return words

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of every word to a query vector: (D,) -> (V,)."""
        return self.unit @ F.normalize(query, dim=0)

    def ranked(self, scores: torch.Tensor, exclude: list[str], k: int) -> list[Ranked]:
        scores = scores.clone()
        scores[[self.vocab.index[w] for w in exclude]] = -math.inf
        top = torch.topk(scores, min(k, len(scores) - len(set(exclude))))
        return [Ranked(self.vocab.words[i], float(s)) for s, i in zip(top.values, top.indices)]

    def rank_of(self, scores: torch.Tensor, word: str, exclude: list[str]) -> tuple[int, int, float]:
        """(rank of `word` from 1, how many words compete, its similarity); the excluded words do not compete."""
        excluded = {self.vocab.index[w] for w in exclude}
        target = float(scores[self.vocab.index[word]])
        mask = torch.ones(len(scores), dtype=torch.bool)
        mask[list(excluded)] = False
        return int((scores[mask] > target).sum()) + 1, int(mask.sum()), target

    def near_scores(self, word: str) -> torch.Tensor:
        return self.scores(self.unit[self.vocab.index[word]])  # (V,)

    def analogy_scores(self, a: str, b: str, c: str) -> torch.Tensor:
        """a − b + c (rey − hombre + mujer): the unit vectors are added, then every word is compared to the sum."""
        v = self.unit[self.vocab.index[a]] - self.unit[self.vocab.index[b]] + self.unit[self.vocab.index[c]]  # (D,)
        return self.scores(v)


# --- what `taller embeddings` prints ------------------------------------------------------------------------------


def ranked_table(title: str, ranked) -> str:
    lines = [title, f"  {'n.º':>4}  {'palabra':<18} {'similitud':>9}"]
    lines += [f"  {i:>4}  {r.word:<18} {r.similarity:>9.3f}" for i, r in enumerate(ranked, start=1)]
    return "\n".join(lines)


def near(vectors, word: str, k: int = 10) -> str:
    (word,) = vectors.check_known([word])
    ranked = vectors.ranked(vectors.near_scores(word), exclude=[word], k=k)
    return ranked_table(
        f"Las {len(ranked)} palabras más cercanas a «{word}» (similitud coseno, entre "
        f"{thousands(len(vectors.vocab) - 1)}):",
        ranked,
    )


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
    where = f"«{expected}» es la {rank}.ª de {thousands(competing)} (similitud {number(similarity, 3)})"
    verb, top = ("está", f"entre las {k} primeras") if k > 1 else ("es", "la primera")
    if rank <= k:
        return f"{where}: {verb} {top}."
    size = f"unas {thousands(round(corpus_words, -3) if corpus_words >= 10_000 else corpus_words)} palabras"
    return (
        f"{where}: NO {verb} {top}. Un corpus de {size} es pequeño para analogías: word2vec "
        "las aprendió con miles de millones de palabras; aquí los vecinos salen bien más a menudo que las analogías."
    )


def word_map(vectors, words: list[str], path: Path) -> Path:
    """The chosen words' vectors projected on their two main directions (PCA), labelled, as a PNG."""
    words = vectors.check_known(words)
    words = list(dict.fromkeys(words))
    if len(words) < 2:
        raise TallerError(
            "--plot necesita al menos dos palabras distintas, p. ej. --plot sancho quijote rocinante rucio."
        )
    xy, share = principal_plane(vectors.unit[[vectors.vocab.index[w] for w in words]])  # (n, D) -> (n, 2)
    fig = new_figure(figsize=(7.5, 6), dpi=100)
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
    fig, ax = loss_curves(
        metrics, "paso (un lote de pares centro–contexto)", "pérdida (nats por par)", "Skip-gram: curvas de pérdida"
    )
    val = [m["val_loss"] for m in metrics if "val_loss" in m]
    if val and math.isfinite(val[0]):
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    save_figure(fig, path)
