"""A character LSTM: the lesson "¿Escribir como Cervantes?".

    characters ──► embedding (V → E) ──► LSTM × n_layers (hidden H, a memory carried from left to right) ──► logits

Shapes: B = batch, T = time (characters), E = d_embed, H = d_model (hidden width), L = n_layers, V = vocabulary.
Unlike attention, the LSTM has no context limit: everything it read is squeezed into its state (h, c), each (L, B, H).
In training the state starts at zero for every batch (the lesson's recipe); in generation it is carried step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from taller.models.kind import Kind, ModelConfig, need


@dataclass
class LSTMConfig(ModelConfig):
    """The [model] section of an LSTM."""

    kind: str = "lstm"
    block_size: int = 64  # the training window: characters (tokens) read before the state starts again at zero
    d_model: int = 128  # the hidden state's width
    n_layers: int = 3
    dropout: float = 0.1  # between layers
    d_embed: int = 0  # width of the character vectors (0 = d_model)

    def check(self, data) -> None:
        need(1 <= self.block_size <= 8192, f"model.block_size={self.block_size} debe estar entre 1 y 8192.")
        need(1 <= self.d_model <= 8192, f"model.d_model={self.d_model} debe estar entre 1 y 8192.")
        need(1 <= self.n_layers <= 256, f"model.n_layers={self.n_layers} debe estar entre 1 y 256.")
        need(0.0 <= self.dropout < 1.0, f"model.dropout={self.dropout} debe estar en [0, 1).")
        need(0 <= self.d_embed <= 8192, f"model.d_embed={self.d_embed} debe estar entre 0 (= d_model) y 8192.")

    def estimate_parameters(self) -> int:
        E, H, V = self.d_embed or self.d_model, self.d_model, max(self.vocab_size, 256)
        gates = 4 * H * (E + H + 2)  # the first layer: 4 gates, each reads x and h, two biases
        return V * E + gates + (self.n_layers - 1) * 4 * H * (2 * H + 2) + H * V + V

    def estimate_activations(self, batch_size: int) -> int:
        B, T, H, V = batch_size, self.block_size, self.d_model, max(self.vocab_size, 256)
        E = self.d_embed or self.d_model
        # per layer and character: the 4 gates, the memory c and its tanh, the output h, dropout (~10 H)
        return B * T * E + self.n_layers * 10 * B * T * H + 3 * B * T * V  # embeddings; layers; logits, softmax, grad


class LSTM(nn.Module):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        d_embed = cfg.d_embed or cfg.d_model
        self.embedding = nn.Embedding(cfg.vocab_size, d_embed)  # a vector per character
        self.lstm = nn.LSTM(d_embed, cfg.d_model, num_layers=cfg.n_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)  # dropout between layers
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size)  # a score (logit) per possible next character
        # PyTorch's default initialisation, as in the lesson.

    @property
    def block_size(self) -> None:
        return None  # no context limit: generation never crops the prompt

    def forward(self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """idx (B, T) character ids -> logits (B, T, V); the state starts at zero unless given."""
        return self.run(idx, state)[0]

    def run(self, idx: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.embedding(idx)  # (B, T, E)
        h, state = self.lstm(x, state)  # (B, T, H); state = (h, c), each (L, B, H)
        return self.output(h), state  # (B, T, V)

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Read a prompt (B, T); return the next-character logits (B, V) and the state (h, c)."""
        logits, state = self.run(idx)
        return logits[:, -1], state

    def step(self, idx: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """Feed one new character per row (B, 1) to the carried state; return its logits (B, V) and the new state."""
        logits, state = self.run(idx, state)
        return logits[:, -1], state

    @staticmethod
    def state_length(state: tuple) -> int:
        return 0  # the state does not grow with the text


KIND = Kind(name="lstm", title="LSTM", config=LSTMConfig, build=LSTM, objective="next_token",
            preset="base", timed_preset="lstm")
