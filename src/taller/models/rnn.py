"""A plain recurrent network (Elman, 1990): the simplest memory. At every character, the new state is a squashed
mix of the character and the previous state:

    h_t = tanh(W_x · x_t + b_x + W_h · h_{t−1} + b_h)          x_t: the character's vector (E), h_t: the state (H)

Everything the network remembers has to pass through that one tanh at every step, again and again: what it read long
ago fades (its gradient vanishes), which is the lesson's point against the LSTM's gates. See recurrent.py for what
it shares with the LSTM (embedding, output, generation) and for the fused/explicit paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from taller.models.kind import Kind
from taller.models.recurrent import Recurrent, RecurrentConfig, check_recurrent


@dataclass
class RNNConfig(RecurrentConfig):
    """The [model] section of a plain RNN."""

    kind: str = "rnn"
    block_size: int = 64  # the training window: characters read before the state starts again at zero
    d_model: int = 128  # the state's width
    n_layers: int = 1
    dropout: float = 0.0  # between layers
    d_embed: int = 0  # width of the character vectors (0 = d_model)
    recurrence: str = "fused"  # fused (nn.RNN) | explicit (the loop written out: the same numbers)

    def check(self, data) -> None:
        check_recurrent(self)

    def estimate_parameters(self) -> int:
        E, H, V = self.d_embed or self.d_model, self.d_model, max(self.vocab_size, 256)
        return V * E + H * (E + H + 2) + (self.n_layers - 1) * H * (2 * H + 2) + H * V + V

    def estimate_activations(self, batch_size: int) -> int:
        B, T, H, V = batch_size, self.block_size, self.d_model, max(self.vocab_size, 256)
        E = self.d_embed or self.d_model
        # per layer and character: the pre-activation, its tanh and dropout (~3 H)
        return B * T * E + self.n_layers * 3 * B * T * H + 3 * B * T * V  # embeddings; layers; logits, softmax, grad


def elman_cell(x: torch.Tensor, h: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, dict]:
    """One step: x (B, E), h (B, H) -> the new h (B, H) (and nothing else to show)."""
    return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh), {}


class RNN(Recurrent):
    def __init__(self, cfg: RNNConfig):
        super().__init__(cfg, nn.RNN, nonlinearity="tanh")

    cell = staticmethod(elman_cell)

    def zero_state(self, B: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(self.cfg.n_layers, B, self.cfg.d_model)  # (L, B, H)

    @staticmethod
    def layer_state(state: torch.Tensor, layer: int) -> torch.Tensor:
        return state[layer]

    @staticmethod
    def stack_states(finals: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(finals)  # (L, B, H), as nn.RNN returns it


KIND = Kind(
    name="rnn",
    title="RNN",
    article="una",
    config=RNNConfig,
    build=RNN,
    objective="next_token",
    preset="base",
    timed_preset="lstm",
    shows_embedding=True,
    traces_state=True,
    score_head=True,
    exports=("html", "onnx"),
)
