"""Bits per character: one scale for every model, whatever its tokens.

A model's loss is in nats per *token*. A BPE token holds about two characters, a word token more, a character
token one: their losses can't be compared. What can be compared is the cost of the text itself:

    bpc = (total nats over the scored tokens) / ln 2 / (characters of the original text those tokens cover)

For a char model this is the familiar loss / ln 2. `token_chars` (in every tokenizer) says how many characters each
token completes; the val text is scored with the same windows as its ids (data.eval_windows), so each scored target
carries its own character count.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from taller.data.batches import eval_windows
from taller.models.modes import evaluating

LN2 = math.log(2)


def bits_per_char(total_nats: float, chars: int) -> float:
    return total_nats / LN2 / max(chars, 1)


@dataclass
class ValText:
    """The val text ready to score: windows of ids, which targets to score, and the characters of each target."""

    windows: torch.Tensor  # (N, T+1) token ids
    mask: torch.Tensor  # (N, T) targets to score
    chars: torch.Tensor  # (N, T) characters of the original text each target completes

    def head(self, n: int) -> ValText:
        return ValText(self.windows[:n], self.mask[:n], self.chars[:n])


def val_text(ids: np.ndarray, chars: np.ndarray, block_size: int) -> ValText:
    windows, mask = eval_windows(ids, block_size)
    char_windows, _ = eval_windows(chars, block_size)  # the same windows over the character counts
    return ValText(windows, mask, char_windows[:, 1:])


@dataclass
class Score:
    loss: float  # nats per token
    bpc: float  # bits per character of the original text
    tokens: int
    chars: int


NO_AUTOCAST = nullcontext()  # reusable: it does nothing on entry and exit


def window_logits(model, val: ValText, device, autocast=NO_AUTOCAST, batch_size: int = 64):
    """The one scoring loop over the windows of `val` (data.eval_windows): batch by batch, the model's logits
    (B, T, V), the targets (B, T), which of them are scored (B, T) and the characters each completes (B, T). Each batch
    is read when the caller asks for it, so a caller may learn from one batch before the next is scored (adapt.py).
    Gradients and the model's mode are the caller's."""
    for i in range(0, len(val.windows), batch_size):
        w, m = val.windows[i : i + batch_size].to(device), val.mask[i : i + batch_size].to(device)
        with autocast:
            logits = model(w[:, :-1])  # (B, T, V)
        yield logits, w[:, 1:], m, val.chars[i : i + batch_size]


@torch.no_grad()
def scored_targets(model, val: ValText, device, autocast, batch_size: int = 64):
    """Batch by batch, the nats of each scored target and the characters it completes, both (n,), in the order of
    the text: every token but the first, once. (The model is in eval mode meanwhile: no dropout.)"""
    with evaluating(model):
        for logits, targets, m, chars in window_logits(model, val, device, autocast, batch_size):
            losses = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T)
            yield losses[m], chars[m.cpu()]


def evaluate(model, val: ValText, device, autocast, batch_size: int = 64) -> Score:
    """Mean nats per scored token, and bits per character over the characters those tokens cover."""
    total, tokens, chars = 0.0, 0, 0
    for nats, covered in scored_targets(model, val, device, autocast, batch_size):
        total += nats.sum().item()
        tokens += len(nats)
        chars += int(covered.sum())
    return Score(total / tokens, bits_per_char(total, chars), tokens, chars)


SCORE_WINDOW = 256  # the window that scores a model which has none (an n-gram reads its n-1 characters anyway)


def scoring_window(model, model_cfg) -> int:
    """The windows a model is scored with: its own (a Transformer's), the one it trained with (an LSTM's), or 256."""
    return model.block_size or model_cfg.training_window or SCORE_WINDOW


@torch.no_grad()
def log_distributions(model, ids: np.ndarray, block_size: int, batch_size: int = 64) -> torch.Tensor:
    """(N-1, V) float32: the model's log-probabilities of every possible token after each of ids[:-1], scored with
    the windows of `evaluate` (every position with at least half a window of context), in the text's order."""
    windows, mask = eval_windows(ids, block_size)  # (W, T+1), (W, T): each target scored once
    val = ValText(windows, mask, mask.long())  # (the characters are not counted here)
    with evaluating(model):
        out = [
            F.log_softmax(logits.float(), dim=-1)[m]  # (scored, V), row by row
            for logits, _, m, _ in window_logits(model, val, windows.device, batch_size=batch_size)
        ]
    return torch.cat(out)


def score_distributions(logp: torch.Tensor, ids: np.ndarray, chars: np.ndarray) -> Score:
    """Nats per token and bits per character of ids[1:] under (N-1, V) log-probabilities."""
    targets = torch.from_numpy(np.asarray(ids[1:], dtype=np.int64))
    total = -float(logp.gather(1, targets[:, None]).double().sum())
    n_chars = int(np.asarray(chars[1:]).sum())
    return Score(total / max(1, len(targets)), bits_per_char(total, n_chars), len(targets), n_chars)
