"""The counting classifier: one character n-gram per label, and Bayes' rule (naive Bayes over characters).

    taller train --model ngram --task clasificar --corpus refranero-o-cervantes --out runs/rc-ngram

Fitting: the training texts of each label, one per line, counted by that label's own n-gram (models/ngram.py).
Answering: a text goes to the label whose n-gram finds it most probable, times how common the label is:

    score(label | text) = ln P(label) + Σ_i ln P_label(c_i | the n-1 characters before c_i)

with the text read between two line ends (the first character is read after a line end, and the end is scored
too), as the n-grams learnt it. The scores are logits: their softmax is P(label | text) under the naive assumption
that the n-gram is the whole truth about each label's texts. No gradient, no loop: it fits in a second, and it is
the bar a BERT fine-tuned for the same labels has to clear (`taller compare --task clasificar`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from taller.errors import TallerError
from taller.models.kind import Kind, ModelConfig, need
from taller.models.ngram import MAX_ORDER, NGram, NGramConfig


@dataclass
class CountedLabelsConfig(ModelConfig):
    """The [model] section of the counting classifier."""

    kind: str = "ngram-clasificador"
    order: int = 5  # each label's n-gram (bench/classify_ceiling.py: 3 … 6 on «¿refranero o Cervantes?»)
    n_labels: int = 0  # filled in from the labelled lines
    block_size: int = 1000  # the longest text read, in characters (the rest is cut, as a BERT classifier's window)
    line_end: int = -1  # the newline's id, filled in from the tokenizer: each text is read between two of them

    def check(self, data) -> None:
        need(1 <= self.order <= MAX_ORDER, f"model.order={self.order} debe estar entre 1 y {MAX_ORDER}.")
        need(
            data.tokenizer == "char",
            f"el clasificador de n-gramas cuenta caracteres y no admite "
            f"data.tokenizer='{data.tokenizer}'; usa --tokenizer char.",
        )
        need(
            self.n_labels == 0 or 2 <= self.n_labels <= 1000,
            f"model.n_labels={self.n_labels}: un clasificador necesita entre 2 y 1000 etiquetas.",
        )


class CountedLabels(nn.Module):
    """texts (B, T) ──► each label's n-gram: ln P(text) (B, L) ──► + ln P(label) ──► label logits (B, L)"""

    def __init__(self, cfg: CountedLabelsConfig):
        super().__init__()
        self.cfg = cfg
        self.parts = [
            NGram(NGramConfig(vocab_size=cfg.vocab_size, order=cfg.order)) for _ in range(max(2, cfg.n_labels))
        ]
        self.log_prior = np.zeros(len(self.parts))  # (L,) ln of each label's share of the training texts

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    def framed(self, ids) -> np.ndarray:
        return np.concatenate([[self.cfg.line_end], np.asarray(ids, dtype=np.int64), [self.cfg.line_end]])

    def fit(self, texts: list[list[int]], labels: list[int]) -> CountedLabels:
        """Count each label's texts (ids) with its own n-gram; the labels' shares are the prior."""
        for k, part in enumerate(self.parts):
            mine = [self.framed(t) for t, label in zip(texts, labels) if label == k]
            if not mine:
                raise TallerError(
                    f"la etiqueta {k} no tiene ningún texto de entrenamiento; cada etiqueta necesita alguno."
                )
            part.fit(np.concatenate(mine))
        self.log_prior = np.log(np.bincount(labels, minlength=len(self.parts)) / len(labels))
        return self

    def forward(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) texts, keys (B, T) True where there is text (False: padding) -> label logits (B, L)."""
        rows = idx.cpu().numpy()
        keep = np.ones(rows.shape, bool) if keys is None else keys.cpu().numpy()
        out = [
            [part.log_probs(self.framed(row[k])).sum() + p for part, p in zip(self.parts, self.log_prior)]
            for row, k in zip(rows, keep)
        ]
        return torch.tensor(out, dtype=torch.float32, device=idx.device)

    # --- files: the counts of each label, and the prior -----------------------------------------------------------
    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        out = {"log_prior": torch.from_numpy(self.log_prior.astype(np.float64))}
        for k, part in enumerate(self.parts):
            out.update({f"label{k}.{name}": t for name, t in part.state_dict().items()})
        return out

    def load_state_dict(self, tensors: dict, strict: bool = True, assign: bool = False):
        if "log_prior" not in tensors or tensors["log_prior"].shape != (len(self.parts),):
            raise TallerError(
                "las cuentas guardadas no son las de este clasificador; el fichero no es de esta ejecución."
            )
        self.log_prior = tensors["log_prior"].numpy().astype(np.float64)
        for k, part in enumerate(self.parts):
            prefix = f"label{k}."
            part.load_state_dict({name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)})


KIND = Kind(
    name="ngram-clasificador",
    title="clasificador de n-gramas",
    config=CountedLabelsConfig,
    build=CountedLabels,
    objective="counts",
    preset="ngram",
    timed_preset="ngram",
    language_model=False,
    classifies=True,
    resumable=False,
    distributed=False,
    prepared_data=False,
    refusal="{run} es un clasificador de n-gramas: no escribe ni rellena texto; pregúntale con "
    '`taller classify {run} --text "…"`.',
)
