"""Learning while reading (dynamic evaluation, Krause et al. 2017): score a window, then learn from it.

    for each window of the validation text, in order:
        score its new characters with the weights as they are      ← the figure reported
        one small gradient step on the whole window                ← it has been read: learning from it is fair
        every COUNT_EVERY characters, a counting model (the n-gram, alone or in a mix) counts what it has read

A compressor does the same: what it has just read predicts what comes next (names, a chapter's words). The model
is a copy; the run's weights on disk are never written. The static figure is always reported beside this one.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from taller.errors import TallerError
from taller.evaluate import Score, bits_per_char, evaluate, scoring_window, val_text, window_logits
from taller.models import Kind, kind_of
from taller.models.protocols import KeepsReading, Mixer
from taller.runs.folder import validation_tokens
from taller.text import thousands

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
# Quijote, 300-s `base` Transformer (bench/README): SGD 0.03 made it worse (2.061 → 2.136); Adam 1e-4 helped the mix
# of it and the 8-gram (1.768 → 1.749). SGD's default is a tenth of the rate that hurt.
DEFAULT_LR = {"sgd": 3e-3, "adam": 1e-4}
# Counting rebuilds the n-gram's tables (0.2 s for the Quijote's 8-gram), so it counts in steps. On the Quijote's
# validation the 8-gram alone gives 1.838 static, 1.815 counting every 16,384 characters, 1.806 every 4,096, 1.803
# every 2,048 (about 100 rebuilds: 44 s for the whole validation text).
COUNT_EVERY = 2048


@dataclass
class Adaptation:
    optimizer: str = "adam"
    lr: float = 0.0  # 0: the optimizer's default above

    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.optimizer]


def can_adapt(run) -> bool:
    """A network learns while reading by gradient steps; a count model, if it can go on counting (the n-gram)."""
    kind = kind_of(run.config)
    return not kind.counted or reads(run.model, kind)


def reads(model, kind: Kind) -> bool:
    """Whether this model goes on counting what it reads (an n-gram; a mix with one among its parts)."""
    return kind.keeps_reading and cast(KeepsReading, model).reads


def check_adaptable(run) -> None:
    kind = kind_of(run.config)
    if not can_adapt(run):
        raise TallerError(
            f"--adapt aprende mientras lee, y {kind.a_title} ni tiene parámetros entrenables ni sabe "
            "seguir contando; úsalo con un n-grama, un transformer, un lstm, una rnn o una mezcla."
        )


def adapt_score(model, kind: Kind, ids: np.ndarray, chars: np.ndarray, block_size: int, how: Adaptation) -> Score:
    """Bits per character of `ids` read in order, each window scored before it is learnt from (on a copy)."""
    if how.optimizer not in OPTIMIZERS:
        raise TallerError(f"--optimizer {how.optimizer}: usa {' o '.join(OPTIMIZERS)}.")
    model = copy.deepcopy(model)  # the caller's model (and the files) stay as they were
    model.eval()  # no dropout: the same predictions as the static score, but with gradients
    params = [p for p in adapted_parameters(model, kind) if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    optimizer = OPTIMIZERS[how.optimizer](params, lr=how.learning_rate()) if params else None
    val, counting = val_text(ids, chars, block_size), reads(model, kind)
    total, tokens, n_chars, counted = 0.0, 0, 0, 0
    for i, (logits, targets, m, c) in enumerate(window_logits(model, val, torch.device("cpu"), batch_size=1)):
        losses = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (1, T)
        total += float(losses[m].detach().sum())  # scored first, with the weights as they were
        if not math.isfinite(total):  # a step too large sent the weights to inf or nan: no figure to report
            raise diverged(how, i, len(val.windows))
        tokens, n_chars = tokens + int(m.sum()), n_chars + int(c[m].sum())
        if optimizer is not None:  # then learnt from: every token of the window has been read
            optimizer.zero_grad(set_to_none=True)
            losses.mean().backward()
            try:
                optimizer.step()
            except RuntimeError:  # torch's «value cannot be converted to type float without overflow» (adam's lr/0.1)
                raise diverged(how, i, len(val.windows)) from None
        read = tokens + 1  # ids[:read] have been read (the first token is never scored)
        if counting and (read - counted >= COUNT_EVERY or i == len(val.windows) - 1):
            cast(KeepsReading, model).read(ids[:read], counted)  # and a counting model counts it
            counted = read
    return Score(total / max(1, tokens), bits_per_char(total, n_chars), tokens, n_chars)


def diverged(how: Adaptation, window: int, windows: int) -> TallerError:
    return TallerError(
        f"--lr {how.learning_rate():g} es demasiado grande para {how.optimizer}: al aprender mientras "
        f"lee, el modelo se desbocó en la ventana {window + 1} de {windows} (su pérdida dejó de ser un "
        f"número); prueba con uno menor, p. ej. el de por defecto, {DEFAULT_LR[how.optimizer]:g}."
    )


def how_it_learns(model, kind: Kind, how: Adaptation) -> str:
    """In words, for `taller score`: a gradient step, counting, or both (a mix of a network and an n-gram)."""
    learns = any(p.is_floating_point() for p in adapted_parameters(model, kind))
    ways = [f"{how.optimizer}, lr {how.learning_rate():g}"] if learns else []
    if reads(model, kind):
        ways.append(f"contando lo leído cada {thousands(COUNT_EVERY)} caracteres")
    return "; ".join(ways)


def adapted_parameters(model, kind: Kind) -> list[torch.Tensor]:
    """What learns while reading: the model's parameters (a mix: its table and its parts')."""
    return list(cast(Mixer, model).adapted_parameters() if kind.combines else model.parameters())


@dataclass
class RunScores:
    static: Score
    adapted: Score | None
    window: int
    how: str = ""  # how it learnt while reading, in words


def score_run(run, how: Adaptation | None = None) -> RunScores:
    """The run's validation text scored as it is and, with `how`, while learning from it."""
    if how is not None:
        check_adaptable(run)
    ids, chars = validation_tokens(run)
    window, kind = scoring_window(run.model, run.config.model), kind_of(run.config)
    static = evaluate(run.model, val_text(ids, chars, window), torch.device("cpu"), nullcontext())
    adapted = adapt_score(run.model, kind, ids, chars, window, how) if how is not None else None
    return RunScores(static, adapted, window, how_it_learns(run.model, kind, how) if how is not None else "")
