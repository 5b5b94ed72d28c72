"""An average of the weights along the way (Polyak averaging, as an exponential moving average):

    after step t:   average ← d · average + (1 − d) · weights,   d = min(decay, (1 + t) / (3 + t))

With decay 0.99 the average spans about the last 100 steps (from step 197 on); early on d is smaller (1/3, 1/2,
3/5 …), so that a short run is not averaged with its random starting weights. (On 300 refranes, bench/README.md:
(1 + t) / (10 + t), slower to reach 0.99, scored 2.655 bits/char; this one 2.611; 0.99 from the first step 2.602,
but then a run of 60 steps keeps 55% of its random start.)

On a small text the weights jitter around a good place, and every step nudges them towards memorising the batch it
has just seen; their average sits nearer the middle. It is what gets scored on validation, kept as the best, and
saved as the model at the end. The weights themselves go on training unchanged (they are what the next step moves),
and both are in the checkpoint, so that --resume goes on exactly.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

PREFIX = "average."  # the average's tensors in optim.safetensors, beside the optimizer's


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """After step `step` (0 for the first): the weights join the average."""
        decay = min(self.decay, (1 + step) / (3 + step))
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.weights[name].lerp_(value, 1.0 - decay)
            else:  # counters and the like: the latest
                self.weights[name].copy_(value)

    @contextmanager
    def in_place_of(self, model: torch.nn.Module):
        """Inside the block the model holds the average (to be scored or copied); after it, its own weights again."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v for k, v in self.weights.items()}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        """From a checkpoint's tensors (a checkpoint written without an average leaves it as the weights are)."""
        for name in self.weights:
            if PREFIX + name in tensors:
                self.weights[name].copy_(tensors[PREFIX + name])
