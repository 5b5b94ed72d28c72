"""Predict the next token: the objective of every left-to-right language model (GPT, the LSTM, the RNN …).

    a batch:   x = B windows of T tokens of the training text (B, T);  y = the same windows moved one token on (B, T)
    its loss:  cross_entropy(model(x), y) — how surprised the model is by each next token, in nats

An epoch is as many windows as the training text has tokens. At every epoch's end the model is scored on the
validation text (never trained on) in nats per token and bits per character (taller/evaluate.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taller.data.batches import make_batches
from taller.data.corpora import Corpus, prepare_corpus
from taller.data.prepared import is_prepared, open_prepared
from taller.data.split import Split, mix_slice_length, split_corpus
from taller.data.tokenizers import build_tokenizer, load_tokenizer, tokenizer_from_dict
from taller.errors import TallerError
from taller.evaluate import evaluate, val_text
from taller.models import build_model
from taller.runs.folder import Run
from taller.text import number, thousands
from taller.training import distributed
from taller.training.artefacts import Pictures
from taller.training.by_text import by_text_line, part_vals
from taller.training.device import autocast_for
from taller.training.optim import make_optimizer
from taller.training.verdict import judge, safety_net


@dataclass
class TextData:
    """The text a language model reads, as tokens: the training ids and the val ids with their characters."""

    corpus: Corpus
    split: Split
    tokenizer: object  # CharTokenizer, WordTokenizer or BpeTokenizer
    train_ids: np.ndarray  # (N,) or a prepared folder's tokens on disk
    val_ids: np.ndarray  # (M,)
    val_chars: np.ndarray  # (M,) characters of the original text each val token completes
    chars_per_token: float  # 1 for characters; about 2 for a BPE of 512
    chosen: str | None = None  # dropout and average chosen by the expected passes over the text, said at the start


def find_text_data(cfg, out: Path, ctx, resume: bool) -> TextData:
    """The corpus, its split and its tokens; a resumed run keeps its own tokenizer. Fills in model.vocab_size."""
    if is_prepared(cfg.data.corpus):  # a folder from `taller prepare`: tokens read from disk, never loaded whole
        corpus, split, tokenizer, train_ids, val_ids = open_prepared(
            cfg.data, out / "tokenizer.json" if resume else None
        )
        val_ids, val_chars = tokenizer.token_chars(tokenizer.decode(val_ids))  # val is small: its characters, exactly
        chars_per_token = int(val_chars.sum()) / max(1, len(val_ids))
    else:
        corpus = prepare_corpus(cfg.data)
        split = split_corpus(corpus, cfg.data)
        tokenizer = load_tokenizer(out / "tokenizer.json") if resume else build_tokenizer(cfg.data, split)
        if ctx.active and not resume and tokenizer.kind != "char":  # learnt from the text: rank 0's on every rank
            tokenizer = tokenizer_from_dict(json.loads(distributed.broadcast_text(ctx, tokenizer.to_json())), "rank 0")
        train_ids, (val_ids, val_chars) = tokenizer.encode_array(split.train), tokenizer.token_chars(split.val)
        chars_per_token = len(split.train) / max(1, len(train_ids))
    cfg.model.vocab_size = tokenizer.vocab_size
    chosen = cfg.fit_to_text(len(train_ids))
    cfg.validate()
    return TextData(corpus, split, tokenizer, train_ids, val_ids, val_chars, chars_per_token, chosen)


def check_lengths(data: TextData) -> None:
    """A text too short for any context: said once, with the one way out (the batches' advice of a smaller
    block_size only helps when both parts have at least 2 tokens)."""
    if len(data.train_ids) < 2 or len(data.val_ids) < 2:
        raise TallerError(
            f"el texto es demasiado corto para entrenar: {len(data.train_ids)} tokens de entrenamiento y "
            f"{len(data.val_ids)} de validación (hacen falta al menos 2 en cada parte); usa un texto más largo."
        )


def held_out_for_mix(cfg, train_tokens: int) -> int:
    """Tokens at the end of the training text left unread for a mix (none from a prepared folder: a mix reads text)."""
    n = mix_slice_length(train_tokens, cfg.train.mix_slice)
    return n if not is_prepared(cfg.data.corpus) and train_tokens - n >= 2 else 0


class NextToken:
    """Windows of text in, the next token out: what the training loop needs to teach a language model."""

    speed_key = "tokens_per_s"  # the metrics' name for its speed
    clip_gradients = True
    # Under torchrun: False, each rank reads only its block of the global batch; True, for an objective that draws
    # its own randomness per batch (BERT's blanks, T5's spans), every rank reads the whole global batch and draws the
    # same, then keeps its block (distributed.own_rows): the same draws as one process with the doubled batch.
    reads_global_batch = False

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        t, self.cfg, self.ctx = cfg.train, cfg, ctx
        self.data = data = find_text_data(cfg, out, ctx, resume)
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        self.model = build_model(cfg.model).to(ctx.device)
        if ctx.active:
            torch.manual_seed(t.seed + ctx.rank)  # dropout: different masks on each rank (rank 0 as a single process)
        self.autocast = autocast_for(ctx.device, t.dtype)
        check_lengths(data)
        self.mix_slice = held_out_for_mix(cfg, len(data.train_ids))
        self.train_ids = data.train_ids[: -self.mix_slice] if self.mix_slice else data.train_ids  # the end: for a mix
        # Random windows, or every window once per epoch; under torchrun each rank keeps its block of the global batch
        # (or reads all of it: reads_global_batch).
        share = (0, 1) if self.reads_global_batch else (ctx.rank, ctx.world)
        self.batches = make_batches(self.train_ids, cfg, ctx.device, batch_size=ctx.world * t.batch_size, share=share)
        block = cfg.model.block_size
        self.val = val_text(data.val_ids, data.val_chars, block)  # windows over val; each target knows its characters
        self.n_eval = max(1, math.ceil(t.eval_chars / data.chars_per_token / max(1, block // 2)))  # windows per epoch
        self.tokens_per_step = ctx.world * t.batch_size * block  # all ranks together
        self.pictures = Pictures(out, self.model, t.plot_every, active=ctx.main)

    @property
    def speed_unit(self) -> str:  # the progress bar's
        return "car/s" if self.data.tokenizer.kind == "char" else "tokens/s"

    # --- what the loop asks ---------------------------------------------------------------------------------------
    def make_optimizer(self):
        return make_optimizer(self.model, self.cfg)

    @property
    def steps_per_epoch(self) -> int:
        return self.batches.steps_per_epoch

    def epochs_done(self, step: int) -> float:
        return step / self.steps_per_epoch

    def epoch_ended(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def next_batch(self):
        return self.batches.next()  # x (B, T), y (B, T)

    def items(self, batch) -> int:
        return self.tokens_per_step

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        with self.autocast:
            logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))

    def evaluate(self, whole: bool = False) -> dict:
        """Nats per token and bits per character on the first windows of val (at each epoch) or on all of it."""
        score = evaluate(self.model, self.val if whole else self.val.head(self.n_eval), self.ctx.device, self.autocast)
        self.val_chars_per_token = score.chars / max(1, score.tokens)
        return {"val_loss": score.loss, "val_bpc": score.bpc}

    # --- saving and resuming ----------------------------------------------------------------------------------------
    def random_state(self) -> dict[str, torch.Tensor]:
        return {"rng.torch": torch.get_rng_state(), "rng.data": self.batches.generator.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        torch.set_rng_state(tensors["rng.torch"])
        self.batches.generator.set_state(tensors["rng.data"])  # the data order: shared by all ranks
        self.batches.seek(state["step"])

    def state(self) -> dict:
        d = self.data
        return {
            "corpus": d.corpus,
            "split": d.split,
            "steps_per_epoch": self.steps_per_epoch,
            "mix_slice_tokens": self.mix_slice,
        }

    def save_vocabulary(self, out: Path) -> None:
        self.data.tokenizer.save(out / "tokenizer.json")

    # --- what the run folder shows ----------------------------------------------------------------------------------
    def begin(self, trainer) -> None:
        self.pictures.begin(trainer.resume, trainer.epoch)
        d, t, n_params = self.data, self.cfg.train, sum(p.numel() for p in self.model.parameters())
        unit = (
            "caracteres"
            if d.tokenizer.kind == "char"
            else f"tokens {d.tokenizer.kind} ({number(d.chars_per_token, 2)} car/token)"
        )
        trainer.log(
            f"Modelo: {self.cfg.model.kind}, {thousands(n_params)} parámetros · corpus {d.corpus.name}: "
            f"{thousands(len(self.train_ids))} {unit} de entrenamiento{set_aside(self.mix_slice)}, "
            f"{thousands(len(d.val_ids))} de validación · "
            f"{self.ctx.device.type}"
            + (f" · {self.ctx.world} procesos × lotes de {t.batch_size}" if self.ctx.active else "")
        )
        if d.chosen:
            trainer.log(f"Según las veces que leeré el texto: {d.chosen}.")

    def end_epoch(self, trainer) -> None:
        self.pictures.epoch(trainer.epoch, trainer.step)

    def stopped(self, trainer) -> None:
        self.pictures.stopped()

    def finish(self, trainer, final: dict) -> Run:
        """The run as it ends: its state gains the final score and speed; its folder, the artefacts."""
        d = self.data
        chars_per_s = trainer.step * self.tokens_per_step * d.chars_per_token / max(trainer.train_time, 1e-9)
        with trainer.parts.part("8-grama"):
            judged = judge(final["val_bpc"], d, self.train_ids, trainer.step, self.epochs_done(trainer.step))
        with trainer.parts.part("evaluación"):
            by_text = self.val_by_text()
        trainer.commit(
            finished=True,
            extra={
                "val_loss": final["val_loss"],
                "val_bpc": final["val_bpc"],
                "tokenizer": d.tokenizer.kind,
                "chars_per_s": chars_per_s,
                "val_chars_per_token": self.val_chars_per_token,
                **judged,
                **({"val_bpc_by_text": by_text} if by_text else {}),
            },
        )
        run = Run(trainer.out, self.cfg, d.tokenizer, self.model, trainer.saved_state)
        self.pictures.finish(run, trainer.epoch, self.cfg.train, trainer.parts)
        per = "carácter" if d.tokenizer.kind == "char" else "token"
        trainer.log(
            f"Validación: {number(final['val_loss'], 4)} nats/{per} = {number(final['val_bpc'], 3)} bits/carácter "
            f"({trainer.step} pasos, {trainer.train_time:.0f} s de entrenamiento, {thousands(chars_per_s)} car/s)."
        )
        if by_text:
            trainer.log(by_text_line(by_text, "bits/carácter"))
        trainer.log(judged["verdict"])
        mixable = self.mix_slice and d.tokenizer.kind == "char"  # an 8-gram counts characters
        net = safety_net(trainer.out, final["val_bpc"], judged["baseline_bpc"]) if mixable else None
        if net:
            trainer.log(net)
        return run

    def val_by_text(self) -> dict[str, float]:
        """Bits per character of each text's val, for a corpus of several texts (else {})."""
        block = self.cfg.model.block_size
        return {
            name: evaluate(self.model, val_text(ids, chars, block), self.ctx.device, self.autocast).bpc
            for name, ids, chars in part_vals(self.data)
        }

    def interrupted_run(self, trainer) -> Run:
        return Run(
            trainer.out, self.cfg, self.data.tokenizer, self.model, trainer.saved_state, interrupted=trainer.stopped_by
        )


def set_aside(tokens: int) -> str:
    return f" (+{thousands(tokens)} apartados para ajustar una mezcla)" if tokens else ""
