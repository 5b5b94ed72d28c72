"""A character LSTM (Hochreiter & Schmidhuber, 1997): the lesson "¿Escribir como Cervantes?".

A plain RNN squeezes everything through one tanh at every step, and what it read long ago fades. The LSTM keeps a
second state, the memory c, that is changed only by adding and by gates (numbers between 0 and 1) that decide, at
every character, how much of the old memory to forget, how much of the new candidate to write, and how much of the
memory to show as output. Where the forget gate stays open, the memory carries far. Its state is (h, c), each
(L, B, H). See recurrent.py for what it shares with the plain RNN and for the fused/explicit paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from taller.models.kind import Kind
from taller.models.recurrent import Recurrent, RecurrentConfig, check_recurrent


@dataclass
class LSTMConfig(RecurrentConfig):
    """The [model] section of an LSTM."""

    kind: str = "lstm"
    block_size: int = 64  # the training window: characters (tokens) read before the state starts again at zero
    d_model: int = 128  # the hidden state's width
    n_layers: int = 3
    dropout: float = 0.1  # between layers
    d_embed: int = 0  # width of the character vectors (0 = d_model)
    recurrence: str = "fused"  # fused (nn.LSTM) | explicit (the cell written out below: the same numbers)

    def check(self, data) -> None:
        check_recurrent(self)

    def estimate_parameters(self) -> int:
        E, H, V = self.d_embed or self.d_model, self.d_model, max(self.vocab_size, 256)
        gates = 4 * H * (E + H + 2)  # the first layer: 4 gates, each reads x and h, two biases
        return V * E + gates + (self.n_layers - 1) * 4 * H * (2 * H + 2) + H * V + V

    def estimate_activations(self, batch_size: int) -> int:
        B, T, H, V = batch_size, self.block_size, self.d_model, max(self.vocab_size, 256)
        E = self.d_embed or self.d_model
        # per layer and character: the 4 gates, the memory c and its tanh, the output h, dropout (~10 H)
        return B * T * E + self.n_layers * 10 * B * T * H + 3 * B * T * V  # embeddings; layers; logits, softmax, grad


def lstm_cell(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_ih, w_hh, b_ih, b_hh):
    """One step: x (B, E), state (h, c) each (B, H) -> the new (h, c), and the gates (each (B, H)) to show them.
    The gates decide what the memory keeps."""
    h, c = state
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H): PyTorch's order, input, forget, candidate, output
    i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)  # gates: 0 = shut, 1 = open
    g = torch.tanh(g)  # the candidate: what could be written into the memory
    c = f * c + i * g  # forget some of the old memory, write some of the new
    h = o * torch.tanh(c)  # show some of the memory as this step's output
    return (h, c), {"puerta de olvido": f, "puerta de entrada": i, "puerta de salida": o}


class LSTM(Recurrent):
    def __init__(self, cfg: LSTMConfig):
        super().__init__(cfg, nn.LSTM)

    cell = staticmethod(lstm_cell)

    def zero_state(self, B: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(self.cfg.n_layers, B, self.cfg.d_model)  # (L, B, H)
        return zeros, zeros.clone()

    @staticmethod
    def layer_state(state: tuple[torch.Tensor, torch.Tensor], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return state[0][layer], state[1][layer]

    @staticmethod
    def stack_states(finals: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])  # (L, B, H) each


KIND = Kind(
    name="lstm",
    title="LSTM",
    config=LSTMConfig,
    build=LSTM,
    objective="next_token",
    preset="base",
    timed_preset="lstm",
    shows_embedding=True,
    traces_state=True,
    score_head=True,
    exports=("html", "onnx"),
)
