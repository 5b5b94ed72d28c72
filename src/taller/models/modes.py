"""Eval mode for a while: one way to switch a model to eval mode and back.

with evaluating(model):      # dropout off, a BatchNorm's running statistics used (and not updated)
    logits = model(idx)
# the model is back in the mode it was in, train or eval, even after an exception
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Switch `model` to eval mode and, on the way out, back to the mode it had (`model.train(mode)`: a mix passes it
    on to its parts)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
