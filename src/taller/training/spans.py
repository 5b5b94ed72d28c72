"""Write what was hidden: T5's span corruption (the model is taller/models/t5.py).

    a window:  «Más vale tarde que nunca, dijo el cura.»                       (T tokens of the training text)
    input:     «Más vale <X0> que nunca, dijo <X1> cura.»                     15% of the tokens hidden in spans
    answer:    «<X0> tarde <X1> el <end>»                                       each sentinel, then what it hid

The decoder learns to write the answer one token at a time from <start>, reading the input through cross-attention
(teacher forcing: it is given the true answer so far at every position). Spans are laid out as T5 does: the hidden
tokens split at random into spans of about `span_length`, the kept ones into as many gaps, alternating — so every
window of T tokens gives an input and an answer of the same lengths, and a batch needs no padding.

Validation: the val text in disjoint windows, corrupted once with the data's split seed (the same blanks every
time); scores: nats per answer token and the share of answer tokens right (with the true answer so far).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taller.models.modes import evaluating
from taller.runs.folder import Run
from taller.text import number, thousands
from taller.training import distributed
from taller.training.next_token import NextToken


def random_segments(total: int, n: int, g: torch.Generator) -> list[int]:
    """`total` split at random into `n` parts of at least 1 (n ≤ total)."""
    cuts = sorted((torch.randperm(total - 1, generator=g)[: n - 1] + 1).tolist()) if n > 1 else []
    return np.diff([0, *cuts, total]).tolist()


def span_counts(T: int, cfg) -> tuple[int, int]:
    """How many tokens a window of T hides, and in how many spans."""
    hidden = min(T - 1, max(1, round(T * cfg.mask_rate)))
    return hidden, max(1, min(round(hidden / cfg.span_length), cfg.n_sentinels, hidden, T - hidden))


def corrupt(ids: list[int], cfg, g: torch.Generator) -> tuple[list[int], list[int]]:
    """One window -> (input with a sentinel for each hidden span, answer: each sentinel then its span, then <end>)."""
    hidden, n = span_counts(len(ids), cfg)
    spans, gaps = random_segments(hidden, n, g), random_segments(len(ids) - hidden, n, g)
    src, answer, pos = [], [], 0
    for k in range(n):  # kept gap, hidden span, kept gap, hidden span …
        src += ids[pos : pos + gaps[k]]
        pos += gaps[k]
        src.append(cfg.sentinel(k))
        answer += [cfg.sentinel(k), *ids[pos : pos + spans[k]]]
        pos += spans[k]
    return src, answer + [cfg.end_id]


def corrupt_batch(x: torch.Tensor, cfg, g: torch.Generator):
    """Windows (B, T) -> input (B, S), the decoder's input (B, L) (<start>, then the answer one on), answer (B, L)."""
    pairs = [corrupt(row.tolist(), cfg, g) for row in x]
    src = torch.tensor([s for s, _ in pairs])
    answer = torch.tensor([a for _, a in pairs])
    start = torch.full((len(x), 1), cfg.start_id)
    return src, torch.cat([start, answer[:, :-1]], dim=1), answer


@dataclass
class SpanVal:
    src: torch.Tensor  # (N, S)
    dec_in: torch.Tensor  # (N, L)
    answer: torch.Tensor  # (N, L)

    def head(self, n: int) -> SpanVal:
        return SpanVal(self.src[:n], self.dec_in[:n], self.answer[:n])


def span_val(ids: np.ndarray, cfg, seed: int) -> SpanVal:
    T = min(cfg.block_size, len(ids))
    windows = torch.from_numpy(ids[: len(ids) // T * T].astype(np.int64)).view(-1, T)
    return SpanVal(*corrupt_batch(windows, cfg, torch.Generator().manual_seed(seed)))


@torch.no_grad()
def evaluate_spans(model, val: SpanVal, device, autocast, batch_size: int = 64) -> dict:
    with evaluating(model):
        total, right, tokens = 0.0, 0, 0
        for i in range(0, len(val.src), batch_size):
            src, dec_in, answer = (t[i : i + batch_size].to(device) for t in (val.src, val.dec_in, val.answer))
            with autocast:
                logits = model(src, dec_in).float()  # (B, L, n_ids)
            total += F.cross_entropy(logits.transpose(1, 2), answer, reduction="sum").item()
            right += int((logits.argmax(-1) == answer).sum())
            tokens += answer.numel()
    return {"val_loss": total / max(1, tokens), "val_accuracy": right / max(1, tokens)}


class SpanCorruption(NextToken):
    """The same windows of text as a language model reads; the question: write what the sentinels hide."""

    reads_global_batch = True  # torchrun: the same draws in the whole global batch on every rank (NextToken)

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        super().__init__(cfg, out, ctx, resume)
        self.spans = torch.Generator().manual_seed(cfg.train.seed + 2)  # where the spans fall: saved for --resume
        self.val = span_val(self.data.val_ids, cfg.model, cfg.data.split_seed)
        self.n_eval = max(1, round(cfg.train.eval_chars / self.data.chars_per_token / cfg.model.block_size))

    def next_batch(self):
        x, _ = self.batches.next()  # (world × B, T)
        src, dec_in, answer = corrupt_batch(x.cpu(), self.cfg.model, self.spans)
        tokens = answer.numel()  # answer tokens in the whole global batch
        return (*(t.to(x.device) for t in distributed.own_rows(self.ctx, src, dec_in, answer)), tokens)

    def loss(self, model, batch) -> torch.Tensor:
        src, dec_in, answer, tokens = batch
        with self.autocast:
            logits = model(src, dec_in)  # (B, L, n_ids)
        total = F.cross_entropy(logits.float().transpose(1, 2), answer, reduction="sum")
        return distributed.share_of_mean(self.ctx, total, answer.numel(), tokens)

    def evaluate(self, whole: bool = False) -> dict:
        return evaluate_spans(
            self.model, self.val if whole else self.val.head(self.n_eval), self.ctx.device, self.autocast
        )

    def random_state(self) -> dict[str, torch.Tensor]:
        return {**super().random_state(), "rng.spans": self.spans.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        super().restore(tensors, state)
        self.spans.set_state(tensors["rng.spans"])

    def finish(self, trainer, final: dict) -> Run:
        d = self.data
        trainer.commit(finished=True, extra={**final, "tokenizer": d.tokenizer.kind})
        run = Run(trainer.out, self.cfg, d.tokenizer, self.model, trainer.saved_state)
        self.pictures.finish(run, trainer.epoch, self.cfg.train, trainer.parts, samples=False)
        trainer.log(
            f"Validación ({thousands(self.val.answer.numel())} tokens de respuesta fijos): acierta el "
            f"{number(100 * final['val_accuracy'], 1)} % · {number(final['val_loss'], 4)} nats por token "
            f"({trainer.step} pasos, {trainer.train_time:.0f} s)."
        )
        trainer.log(
            f'Prueba: taller fill {trainer.out} --text "En un lugar de la ___ de cuyo nombre no quiero acordarme"'
        )
        return run
