"""Learn to label texts: fine-tuning a pretrained BERT (or training the same network from scratch) as a classifier.

    a batch:  B labelled texts, padded to the longest (the padding is never looked at: `keys`);
    its loss: cross_entropy(model(texts), labels) — the encoder reads each text, a small head answers one label

With `--init RUN` the encoder starts from a pretrained BERT run's weights (its tokenizer and its size come too): it
already knows how the language goes, and only has to learn what tells the labels apart. Without it, the same network
starts from random weights. Training both for the same time measures what pretraining is worth.

Validation: a share of the labelled lines held out (data.val_fraction, data.split_seed), scored whole at each epoch:
loss and accuracy; at the end, the confusion table (which label was taken for which).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from taller.data.corpora import Corpus, clean_like
from taller.data.labelled import load_labelled
from taller.data.split import Split
from taller.data.tokenizers import build_tokenizer, load_tokenizer
from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect import loss_plot, parameter_table
from taller.inspect.classify import confusion, confusion_table, write_confusion
from taller.models import KINDS, build_model, kind_of
from taller.models.modes import evaluating
from taller.runs.folder import Run, load_run
from taller.runs.metrics import read_metrics
from taller.text import number, thousands
from taller.training.device import autocast_for
from taller.training.optim import make_optimizer

NOT_COPIED = (
    "kind",
    "vocab_size",
    "dropout",
    "attention",
    "encoder_lr",
)  # a pretrained run's [model] keys the new run keeps its own: not its size but how it reads and learns


def pretrained_run(cfg, path: str) -> Run:
    """The pretrained run `--init` names (one that fills blanks: BERT, T5); the new run takes its size (every key of
    its [model] section that both have)."""
    run = load_run(path, can="fills")
    if not kind_of(run.config).starts(cfg.model.kind):
        raise TallerError(
            f"--init {path}: es {kind_of(run.config).a_title} y {kind_of(cfg).a_title} no puede empezar "
            "desde él; usa una ejecución de "
            f"{' o '.join(k.title for k in KINDS.values() if k.starts(cfg.model.kind))}."
        )
    for f in dataclasses.fields(run.config.model):
        if f.name not in NOT_COPIED and hasattr(cfg.model, f.name):
            setattr(cfg.model, f.name, getattr(run.config.model, f.name))
    return run


def encode_texts(tokenizer, texts: list[str], data, block: int, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Texts (after `prefix`) -> ids (N, block) padded with 0, and each text's length in tokens (N,), cut to fit."""
    ids = [tokenizer.encode(prefix + clean_like(t, data), unknown="replace")[:block] for t in texts]
    x = torch.zeros(len(ids), block, dtype=torch.long)
    for i, row in enumerate(ids):
        x[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return x, torch.tensor([max(1, len(row)) for row in ids])


def batch_of(x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor):
    """Rows of the padded texts, cut to the longest of them: ids (B, T) and keys (B, T) (True: text, False: padding)."""
    T = int(lengths[rows].max())
    keys = torch.arange(T)[None, :] < lengths[rows][:, None]  # (B, T)
    return x[rows, :T], keys


class EncoderTask:
    """What the run folder of a task learnt over an encoder shows (a classifier, the accent tagger): its parameter
    table and, at a stop or the end, its loss curves; no pictures per epoch."""

    cfg: object
    model: torch.nn.Module
    chosen: str | None  # what the size rule chose, in words

    def say_start(self, trainer, title: str, data: str) -> None:
        atomic_write(trainer.out / "parameters.txt", parameter_table(self.model).encode("utf-8"))
        init = self.cfg.model.init
        start = f"encoder preentrenado de {init}" if init else "desde cero (sin --init)"
        trainer.log(
            f"{title}: {thousands(sum(p.numel() for p in self.model.parameters()))} parámetros, {start} · {data}"
        )
        if self.chosen:
            trainer.log(f"Según las veces que leeré el texto: {self.chosen}.")

    def end_epoch(self, trainer) -> None:
        pass

    def stopped(self, trainer) -> None:
        if trainer.writer:
            loss_plot(read_metrics(trainer.out), trainer.out / "loss.png")


class Classify(EncoderTask):
    """Labelled texts in, a label out: what the training loop needs to teach a classifier."""

    speed_key, speed_unit = "texts_per_s", "textos/s"
    clip_gradients = True
    prefix = ""  # written before every text (a T5 reads its task there)

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        m, t, self.cfg, self.ctx = cfg.model, cfg.train, cfg, ctx
        self.labelled = d = load_labelled(cfg.data.corpus)
        self.train_idx, self.val_idx = d.split(cfg.data.val_fraction, cfg.data.split_seed)
        pretrained = pretrained_run(cfg, m.init) if m.init and not resume else None
        if resume:
            self.tokenizer = load_tokenizer(out / "tokenizer.json")
        elif pretrained is not None:
            self.tokenizer = pretrained.tokenizer  # the encoder's own tokens
        else:
            texts = [d.texts[i] for i in self.train_idx]
            self.tokenizer = build_tokenizer(cfg.data, Split("\n".join(texts), "", "lines"))
        m.vocab_size, m.n_labels = self.tokenizer.vocab_size, len(d.names)
        self.x, self.lengths = encode_texts(self.tokenizer, d.texts, cfg.data, m.block_size, self.prefix)
        self.chosen = cfg.fit_to_text(int(self.lengths[self.train_idx].sum()))  # the tokens it will train on
        cfg.validate()
        torch.manual_seed(t.seed)
        self.model = build_model(m).to(ctx.device)
        if pretrained is not None:
            self.start_from(pretrained)
        self.autocast = autocast_for(ctx.device, t.dtype)
        self.y = torch.tensor(d.labels)
        self.generator = torch.Generator().manual_seed(t.seed + 1)  # which texts each batch takes: saved for --resume

    def start_from(self, pretrained: Run) -> None:
        """The same names and shapes: BERT's weights, tensor by tensor, into the encoder (the head starts anew)."""
        self.model.encoder.load_state_dict(pretrained.model.state_dict())

    # --- what the loop asks ---------------------------------------------------------------------------------------
    def make_optimizer(self):
        return make_optimizer(self.model, self.cfg)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.train_idx) / self.cfg.train.batch_size))

    def epochs_done(self, step: int) -> float:
        return step / self.steps_per_epoch

    def epoch_ended(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def next_batch(self):
        pick = torch.randint(len(self.train_idx), (self.cfg.train.batch_size,), generator=self.generator)
        rows = torch.tensor(self.train_idx)[pick]  # (B,)
        x, keys = batch_of(self.x, self.lengths, rows)
        device = self.ctx.device
        return x.to(device), keys.to(device), self.y[rows].to(device)

    def items(self, batch) -> int:
        return len(batch[0])

    def loss(self, model, batch) -> torch.Tensor:
        x, keys, y = batch
        with self.autocast:
            logits = model(x, keys)  # (B, L)
        return F.cross_entropy(logits.float(), y)

    @torch.no_grad()
    def predict(self, rows: list[int], batch_size: int = 128) -> torch.Tensor:
        """Label logits (N, L) of the texts at `rows`."""
        with evaluating(self.model):
            out = []
            for i in range(0, len(rows), batch_size):
                x, keys = batch_of(self.x, self.lengths, torch.tensor(rows[i : i + batch_size]))
                with self.autocast:
                    out.append(self.model(x.to(self.ctx.device), keys.to(self.ctx.device)).float().cpu())
        return torch.cat(out)

    def evaluate(self, whole: bool = False) -> dict:
        logits, y = self.predict(self.val_idx), self.y[self.val_idx]
        return {
            "val_loss": F.cross_entropy(logits, y).item(),
            "val_accuracy": (logits.argmax(-1) == y).float().mean().item(),
        }

    # --- saving and resuming ----------------------------------------------------------------------------------------
    def random_state(self) -> dict[str, torch.Tensor]:
        return {"rng.torch": torch.get_rng_state(), "rng.data": self.generator.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        if state.get("labels") != self.labelled.names:
            raise TallerError(
                f"las etiquetas de {self.labelled.source} ({', '.join(self.labelled.names)}) no son las "
                "de la ejecución; continúa con el mismo fichero, o entrena de cero en otra carpeta."
            )
        torch.set_rng_state(tensors["rng.torch"])
        self.generator.set_state(tensors["rng.data"])

    def state(self) -> dict:
        d = self.labelled
        return {
            "corpus": Corpus(d.name, "", d.source, True),
            "split": Split("", "", "lines"),
            "labels": d.names,
            "train_texts": len(self.train_idx),
            "val_texts": len(self.val_idx),
            "init": self.cfg.model.init,
        }

    def save_vocabulary(self, out: Path) -> None:
        self.tokenizer.save(out / "tokenizer.json")

    # --- what the run folder shows ----------------------------------------------------------------------------------
    def begin(self, trainer) -> None:
        d = self.labelled
        counts = ", ".join(f"{name}: {d.labels.count(i)}" for i, name in enumerate(d.names))
        self.say_start(
            trainer,
            "Clasificador",
            f"{d.name}: {thousands(len(self.train_idx))} textos de entrenamiento, "
            f"{thousands(len(self.val_idx))} de validación ({counts})",
        )

    def finish(self, trainer, final: dict) -> Run:
        """The final accuracy, the confusion table (confusion.json and the log) and the loss curves."""
        logits, names = self.predict(self.val_idx), self.labelled.names
        counts = confusion(logits.argmax(-1), self.y[self.val_idx], len(names))
        if trainer.writer:  # labels² numbers (6 MB for 1,000 labels): never in state.json, which is read with 1 MB
            write_confusion(trainer.out, names, counts)
        trainer.commit(finished=True, extra=final)
        self.stopped(trainer)
        trainer.log(
            f"Validación: acierta el {number(100 * final['val_accuracy'], 1)} % de {thousands(len(self.val_idx))} "
            f"textos ({trainer.step} pasos, {trainer.train_time:.0f} s).\n{confusion_table(counts, names)}"
        )
        trainer.log(f'Prueba: taller classify {trainer.out} --text "Quien mucho abarca, poco aprieta."')
        return Run(trainer.out, self.cfg, self.tokenizer, self.model, trainer.saved_state)

    def interrupted_run(self, trainer) -> Run:
        return Run(
            trainer.out, self.cfg, self.tokenizer, self.model, trainer.saved_state, interrupted=trainer.stopped_by
        )
