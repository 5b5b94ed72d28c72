"""Guess the hidden tokens: BERT's objective (masked-token pretraining; the model is taller/models/bert.py).

    a batch:  B windows of T tokens of the training text (the same windows a GPT reads);
              15% of the positions are chosen (mask_rate); of those, 80% become [MASK], 10% a random token and
              10% stay as they are — so the model cannot learn "only [MASK] needs guessing"
    what is chosen (model.masking):
        chars   single tokens, each on its own (the original BERT; in a character model, single characters: it learns
                to spell a word from its visible letters, never to recall the word)
        words   whole words (Google's whole-word masking, 2019): words are drawn until 15% of the window's tokens
                are hidden; a hidden word is hidden whole, and the 80/10/10 rule is drawn once per word
        spans   spans of whole words (SpanBERT, Joshi et al. 2020): a span of ℓ ~ Geometric(0,2) words (at most 10),
                from a random word, the spaces between its words hidden too, until 15% of the window is hidden
        mixed   a coin per window: whole words or single characters. The characters' easy question (spell a word
                from its visible letters) teaches the attention to read the neighbours from the first steps; alone,
                whole words leave a character BERT near the letters' frequencies for minutes (its attention has
                nothing to learn from yet). Its fixed validation blanks are whole words.
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
from taller.text import number, thousands
from taller.training import distributed
from taller.training.by_text import by_text_line, part_vals
from taller.training.next_token import NextToken

IGNORE = -100  # a target cross_entropy skips: a position the model was not asked about
KEEP_MASK, KEEP_RANDOM = 0.8, 0.1  # of the chosen positions: [MASK], a random token; the rest stay themselves


MIXED_WORDS = 0.5  # masking = mixed: the share of windows whose blanks are whole words (the rest: single characters)
SPAN_P, SPAN_MAX = 0.2, 10  # SpanBERT's span lengths in words: Geometric(0.2), at most 10 (mean 3.8)


def word_table(pieces: list[str]) -> torch.Tensor:
    """Per token id, (V, 3) bool: whether its text has a letter, starts with one, ends with one. Two neighbouring
    tokens are one word when the first ends and the second starts with a letter (a character tokenizer: letters in a
    row; BPE: « casa» starts a word, «mente» may continue it; a piece of a multibyte character, «\\xc3», joins)."""

    def letter(c: str) -> bool:
        return c.isalpha()

    rows = [
        (
            any(map(letter, p)) or "\\x" in p,
            bool(p) and (letter(p[0]) or p.startswith("\\x")),
            bool(p) and (letter(p[-1]) or "\\x" in p[-4:]),
        )
        for p in pieces
    ]
    return torch.tensor(rows, dtype=torch.bool).view(-1, 3)


def word_units(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Which word each position of x (B, T) belongs to: unit ids (B, T), numbered 0 … U-1 over the whole batch in
    reading order, -1 where there is no letter (spaces, punctuation). A word cut by the window's edge is its part."""
    has, starts, ends = table[x].unbind(-1)  # (B, T) each
    joins = torch.zeros_like(has)
    joins[:, 1:] = starts[:, 1:] & ends[:, :-1] & has[:, :-1]  # (B, T) continues the word on its left
    new = has & ~joins  # (B, T) the first token of a word
    units = torch.cumsum(new.view(-1), 0).view_as(x) - 1
    return torch.where(has, units, torch.full_like(units, -1))


def choose_words(x: torch.Tensor, rate: float, table: torch.Tensor, g: torch.Generator | None):
    """Whole words, drawn in a random order in each window until rate × T tokens are hidden; the word that would
    pass the mark is taken with the probability of the share that fits, so the hidden share is `rate` on average.
    -> (chosen (B, T) bool, draw (B, T) in [0, 1): one draw per word, for the 80/10/10 rule)."""
    B, T = x.shape
    units = word_units(x, table)  # (B, T)
    U = int(units.max()) + 1
    if U == 0:
        return torch.zeros_like(x, dtype=torch.bool), torch.rand(x.shape, generator=g)
    inside = units >= 0
    length = torch.bincount(units[inside], minlength=U).float()  # (U,) tokens per word
    row = torch.zeros(U, dtype=torch.long).scatter_(
        0, units[inside], torch.arange(B).repeat_interleave(T).view(B, T)[inside]
    )
    order = torch.argsort(row.float() + torch.rand(U, generator=g))  # (U,) the words of each window, shuffled
    before = torch.cumsum(length[order], 0) - length[order]  # (U,) tokens hidden before this word, whole batch
    base = torch.zeros(B).scatter_reduce(0, row[order], before, "amin", include_self=False)  # (B,) each window's start
    before = before - base[row[order]]
    target = rate * T
    fits = (before + length[order] <= target) | (
        (before < target) & (torch.rand(U, generator=g) < (target - before) / length[order])
    )
    take = torch.zeros(U, dtype=torch.bool)
    take[order] = fits
    draw = torch.rand(U, generator=g)  # (U,)
    chosen = inside & take[units.clamp(min=0)]
    return chosen, draw[units.clamp(min=0)]


def choose_spans(x: torch.Tensor, rate: float, table: torch.Tensor, g: torch.Generator | None):
    """SpanBERT's spans of whole words in each window until rate × T tokens are hidden: a span that would pass the
    mark loses words at its end until it fits, and a single word that does not fit is taken with the probability of
    the share that does; spans never overlap. -> (chosen (B, T), draw (B, T): one draw per span)."""
    B, T = x.shape
    units = word_units(x, table)  # (B, T)
    chosen = torch.zeros_like(x, dtype=torch.bool)
    draw = torch.rand(x.shape, generator=g)  # (B, T), made equal along each span below
    tries = 4 * max(1, round(rate * T))
    u = torch.rand(B, tries, 3, generator=g)  # (B, tries, 3): span length, first word, whether the last one fits
    lengths = (torch.log(u[..., 0]) / math.log(1 - SPAN_P)).floor().long().clamp(0, SPAN_MAX - 1) + 1
    for b in range(B):
        inside = units[b] >= 0
        if not inside.any():
            continue
        word, pos = units[b][inside] - units[b][inside].min(), torch.arange(T)[inside]  # words numbered 0 … W-1
        W = int(word.max()) + 1
        first = torch.full((W,), T).scatter_reduce(0, word, pos, "amin").tolist()  # each word's first position
        last = torch.zeros(W, dtype=torch.long).scatter_reduce(0, word, pos, "amax").tolist()  # and its last
        hidden, target = 0, rate * T
        for k in range(tries):
            w = int(u[b, k, 1] * W)
            e = min(w + int(lengths[b, k]), W) - 1  # the span's last word
            while e > w and last[e] + 1 - first[w] > target - hidden:
                e -= 1
            lo, hi = first[w], last[e] + 1
            if chosen[b, lo:hi].any():
                continue
            if hi - lo > target - hidden and u[b, k, 2] >= (target - hidden) / (hi - lo):
                break
            chosen[b, lo:hi] = True
            draw[b, lo:hi] = draw[b, lo]
            hidden += hi - lo
            if hidden >= target:
                break
    return chosen, draw


def choose(
    x: torch.Tensor, rate: float, g: torch.Generator | None, masking: str = "chars", table: torch.Tensor | None = None
):
    """The positions of x (B, T) to guess, and a draw in [0, 1) per position (equal along a word or span)."""
    if masking == "words":
        return choose_words(x, rate, table, g)
    if masking == "spans":
        return choose_spans(x, rate, table, g)
    if masking == "mixed":  # each window, a coin: whole words, or single characters
        words, word_draw = choose_words(x, rate, table, g)
        chars, char_draw = choose(x, rate, g, "chars")
        coin = torch.rand(x.shape[0], 1, generator=g) < MIXED_WORDS  # (B, 1)
        return torch.where(coin, words, chars), torch.where(coin, word_draw, char_draw)
    return torch.rand(x.shape, generator=g) < rate, torch.rand(x.shape, generator=g)


def mask_tokens(
    x: torch.Tensor,
    rate: float,
    mask_id: int,
    vocab_size: int,
    g: torch.Generator | None = None,
    masking: str = "chars",
    table: torch.Tensor | None = None,
):
    """BERT's corruption of a batch x (B, T) -> (inputs (B, T), targets (B, T): the token, or IGNORE if not chosen).
    `table` (word_table) says where words are, for masking = words or spans."""
    chosen, kind = choose(x, rate, g, masking, table)  # (B, T) the positions to guess, which corruption each gets
    chosen.view(-1)[0] |= not bool(chosen.any())  # at least one, so that the loss is defined
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


def masked_val(
    ids: np.ndarray,
    chars: np.ndarray,
    block: int,
    rate: float,
    mask_id: int,
    seed: int,
    masking: str = "chars",
    table: torch.Tensor | None = None,
) -> MaskedVal:
    """Disjoint windows of `block` tokens over val (one shorter window if val is shorter); blanks from `seed`,
    chosen as training chooses them (whole words for masking = words), all of them [MASK]."""
    T = min(block, len(ids))
    n = len(ids) // T
    windows = torch.from_numpy(ids[: n * T].astype(np.int64)).view(n, T)  # (N, T)
    counts = torch.from_numpy(chars[: n * T].astype(np.int64)).view(n, T)  # (N, T)
    g = torch.Generator().manual_seed(seed)
    chosen, _ = choose(windows, rate, g, "words" if masking == "mixed" else masking, table)  # (N, T): mixed is
    #   judged by the question it is for: whole hidden words
    chosen.view(-1)[0] |= not bool(chosen.any())
    inputs = torch.where(chosen, torch.full_like(windows, mask_id), windows)
    return MaskedVal(inputs, torch.where(chosen, windows, torch.full_like(windows, IGNORE)), counts)


@torch.no_grad()
def evaluate_masked(model, val: MaskedVal, vocab_size: int, device, autocast, batch_size: int = 64) -> dict:
    """Nats per masked token, bits per masked character and the share of masked tokens guessed exactly."""
    with evaluating(model):
        total, tokens, chars, right = 0.0, 0, 0, 0
        for i in range(0, len(val.inputs), batch_size):
            x, y = val.inputs[i : i + batch_size].to(device), val.targets[i : i + batch_size].to(device)
            with autocast:
                logits = model(x).float()[..., :vocab_size]  # (B, T, V): [MASK] is never an answer
            m = y != IGNORE  # (B, T)
            total += F.cross_entropy(logits[m], y[m], reduction="sum").item()
            right += int((logits[m].argmax(-1) == y[m]).sum())
            tokens += int(m.sum())
            chars += int(val.chars[i : i + batch_size][m.cpu()].sum())
    return {
        "val_loss": total / max(1, tokens),
        "val_masked_bpc": total / LN2 / max(1, chars),
        "val_accuracy": right / max(1, tokens),
    }


class MaskedTokens(NextToken):
    """The same windows of text as a language model reads; a different question: what was hidden here?"""

    reads_global_batch = True  # torchrun: the same draws in the whole global batch on every rank (NextToken)

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        super().__init__(cfg, out, ctx, resume)
        m, d = cfg.model, self.data
        self.masking = torch.Generator().manual_seed(cfg.train.seed + 2)  # which positions: saved for --resume
        self.words = word_table(d.tokenizer.pieces)  # (V, 3) where words start and end
        self.val = masked_val(
            d.val_ids, d.val_chars, m.block_size, m.mask_rate, m.mask_id, cfg.data.split_seed, m.masking, self.words
        )
        self.n_eval = max(1, math.ceil(cfg.train.eval_chars / d.chars_per_token / m.block_size))

    def next_batch(self):
        x, _ = self.batches.next()  # (world × B, T): the windows; their next tokens are not needed
        m = self.cfg.model
        inputs, targets = mask_tokens(
            x.cpu(), m.mask_rate, m.mask_id, m.vocab_size, self.masking, m.masking, self.words
        )
        blanks = int((targets != IGNORE).sum())  # in the whole global batch
        inputs, targets = distributed.own_rows(self.ctx, inputs, targets)  # (B, T) this rank's block
        return inputs.to(x.device), targets.to(x.device), blanks

    def loss(self, model, batch) -> torch.Tensor:
        x, y, blanks = batch
        with self.autocast:
            logits = model(x)  # (B, T, V+1)
        total = F.cross_entropy(
            logits.float().view(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        return distributed.share_of_mean(self.ctx, total, int((y != IGNORE).sum()), blanks)

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
        by_text = self.val_by_text()
        trainer.commit(
            finished=True,
            extra={
                **final,
                "tokenizer": d.tokenizer.kind,
                "chars_per_s": chars_per_s,
                **({"val_accuracy_by_text": by_text} if by_text else {}),
            },
        )
        run = Run(trainer.out, self.cfg, d.tokenizer, self.model, trainer.saved_state)
        self.pictures.finish(run, trainer.epoch, self.cfg.train, trainer.parts, samples=False)
        masked = int((self.val.targets != IGNORE).sum())
        trainer.log(
            f"Validación ({thousands(masked)} huecos fijos): acierta el {number(100 * final['val_accuracy'], 1)} % · "
            f"{number(final['val_loss'], 4)} nats por hueco = {number(final['val_masked_bpc'], 3)} bits por carácter "
            f"oculto ({trainer.step} pasos, {trainer.train_time:.0f} s, {thousands(chars_per_s)} car/s)."
        )
        if by_text:
            trainer.log(by_text_line({name: 100 * x for name, x in by_text.items()}, "% de huecos acertados", 1))
        trainer.log(
            f'Prueba: taller fill {trainer.out} --text "En un lugar de la ______ de cuyo nombre no quiero acordarme"'
        )
        return run

    def val_by_text(self) -> dict[str, float]:
        """The share of hidden tokens guessed in each text's val, for a corpus of several texts (else {})."""
        m, seed = self.cfg.model, self.cfg.data.split_seed
        return {
            name: evaluate_masked(
                self.model,
                masked_val(ids, chars, m.block_size, m.mask_rate, m.mask_id, seed, m.masking, self.words),
                m.vocab_size,
                self.ctx.device,
                self.autocast,
            )["val_accuracy"]
            for name, ids, chars in part_vals(self.data)
        }
