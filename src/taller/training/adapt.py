"""Learning while reading (dynamic evaluation, Krause et al. 2017): score a window, then learn from it.

    for each window of the validation text, in order:
        score its new characters with the weights as they are      ← the figure reported
        one small gradient step on the whole window                ← it has been read: learning from it is fair

A compressor does the same: what it has just read predicts what comes next (names, a chapter's words). The model
is a copy; the run's weights on disk are never written. The static figure is always reported beside this one.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from taller.data.batches import eval_windows
from taller.errors import TallerError
from taller.evaluate import Score, bits_per_char, evaluate, scoring_window, val_text
from taller.models import kind_of
from taller.runs.folder import validation_tokens

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
# Quijote, 300-s `base` Transformer (bench/README): SGD 0.03 made it worse (2.061 → 2.136); Adam 1e-4 helped the mix
# of it and the 8-gram (1.768 → 1.749). SGD's default is a tenth of the rate that hurt.
DEFAULT_LR = {"sgd": 3e-3, "adam": 1e-4}


@dataclass
class Adaptation:
    optimizer: str = "adam"
    lr: float = 0.0  # 0: the optimizer's default above

    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.optimizer]


def check_adaptable(run) -> None:
    kind = kind_of(run.config)
    if kind.counted:
        raise TallerError(f"--adapt aprende por gradiente y un {kind.title} se ajusta contando, sin parámetros "
                          "entrenables; úsalo con un transformer, un lstm, una rnn o una mezcla.")


def adapt_score(model, ids: np.ndarray, chars: np.ndarray, block_size: int, how: Adaptation) -> Score:
    """Bits per character of `ids` read in order, each window scored before it is learnt from (on a copy)."""
    if how.optimizer not in OPTIMIZERS:
        raise TallerError(f"--optimizer {how.optimizer}: usa {' o '.join(OPTIMIZERS)}.")
    model = copy.deepcopy(model)  # the caller's model (and the files) stay as they were
    model.eval()  # no dropout: the same predictions as the static score, but with gradients
    params = [p for p in adapted_parameters(model) if p.is_floating_point()]
    if not params:
        raise TallerError("este modelo no tiene parámetros que adaptar.")
    for p in params:
        p.requires_grad_(True)
    optimizer = OPTIMIZERS[how.optimizer](params, lr=how.learning_rate())
    windows, mask = eval_windows(ids, block_size)  # (W, T+1), (W, T)
    char_windows, _ = eval_windows(chars, block_size)
    total, tokens, n_chars = 0.0, 0, 0
    for w, m, c in zip(windows, mask, char_windows[:, 1:]):
        logits = model(w[None, :-1])[0]  # (T, V)
        losses = F.cross_entropy(logits.float(), w[1:], reduction="none")  # (T,)
        total += float(losses[m].detach().sum())  # scored first, with the weights as they were
        tokens, n_chars = tokens + int(m.sum()), n_chars + int(c[m].sum())
        optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()  # then learnt from: every token of the window has been read
        optimizer.step()
    return Score(total / max(1, tokens), bits_per_char(total, n_chars), tokens, n_chars)


def adapted_parameters(model) -> list[torch.Tensor]:
    """What learns while reading: the model's parameters (a mix: its table and its parts')."""
    return list(model.adapted_parameters()) if hasattr(model, "adapted_parameters") else list(model.parameters())


@dataclass
class RunScores:
    static: Score
    adapted: Score | None
    window: int


def score_run(run, how: Adaptation | None = None) -> RunScores:
    """The run's validation text scored as it is and, with `how`, while learning from it."""
    if how is not None:
        check_adaptable(run)
    ids, chars = validation_tokens(run)
    window = scoring_window(run.model, run.config.model)
    static = evaluate(run.model, val_text(ids, chars, window), torch.device("cpu"), nullcontext())
    adapted = adapt_score(run.model, ids, chars, window, how) if how is not None else None
    return RunScores(static, adapted, window)
