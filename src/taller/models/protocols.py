"""What a model may offer beyond `model(idx) -> logits`, each written once as a Protocol.

A kind says which ones its models implement with a field of its Kind record (kind.py); callers ask the kind
(`kind_of(run.config).shows_attention`) and then call the method, typed against the Protocol. Nobody probes a model
for an attribute. `offered(kind)` lists the Protocols a kind declares; tests build a tiny model of every kind and
check that it implements exactly those.

    Kind field          Protocol            what the model has
    shows_attention     ShowsAttention      attention_maps(idx) -> per layer (B, H, T, T), the model untouched
    encoder_decoder     ShowsCrossAttention cross_attention_maps(src, tgt) -> per decoder layer (B, H, T, S)
    shows_embedding     HasEmbedding        embedding: nn.Embedding, a vector per token
    traces_state        TracesState         trace(idx) -> {"h": (T, H), …}: a recurrent network's state along a text
    count_table         HasCountTable       table() -> (V, V) probabilities: the whole model (a bigram)
    combines ("mix")    Mixer               mixing_weights, mix, part_predictions, adapted_parameters
    slower_parts        SlowerParts         lr_ratios() -> {id(parameter): ratio}
    score_head          HasScoreHead        output: nn.Linear, the layer that writes the scores
    keeps_reading       KeepsReading        reads (whether this one counts on), read(ids, start)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn


@runtime_checkable
class ShowsAttention(Protocol):
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class ShowsCrossAttention(Protocol):
    def cross_attention_maps(self, src: torch.Tensor, tgt: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class HasEmbedding(Protocol):
    embedding: nn.Embedding


@runtime_checkable
class TracesState(Protocol):
    def trace(self, idx: torch.Tensor) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class HasCountTable(Protocol):
    def table(self) -> torch.Tensor: ...


@runtime_checkable
class Mixer(Protocol):
    def mixing_weights(self, logp: torch.Tensor) -> torch.Tensor: ...

    def mix(self, logp: torch.Tensor) -> torch.Tensor: ...

    def part_predictions(self, idx: torch.Tensor) -> torch.Tensor: ...

    def adapted_parameters(self) -> list[nn.Parameter]: ...


@runtime_checkable
class SlowerParts(Protocol):
    def lr_ratios(self) -> dict[int, float]: ...


@runtime_checkable
class HasScoreHead(Protocol):
    output: nn.Linear


@runtime_checkable
class KeepsReading(Protocol):
    reads: bool

    def read(self, ids: np.ndarray, start: int = 0) -> nn.Module: ...


# Each Protocol beside the Kind field (or property) that declares it.
PROTOCOLS: dict[str, type] = {
    "shows_attention": ShowsAttention,
    "encoder_decoder": ShowsCrossAttention,
    "shows_embedding": HasEmbedding,
    "traces_state": TracesState,
    "count_table": HasCountTable,
    "combines": Mixer,
    "slower_parts": SlowerParts,
    "score_head": HasScoreHead,
    "keeps_reading": KeepsReading,
}


def offered(kind) -> list[type]:
    """The Protocols a kind's models implement, by its declaration."""
    return [protocol for field, protocol in PROTOCOLS.items() if getattr(kind, field)]
