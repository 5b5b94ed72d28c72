"""The registry of model kinds: one table, filled from the files that hold the models.

Every left-to-right language model maps token ids (B, T) to next-token logits (B, T, V), has `start(prompt)` /
`step(token, state)` for generation, and `block_size`: the longest context it reads (None: no limit). What each kind
is — its [model] section, its builder, how it learns, what it can do — is its `KIND` record (see kind.py).
"""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from taller.errors import TallerError
from taller.models import bert, bigram, counted_labels, lstm, mix, ngram, rnn, skipgram, t5, transformer
from taller.models.kind import BY_PASSES, Kind, ModelConfig, need
from taller.models.lstm import LSTM
from taller.models.ngram import NGram
from taller.models.transformer import Transformer

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        transformer.KIND,
        lstm.KIND,
        rnn.KIND,
        ngram.KIND,
        bigram.KIND,
        skipgram.KIND,
        bert.KIND,
        bert.CLASSIFIER,
        bert.TAGGER,
        t5.KIND,
        t5.TASKS,
        t5.TILDES,
        mix.KIND,
        counted_labels.KIND,
    )
}


def kind_named(name: str) -> Kind:
    if name not in KINDS:
        raise TallerError(f"configuración imposible: model.kind='{name}' no existe; usa {', '.join(KINDS)}.")
    return KINDS[name]


def kind_of(config) -> Kind:
    """The kind of a whole configuration (or of its [model] section)."""
    return kind_named(getattr(config, "model", config).kind)


def build_model(cfg: ModelConfig):
    """A fresh model of the kind `cfg` names (its vocab_size already filled in). A dropout still to be chosen by how
    many times the text will be read (-1: training chooses it before building) is 0 when built with no text at hand."""
    if getattr(cfg, "dropout", None) == BY_PASSES:
        cfg = dataclasses.replace(cfg, dropout=0.0)
    return kind_of(cfg).build(cfg)


def set_dropout(model: nn.Module, rate: float) -> None:
    """Every dropout of a built model at `rate` from now on (the rule by passes, corrected once the first steps have
    measured the speed: training/passes.py): its nn.Dropout modules, and the dropout between a recurrent core's layers.
    """
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = rate
        elif isinstance(module, nn.RNNBase) and module.num_layers > 1:
            module.dropout = rate


def task_kind(task: str, model: str | None = None) -> str:
    """The kind that learns `--task TASK` on top of `model`'s runs (without --model: the kind that offers it)."""
    if model is None:
        offering = sorted((k for k in KINDS.values() if task in dict(k.tasks)), key=lambda k: k.objective == "counts")
        # a network learns a task by default; the counting kind (the n-gram's classifier) when --model names it
        if not offering:
            tasks = sorted({t for k in KINDS.values() for t, _ in k.tasks})
            raise TallerError(f"--task {task}: no existe; las tareas son {', '.join(tasks)}.")
        model = offering[0].name
    return kind_named(model).task(task)


def language_models() -> list[str]:
    """The kinds that read and write text (what `taller compare` can race)."""
    return [name for name, kind in KINDS.items() if kind.language_model]


__all__ = [
    "KINDS",
    "LSTM",
    "Kind",
    "ModelConfig",
    "NGram",
    "Transformer",
    "build_model",
    "kind_named",
    "kind_of",
    "language_models",
    "need",
    "set_dropout",
    "task_kind",
]
