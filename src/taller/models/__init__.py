"""The models: every one maps character ids (B, T) to next-character logits (B, T, V), and has
`start(prompt)` / `step(char, state)` for generation."""

from ..config import ModelConfig
from ..errors import TallerError
from .transformer import Transformer


def build_model(cfg: ModelConfig):
    if cfg.kind == "transformer":
        return Transformer(cfg)
    raise TallerError(f"modelo desconocido '{cfg.kind}'.")


__all__ = ["Transformer", "build_model"]
