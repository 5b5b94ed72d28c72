"""Guess the hidden tokens: BERT's objective (masked-token pretraining; the model is taller/models/bert.py).

    a batch:  B windows of T tokens of the training text (the same windows a GPT reads);
              15% of the positions are chosen (mask_rate); of those, 80% become [MASK], 10% a random token and
              10% stay as they are — so the model cannot learn "only [MASK] needs guessing"
    its loss: cross_entropy at the chosen positions only, from the whole window, both sides of each blank

Why not the next-token loss? A model that reads the whole window has already seen the next token: predicting it
would be copying. Hiding tokens and asking for them is the question that still makes sense.

Validation: the val text cut into windows, 15% of each window's positions replaced by [MASK], chosen once with the
data's split seed (the same blanks for every run and every epoch, so the figures compare). Its scores are the
masked tokens' loss in nats, in bits per masked character, and the share guessed exactly (masked accuracy). They are
not bits per character of the text: a GPT pays for every character with only the left side to go on, BERT for 15%
of them with both sides, so the two numbers are not on one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taller.evaluate import LN2
from taller.models.modes import evaluating
from taller.runs.folder import Run
from taller.text import thousands
from taller.training.next_token import NextToken

IGNORE = -100  # a target cross_entropy skips: a position the model was not asked about
KEEP_MASK, KEEP_RANDOM = 0.8, 0.1  # of the chosen positions: [MASK], a random token; the rest stay themselves


def mask_tokens(x: torch.Tensor, rate: float, mask_id: int, vocab_size: int, g: torch.Generator | None = None):
    """BERT's corruption of a batch x (B, T) -> (inputs (B, T), targets (B, T): the token, or IGNORE if not chosen)."""
    chosen = torch.rand(x.shape, generator=g) < rate  # (B, T) the positions to guess
    chosen.view(-1)[0] |= not bool(chosen.any())  # at least one, so that the loss is defined
    kind = torch.rand(x.shape, generator=g)  # (B, T) which corruption each chosen position gets
    random_tokens = torch.randint(vocab_size, x.shape, generator=g)  # (B, T)
    inputs = torch.where(chosen & (kind < KEEP_MASK), torch.full_like(x, mask_id), x)
    inputs = torch.where(chosen & (kind >= KEEP_MASK) & (kind < KEEP_MASK + KEEP_RANDOM), random_tokens, inputs)
    targets = torch.where(chosen, x, torch.full_like(x, IGNORE))
    return inputs, targets


@dataclass
class MaskedVal:
    """The val text with fixed blanks: windows (N, T) with [MASK] at the chosen positions, their targets (IGNORE
    elsewhere) and the characters of the original text each target covers."""

    inputs: torch.Tensor  # (N, T)
    targets: torch.Tensor  # (N, T)
    chars: torch.Tensor  # (N, T)

    def head(self, n: int) -> MaskedVal:
        return MaskedVal(self.inputs[:n], self.targets[:n], self.chars[:n])


def masked_val(ids: np.ndarray, chars: np.ndarray, block: int, rate: float, mask_id: int, seed: int) -> MaskedVal:
    """Disjoint windows of `block` tokens over val (one shorter window if val is shorter); blanks from `seed`."""
    T = min(block, len(ids))
    n = len(ids) // T
    windows = torch.from_numpy(ids[:n * T].astype(np.int64)).view(n, T)  # (N, T)
    counts = torch.from_numpy(chars[:n * T].astype(np.int64)).view(n, T)  # (N, T)
    g = torch.Generator().manual_seed(seed)
    chosen = torch.rand(windows.shape, generator=g) < rate  # (N, T)
    chosen.view(-1)[0] |= not bool(chosen.any())
    inputs = torch.where(chosen, torch.full_like(windows, mask_id), windows)
    return MaskedVal(inputs, torch.where(chosen, windows, torch.full_like(windows, IGNORE)), counts)


@torch.no_grad()
def evaluate_masked(model, val: MaskedVal, vocab_size: int, device, autocast, batch_size: int = 64) -> dict:
    """Nats per masked token, bits per masked character and the share of masked tokens guessed exactly."""
    with evaluating(model):
        total, tokens, chars, right = 0.0, 0, 0, 0
        for i in range(0, len(val.inputs), batch_size):
            x, y = val.inputs[i:i + batch_size].to(device), val.targets[i:i + batch_size].to(device)
            with autocast:
                logits = model(x).float()[..., :vocab_size]  # (B, T, V): [MASK] is never an answer
            m = y != IGNORE  # (B, T)
            total += F.cross_entropy(logits[m], y[m], reduction="sum").item()
            right += int((logits[m].argmax(-1) == y[m]).sum())
            tokens += int(m.sum())
            chars += int(val.chars[i:i + batch_size][m.cpu()].sum())
    return {"val_loss": total / max(1, tokens), "val_masked_bpc": total / LN2 / max(1, chars),
            "val_accuracy": right / max(1, tokens)}


class MaskedTokens(NextToken):
    """The same windows of text as a language model reads; a different question: what was hidden here?"""

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        super().__init__(cfg, out, ctx, resume)
        m, d = cfg.model, self.data
        self.masking = torch.Generator().manual_seed(cfg.train.seed + 2)  # which positions: saved for --resume
        self.val = masked_val(d.val_ids, d.val_chars, m.block_size, m.mask_rate, m.mask_id, cfg.data.split_seed)
        self.n_eval = max(1, math.ceil(cfg.train.eval_chars / d.chars_per_token / m.block_size))

    def next_batch(self):
        x, _ = self.batches.next()  # (B, T): the windows; their next tokens are not needed
        m = self.cfg.model
        inputs, targets = mask_tokens(x.cpu(), m.mask_rate, m.mask_id, m.vocab_size, self.masking)
        return inputs.to(x.device), targets.to(x.device)

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        with self.autocast:
            logits = model(x)  # (B, T, V+1)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE)

    def evaluate(self, whole: bool = False) -> dict:
        val = self.val if whole else self.val.head(self.n_eval)
        return evaluate_masked(self.model, val, self.cfg.model.vocab_size, self.ctx.device, self.autocast)

    def random_state(self) -> dict[str, torch.Tensor]:
        return {**super().random_state(), "rng.masking": self.masking.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        super().restore(tensors, state)
        self.masking.set_state(tensors["rng.masking"])

    def finish(self, trainer, final: dict) -> Run:
        """The run as it ends: its scores in state.json; its folder, the weights' pictures and the loss curves."""
        d = self.data
        chars_per_s = trainer.step * self.tokens_per_step * d.chars_per_token / max(trainer.train_time, 1e-9)
        trainer.commit(finished=True, extra={**final, "tokenizer": d.tokenizer.kind, "chars_per_s": chars_per_s})
        run = Run(trainer.out, self.cfg, d.tokenizer, self.model, trainer.saved_state)
        self.pictures.finish(run, trainer.epoch, self.cfg.train, trainer.parts, samples=False)
        masked = int((self.val.targets != IGNORE).sum())
        trainer.log(f"Validación ({thousands(masked)} huecos fijos): acierta el {final['val_accuracy']:.1%} · "
                    f"{final['val_loss']:.4f} nats por hueco = {final['val_masked_bpc']:.3f} bits por carácter oculto "
                    f"({trainer.step} pasos, {trainer.train_time:.0f} s, {thousands(chars_per_s)} car/s).")
        trainer.log(f"Prueba: taller fill {trainer.out} --text \"En un lugar de la ___ de cuyo nombre no quiero acordarme\"")
        return run
