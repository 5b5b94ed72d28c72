"""The bigram: the first model of every course. Count which character follows which, and read the counts as
probabilities.

    counts[a, b] = how many times character b came right after character a in the training text      (V × V)
    P(b | a)     = (counts[a, b] + k) / (Σ_b' counts[a, b'] + k·V)                                    (add-k smoothing)

Each row of the table is a probability distribution over the next character: it sums to 1. With k = 0 a pair never
seen has probability 0 — and a text that contains it costs infinitely many bits — so taller's default is k = 1
(Laplace): every pair keeps a little. The whole model is the table: `taller explain` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from taller.errors import TallerError
from taller.models.kind import Kind, ModelConfig, need
from taller.text import show_char, thousands


@dataclass
class BigramConfig(ModelConfig):
    """The [model] section of a bigram."""

    kind: str = "bigram"
    smoothing: float = 1.0  # k of add-k: a pseudo-count added to every cell (0 = none: unseen pairs are impossible)

    def check(self, data) -> None:
        need(
            0.0 <= self.smoothing <= 1000.0,
            f"model.smoothing={self.smoothing} debe estar entre 0 y 1000 (1 = Laplace).",
        )
        need(
            data.tokenizer == "char",
            f"el bigrama cuenta parejas de caracteres y no admite "
            f"data.tokenizer='{data.tokenizer}'; usa --tokenizer char.",
        )

    def estimate_parameters(self) -> int:
        return 0  # counts, not parameters


class Bigram(nn.Module):
    def __init__(self, cfg: BigramConfig):
        super().__init__()
        self.cfg, self.V, self.k = cfg, cfg.vocab_size, cfg.smoothing
        self.register_buffer("counts", torch.zeros(self.V, self.V, dtype=torch.int64))  # (V, V): row = current

    @property
    def block_size(self) -> None:
        return None  # it only ever looks at the last character

    @property
    def num_counts(self) -> int:
        return int((self.counts > 0).sum())  # distinct pairs seen

    def describe(self) -> str:
        return f"bigramas de caracteres (una tabla de {self.V} × {self.V})"

    def fit(self, ids: np.ndarray) -> Bigram:
        """Count every pair of neighbours of the training text: one np.add.at, no loop."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            raise TallerError(f"el texto de entrenamiento tiene {len(ids)} caracteres: un bigrama necesita al menos 2.")
        counts = np.zeros((self.V, self.V), np.int64)
        np.add.at(counts, (ids[:-1], ids[1:]), 1)  # counts[a, b] += 1 for every neighbour pair (a, b)
        self.counts = torch.from_numpy(counts)
        return self

    def table(self) -> torch.Tensor:
        """P(next | current): (V, V), each row sums to 1 (a row never seen, with k = 0, is uniform)."""
        c = self.counts.double() + self.k  # (V, V)
        totals = c.sum(dim=1, keepdim=True)  # (V, 1)
        return torch.where(totals > 0, c / totals.clamp(min=1e-300), torch.full_like(c, 1.0 / self.V))

    def log_probs(self, ids: np.ndarray) -> np.ndarray:
        """ln P(ids[i] | ids[i-1]) for i = 1 … len-1: how a text is scored. (len-1,) float64."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.log(self.table().numpy()[ids[:-1], ids[1:]])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> (B, T, V) log-probabilities of every next character: row idx[b, t] of the table."""
        return self.table().log().float().to(idx.device)[idx]

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self(idx[:, -1:])[:, -1], None  # the state: nothing, the last character is all it needs

    def step(self, idx: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.start(idx)

    @staticmethod
    def state_length(state) -> int:
        return 0

    # --- files ----------------------------------------------------------------------------------------------------
    def load_state_dict(self, tensors: dict, strict: bool = True, assign: bool = False):
        counts = tensors.get("counts")
        if counts is None or tuple(counts.shape) != (self.V, self.V) or (counts < 0).any():
            raise TallerError(
                "la tabla de cuentas guardada está dañada o no es de esta ejecución; vuelve a ajustar el modelo."
            )
        self.counts = counts.to(torch.int64).clone()

    def count_table(self, tokenizer=None) -> str:
        """parameters.txt for the bigram: the size of its table and the most frequent pairs."""
        c = self.counts
        name = (lambda i: show_char(tokenizer.decode([i]))) if tokenizer is not None else str
        top = torch.topk(c.flatten(), min(10, c.numel()))
        lines = [
            f"Tabla de bigramas: {self.V} × {self.V} = {thousands(self.V * self.V)} casillas, "
            f"{thousands(self.num_counts)} parejas distintas vistas, {thousands(int(c.sum()))} parejas en total",
            f"Suavizado add-k: k = {self.k:g}",
            "",
            "Las parejas más frecuentes:",
        ]
        lines += [
            f"  {name(int(i) // self.V):>4} → {name(int(i) % self.V):<4} {thousands(int(n)):>10}"
            for n, i in zip(top.values, top.indices)
            if n > 0
        ]
        lines += ["", "Un modelo de cuentas no tiene parámetros entrenados: la tabla es el modelo."]
        return "\n".join(lines) + "\n"


KIND = Kind(
    name="bigram",
    title="bigrama",
    config=BigramConfig,
    build=Bigram,
    objective="counts",
    preset="base",
    timed_preset="ngram",
    resumable=False,
    distributed=False,
    prepared_data=False,
    count_table=True,
    exports=("html", "onnx"),
)
