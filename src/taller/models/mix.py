"""Mixing models: two or more trained runs of one text (a Transformer and an 8-gram) predict together.

Each part gives a distribution p_i over the next character. The mix multiplies them, each raised to a weight, and
normalises: in the log (logit) domain, a weighted sum —

    log p(c) = Σ_i w_i · log p_i(c) − log Z                (Z: whatever makes the probabilities sum to 1)

This is the logistic mixing of PAQ compressors, for an alphabet instead of single bits: a weight > 1 sharpens a
part's opinion, < 1 softens it, 0 ignores it. As in PAQ, the weights are not one set but a small table: the mixer
looks at how sure each part is (its highest probability, in `levels` bands) and uses that combination's weights. So
the mix can trust the n-gram after "Sancho Pan", where it has counted the rest many times, and the Transformer where
the n-gram has never seen the context.

The table is learnt on a slice at the end of the *training* text that the parts did not learn from (a network leaves
it unread, train.mix_slice; an n-gram is counted again without it: training/mixing.py); the validation text stays
unseen. The parts are whole runs with their own folders; the mix's own weights are the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.data.split import MAX_MIX_SLICE, MIX_SLICE
from taller.errors import TallerError
from taller.models.kind import Kind, ModelConfig, need
from taller.text import thousands

MAX_TABLE = 4096  # rows of the weight table at most: levels ** parts
MAX_PARTS = 8  # runs in one mix at most: each is loaded whole (50 parts of the base preset took 2 GB)
FLOOR = -30.0  # log-probabilities below this (a probability 0) count as this: 0 × −inf would be nan
MAX_WEIGHT = 1000.0  # a weight of the table beyond ±this is a tampered file (a fit moves them by a few units)


@dataclass
class MixConfig(ModelConfig):
    """The [model] section of a mix."""

    kind: str = "mix"
    runs: str = ""  # the run folders to mix, separated by commas (same corpus and tokenizer); once fitted, relative
    #                 to the mix's own folder
    levels: int = 4  # bands of each part's confidence (its highest probability): the table has levels ** parts rows
    #                  (at most: fewer when the slice is small, training/mixing.py's bands_for)
    held_out: float = MIX_SLICE  # the share of the training text, at its end, that fits the table (never validation)
    max_held_out: int = (
        MAX_MIX_SLICE  # ... but at most this many tokens (a network leaves them unread: train.mix_slice)
    )
    fit_steps: int = 300  # steps of Adam on that slice (the table is small: a few seconds)

    def check(self, data) -> None:
        parts = self.parts()
        need(
            len(parts) >= 2,
            f"model.runs='{self.runs}': una mezcla necesita al menos dos ejecuciones separadas por comas "
            "(p. ej. --set runs=runs/ngram,runs/transformer).",
        )
        need(
            len(parts) <= MAX_PARTS,
            f"model.runs nombra {len(parts)} ejecuciones y una mezcla admite como mucho "
            f"{MAX_PARTS} (cada una se carga entera en memoria); mezcla menos.",
        )
        need(len(set(parts)) == len(parts), f"model.runs='{self.runs}' repite una ejecución; nombra cada una una vez.")
        need(1 <= self.levels <= 16, f"model.levels={self.levels} debe estar entre 1 (un solo juego de pesos) y 16.")
        need(
            self.levels ** len(parts) <= MAX_TABLE,
            f"model.levels={self.levels} con {len(parts)} modelos da una tabla "
            f"de {self.levels ** len(parts)} filas; baja levels o mezcla menos modelos (como mucho {MAX_TABLE} filas).",
        )
        need(0.0 < self.held_out < 0.5, f"model.held_out={self.held_out} debe estar entre 0 y 0.5.")
        need(self.max_held_out >= 100, f"model.max_held_out={self.max_held_out} debe ser al menos 100.")
        need(1 <= self.fit_steps <= 100_000, f"model.fit_steps={self.fit_steps} debe estar entre 1 y 100000.")

    def parts(self) -> list[str]:
        return [p.strip() for p in self.runs.split(",") if p.strip()]

    def estimate_parameters(self) -> int:
        return self.levels ** max(1, len(self.parts())) * max(1, len(self.parts()))


class Mix(nn.Module):
    def __init__(self, cfg: MixConfig):
        super().__init__()
        self.cfg, self.K, self.levels = cfg, len(cfg.parts()), cfg.levels
        self.weights = nn.Parameter(torch.full((cfg.levels**self.K, self.K), 1.0 / self.K))  # (rows, K)
        self.register_buffer("place", cfg.levels ** torch.arange(self.K), persistent=False)  # (K,) a row's digits
        self.parts: list[nn.Module] = []  # the parts' models: attached after loading, never saved with the mix

    def attach(self, parts: list[nn.Module]) -> Mix:
        """The parts' models (a plain list: their weights stay in their own run folders)."""
        assert len(parts) == self.K
        self.parts = list(parts)
        return self

    def train(self, mode: bool = True) -> Mix:
        super().train(mode)
        for part in self.parts:
            part.train(mode)
        return self

    def adapted_parameters(self) -> list[nn.Parameter]:
        """What learns while reading (`taller score --adapt`): the table and the parts' own parameters."""
        return [self.weights] + [p for part in self.parts for p in part.parameters()]

    def load_state_dict(self, tensors: dict, strict: bool = True, assign: bool = False):
        """The table, if its weights are in range (load_tensors has checked its shape, runs/folder.py that it is
        finite)."""
        weights = tensors.get("weights")
        if weights is not None and bool((weights.abs() > MAX_WEIGHT).any()):
            raise TallerError(
                f"la tabla de la mezcla tiene pesos fuera de ±{thousands(MAX_WEIGHT)} (un ajuste los mueve "
                "unas pocas unidades); el fichero está manipulado: vuelve a ajustar la mezcla."
            )
        return super().load_state_dict(tensors, strict=strict, assign=assign)

    @property
    def reads(self) -> bool:
        """Whether it learns while reading by counting: if one of its parts does."""
        return any(getattr(part, "reads", False) for part in self.parts)

    def read(self, ids, start: int = 0) -> Mix:
        """Learning while reading, for the parts that count: they count ids[start:] (see NGram.read)."""
        for part in self.parts:
            if getattr(part, "reads", False):
                part.read(ids, start)
        return self

    @property
    def block_size(self) -> int | None:
        """The shortest window of the parts (None if none has one)."""
        sizes = [p.block_size for p in self.parts if p.block_size is not None]
        return min(sizes) if sizes else None

    # --- mixing ---------------------------------------------------------------------------------------------------
    def rows(self, logp: torch.Tensor) -> torch.Tensor:
        """(…, K, V) log-probabilities -> (…,) the table's row: each part's confidence band, as digits."""
        confidence = logp.max(dim=-1).values.exp()  # (…, K) each part's highest probability
        band = (confidence * self.levels).long().clamp(max=self.levels - 1)  # (…, K) 0 … levels-1
        return (band * self.place).sum(dim=-1)  # (…,)

    def mixing_weights(self, logp: torch.Tensor) -> torch.Tensor:
        """(…, K, V) -> (…, K): the weight each part gets there."""
        return self.weights[self.rows(logp)]

    def mix(self, logp: torch.Tensor) -> torch.Tensor:
        """(…, K, V) the parts' log-probabilities -> (…, V) the mix's log-probabilities."""
        logp = logp.clamp(min=FLOOR)
        w = self.mixing_weights(logp)  # (…, K)
        return F.log_softmax((w.unsqueeze(-1) * logp).sum(dim=-2), dim=-1)  # Σ_i w_i log p_i, normalised

    def part_predictions(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> (B, T, K, V): each part's log-probabilities of the next token."""
        return torch.stack([F.log_softmax(p(idx).float(), dim=-1) for p in self.parts], dim=-2)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> (B, T, V) log-probabilities of the next token."""
        return self.mix(self.part_predictions(idx))

    # --- generation: each part carries its own state ----------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, list]:
        steps = [p.start(idx if p.block_size is None else idx[:, -p.block_size :]) for p in self.parts]
        return self.mixed(steps)

    def step(self, idx: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        return self.mixed([p.step(idx, s) for p, s in zip(self.parts, state)])

    def mixed(self, steps: list[tuple]) -> tuple[torch.Tensor, list]:
        logp = torch.stack([F.log_softmax(logits.float(), dim=-1) for logits, _ in steps], dim=-2)  # (B, K, V)
        return self.mix(logp), [state for _, state in steps]

    def state_length(self, state: list) -> int:
        """How much of the window is read: that of the parts with a window."""
        lengths = [p.state_length(s) for p, s in zip(self.parts, state) if p.block_size is not None]
        return max(lengths, default=0)

    def describe(self) -> str:
        return f"mezcla de {self.K} modelos ({self.weights.shape[0]} juegos de pesos)"


KIND = Kind(
    name="mix",
    title="mezcla",
    article="una",
    config=MixConfig,
    build=Mix,
    objective="mix",
    preset="mix",
    timed_preset="mix",
    resumable=False,
    distributed=False,
    prepared_data=False,
    keeps_reading=True,
)
