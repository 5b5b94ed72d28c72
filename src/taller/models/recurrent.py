"""What the recurrent networks (the plain RNN and the LSTM) share: read one character at a time, carry a state.

    characters ──► embedding (V → E) ──► recurrent layers × L (a state carried from left to right) ──► logits

Shapes: B = batch, T = time (characters), E = d_embed, H = d_model (the state's width), L = n_layers, V = vocabulary.
A recurrent network has no context limit: everything it read is squeezed into its state. In training the state starts
at zero for every window (the lesson's recipe); in generation it is carried step by step.

Two paths compute the same numbers with the same weights (PyTorch's, so that checkpoints don't depend on the path):
`recurrence = "fused"` calls nn.RNN / nn.LSTM (one optimised kernel); `recurrence = "explicit"` is the loop written
out below, one line of algebra a step, to be read (and tested equal).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.models.kind import BY_PASSES, ModelConfig, need
from taller.models.modes import evaluating


class RecurrentConfig(ModelConfig):
    """What both recurrent [model] sections say beyond their fields (each has block_size and recurrence)."""

    @property
    def training_window(self) -> int:
        return self.block_size  # trained on windows of block_size, scored on them too; it could read further

    def traceable(self) -> ModelConfig:
        return dataclasses.replace(self, recurrence="fused")  # a Python loop over time would fix T when traced


def check_recurrent(cfg) -> None:
    """The rules both recurrent [model] sections share."""
    need(1 <= cfg.block_size <= 8192, f"model.block_size={cfg.block_size} debe estar entre 1 y 8192.")
    need(1 <= cfg.d_model <= 8192, f"model.d_model={cfg.d_model} debe estar entre 1 y 8192.")
    need(1 <= cfg.n_layers <= 256, f"model.n_layers={cfg.n_layers} debe estar entre 1 y 256.")
    need(
        0.0 <= cfg.dropout < 1.0 or cfg.dropout == BY_PASSES,
        f"model.dropout={cfg.dropout} debe estar en [0, 1) (o -1: según cuántas veces se leerá el texto).",
    )
    need(0 <= cfg.d_embed <= 8192, f"model.d_embed={cfg.d_embed} debe estar entre 0 (= d_model) y 8192.")
    need(cfg.recurrence in ("fused", "explicit"), f"model.recurrence='{cfg.recurrence}': usa fused o explicit.")


class Recurrent(nn.Module):
    """The frame of a recurrent language model; a subclass gives its layers (`core`) and its `cell` (one step)."""

    def __init__(self, cfg, core: type[nn.RNNBase], **core_options):
        super().__init__()
        self.cfg = cfg
        d_embed = cfg.d_embed or cfg.d_model
        self.embedding = nn.Embedding(cfg.vocab_size, d_embed)  # a vector per character
        self.core_name = core.__name__.lower()  # "rnn" or "lstm": the attribute that holds the layers (weights' names)
        setattr(
            self,
            self.core_name,
            core(
                d_embed,
                cfg.d_model,
                num_layers=cfg.n_layers,
                batch_first=True,
                dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
                **core_options,
            ),
        )
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size)  # a score (logit) per possible next character
        # PyTorch's default initialisation, as in the lesson.

    @property
    def core(self) -> nn.RNNBase:
        return getattr(self, self.core_name)

    @property
    def block_size(self) -> None:
        return None  # no context limit: generation never crops the prompt

    def forward(self, idx: torch.Tensor, state=None) -> torch.Tensor:
        """idx (B, T) character ids -> logits (B, T, V); the state starts at zero unless given."""
        return self.run(idx, state)[0]

    def run(self, idx: torch.Tensor, state=None):
        x = self.embedding(idx)  # (B, T, E)
        if self.cfg.recurrence == "explicit":
            h, state = self.unroll(x, state)
        else:
            h, state = self.core(x, state)  # (B, T, H)
        return self.output(h), state  # (B, T, V)

    def unroll(self, x: torch.Tensor, state=None, record: list | None = None):
        """The readable path: layer by layer, character by character, with the fused path's own weights. With
        `record`, each step of the last layer appends what the cell computed (its state, and the LSTM's gates)."""
        B, L = x.size(0), self.cfg.n_layers
        state = self.zero_state(B, x) if state is None else state
        finals = []
        for layer in range(L):
            weights = [
                getattr(self.core, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            s = self.layer_state(state, layer)
            outputs = []
            for t in range(x.size(1)):
                s, parts = self.cell(x[:, t], s, *weights)
                outputs.append(s[0] if isinstance(s, tuple) else s)  # h_t, the layer's output at t
                if record is not None and layer == L - 1:
                    record.append({"estado": outputs[-1], **parts})
            x = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            if layer < L - 1:
                x = F.dropout(x, self.core.dropout, self.training)
            finals.append(s)
        return x, self.stack_states(finals)

    @torch.no_grad()
    def trace(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the last layer computed at each character of one text (1, T): name -> (T, H) ("estado", and for the
        LSTM its gates), for `taller explain`."""
        record: list[dict] = []
        with evaluating(self):
            self.unroll(self.embedding(idx), record=record)
        return {name: torch.stack([step[name][0] for step in record]) for name in record[0]}

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor):
        """Read a prompt (B, T); return the next-character logits (B, V) and the state."""
        logits, state = self.run(idx)
        return logits[:, -1], state

    def step(self, idx: torch.Tensor, state):
        """Feed one new character per row (B, 1) to the carried state; return its logits (B, V) and the new state."""
        logits, state = self.run(idx, state)
        return logits[:, -1], state

    @staticmethod
    def state_length(state) -> int:
        return 0  # the state does not grow with the text
