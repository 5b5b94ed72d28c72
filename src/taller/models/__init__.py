"""The models: every one maps character ids (B, T) to next-character logits (B, T, V), and has
`start(prompt)` / `step(char, state)` for generation, and `block_size`: the longest context it reads (None: no limit)."""

from taller.config import ModelConfig
from taller.errors import TallerError
from taller.models.lstm import LSTM
from taller.models.ngram import NGram
from taller.models.transformer import Transformer


def build_model(cfg: ModelConfig):
    if cfg.kind == "transformer":
        return Transformer(cfg)
    if cfg.kind == "lstm":
        return LSTM(cfg)
    if cfg.kind == "ngram":
        return NGram(cfg)
    raise TallerError(f"modelo desconocido '{cfg.kind}'.")


def is_count_model(model) -> bool:
    """A model fitted by counting (no trained parameters, no gradient loop)."""
    return isinstance(model, NGram)


__all__ = ["LSTM", "NGram", "Transformer", "build_model", "is_count_model"]
