"""Learning word vectors: the skip-gram's objective (the model itself is taller/models/skipgram.py).

The recipe, as word2vec does it:
  - vocabulary: lowercased words of the *training* split that appear at least `min_count` times (others are dropped);
  - subsampling: a very frequent word (que, de, y) is kept with probability (√(f/t) + 1)·t/f, where f is its
    share of the text and t = `subsample`: fewer useless pairs, more weight for rarer words;
  - dynamic window: each centre looks b words to each side, b drawn from 1..`window` (near words count more);
  - negatives from the unigram distribution raised to 0.75 (rare words are picked a bit more often than their share);
  - two embedding tables with sparse gradients and SparseAdam: a batch touches a few thousand rows, only those move.

The validation loss is the same objective on pairs from the held-out split (never trained on), with fixed
negatives, so it is comparable across epochs. At the start it is exactly (1 + K)·ln 2: the context vectors start
at zero, every pair scores σ(0) = ½.

A step is one batch of `batch_size` pairs; an epoch is one pass over the training text, whose pairs are drawn again
each epoch from the seed and the epoch number (so a resumed run sees the same pairs). The loop is the one every
model goes through (taller/training/loop.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from taller.data.corpora import prepare_corpus
from taller.data.split import split_corpus
from taller.errors import TallerError
from taller.inspect.words import skipgram_loss_plot
from taller.models import build_model
from taller.models.skipgram import VOCAB_FILE, WordVocab, words_of
from taller.runs.folder import Run
from taller.runs.metrics import read_metrics
from taller.text import number, thousands

EPOCH_SEED_STRIDE = 7919  # a prime: the seeds of successive epochs' pairs are far apart, never those of another stream


# --- pairs: subsampling, dynamic window, negatives ----------------------------------------------------------------


def keep_probability(counts: torch.Tensor, subsample: float) -> torch.Tensor:
    """word2vec's chance of keeping each occurrence of a word: (√(f/t) + 1)·t/f, at most 1 (t = 0: keep all)."""
    if subsample <= 0:
        return torch.ones(len(counts))
    f = counts.double() / counts.sum()  # (V,) share of the text
    return ((f / subsample).sqrt() + 1).mul(subsample / f).clamp(max=1.0).float()


def skipgram_pairs(ids: torch.Tensor, keep: torch.Tensor, window: int, g: torch.Generator) -> torch.Tensor:
    """(centre, context) pairs of one pass over `ids`, in random order, without a Python loop over pairs.

    Frequent words are dropped first (subsampling); then each centre i draws its own reach b_i in 1..window and is
    paired with the words up to b_i positions away on each side. The loop runs over the distances 1..window only.
    """
    kept = ids[torch.rand(len(ids), generator=g) < keep[ids]]  # (N,) the text after subsampling
    reach = torch.randint(1, window + 1, (len(kept),), generator=g)  # (N,) each centre's window
    centres, contexts = [], []
    for d in range(1, window + 1):
        right = reach[:-d] >= d  # (N-d,) centre i reaches i+d
        centres += [kept[:-d][right]]
        contexts += [kept[d:][right]]
        left = reach[d:] >= d  # (N-d,) centre i+d reaches i
        centres += [kept[d:][left]]
        contexts += [kept[:-d][left]]
    pairs = torch.stack([torch.cat(centres), torch.cat(contexts)], dim=1)  # (P, 2)
    return pairs[torch.randperm(len(pairs), generator=g)]


class NegativeSampler:
    """Random words drawn from the unigram distribution raised to 3/4 (the cumulative table, searched in bulk)."""

    def __init__(self, counts: torch.Tensor, power: float = 0.75):
        p = counts.double() ** power
        self.cdf = (p.cumsum(0) / p.sum()).float()  # (V,)

    def __call__(self, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        u = torch.rand(shape, generator=g)
        return torch.searchsorted(self.cdf, u).clamp_(max=len(self.cdf) - 1)  # same shape, word ids


@torch.no_grad()
def evaluate(model, pairs: torch.Tensor, negatives: torch.Tensor, batch: int = 8192) -> float:
    """Mean loss per pair over fixed pairs (P, 2) and negatives (P, K)."""
    total = 0.0
    for i in range(0, len(pairs), batch):
        p = pairs[i : i + batch]
        total += model(p[:, 0], p[:, 1], negatives[i : i + batch]).item() * len(p)
    return total / max(1, len(pairs))


# --- the objective ------------------------------------------------------------------------------------------------


class SkipGramPairs:
    """(centre, context) pairs in, "do these two appear together?" out: what the loop needs to learn word vectors."""

    speed_key, speed_unit = "pairs_per_s", "pares/s"  # the metrics' name for its speed, and the progress bar's
    clip_gradients = False  # sparse gradients of a few rows: word2vec never clips them

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        m, t, self.cfg, self.out = cfg.model, cfg.train, cfg, out
        if t.device not in ("auto", "cpu"):
            raise TallerError(
                f"el skip-gram se entrena en la CPU (sus tablas dispersas son pequeñas); quita --device {t.device}."
            )
        self.corpus = prepare_corpus(cfg.data)
        self.split = split_corpus(self.corpus, cfg.data)
        train_words, val_words = words_of(self.split.train), words_of(self.split.val)
        self.vocab = WordVocab.load(out / VOCAB_FILE) if resume else WordVocab.from_words(train_words, m.min_count)
        self.train_ids = self.vocab.encode(train_words)  # (N,) words out of the vocabulary are dropped
        self.counts = (len(train_words), len(val_words))
        m.vocab_size = len(self.vocab)
        cfg.validate()
        torch.manual_seed(t.seed)
        self.model = build_model(m)  # always on the CPU
        counts = torch.tensor(self.vocab.counts)
        self.keep, self.negative = keep_probability(counts, m.subsample), NegativeSampler(counts)
        self.g_neg = torch.Generator().manual_seed(t.seed + 1)  # negatives of the training batches; saved for --resume
        self.val_pairs, self.val_negatives = self.validation_pairs(self.vocab.encode(val_words), t.seed + 2)
        self.epoch, self.position, self.seen = 0, 0, 0  # the epoch whose pairs are drawn; pairs of it done; in all
        self.pairs = self.epoch_pairs(0)

    def validation_pairs(self, val_ids: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed pairs (P, 2) of the val text and their negatives (P, K): the same at every evaluation."""
        g = torch.Generator().manual_seed(seed)
        pairs = skipgram_pairs(val_ids, self.keep, self.cfg.model.window, g)
        if len(pairs) == 0:
            raise TallerError(
                "el texto de validación no da ningún par de palabras del vocabulario; usa un texto más "
                "largo o más validación (--set val_fraction=0.2)."
            )
        return pairs, self.negative((len(pairs), self.cfg.model.negatives), g)

    def epoch_pairs(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.train.seed + EPOCH_SEED_STRIDE * (epoch + 1))
        pairs = skipgram_pairs(self.train_ids, self.keep, self.cfg.model.window, g)
        if len(pairs) == 0:
            raise TallerError("el texto de entrenamiento no da ningún par de palabras vecinas; usa un texto más largo.")
        return pairs

    # --- what the loop asks ---------------------------------------------------------------------------------------
    def make_optimizer(self):
        t = self.cfg.train
        return torch.optim.SparseAdam(list(self.model.parameters()), lr=t.lr, betas=(t.beta1, t.beta2))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.pairs) / self.cfg.train.batch_size)

    def epochs_done(self, step: int) -> float:
        return self.epoch + self.position / len(self.pairs)

    def epoch_ended(self, step: int) -> bool:
        return self.position >= len(self.pairs)

    def next_batch(self) -> torch.Tensor:
        batch = self.pairs[self.position : self.position + self.cfg.train.batch_size]  # (B, 2)
        self.position, self.seen = self.position + len(batch), self.seen + len(batch)
        return batch

    def items(self, batch) -> int:
        return len(batch)

    def loss(self, model, batch) -> torch.Tensor:
        return model(batch[:, 0], batch[:, 1], self.negative((len(batch), self.cfg.model.negatives), self.g_neg))

    def evaluate(self, whole: bool = False) -> dict:
        return {"val_loss": evaluate(self.model, self.val_pairs, self.val_negatives)}

    # --- saving and resuming ----------------------------------------------------------------------------------------
    def random_state(self) -> dict[str, torch.Tensor]:
        return {"rng.negatives": self.g_neg.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        if state.get("kind") != self.cfg.model.kind or not all(
            isinstance(state.get(k), int) for k in ("position", "pairs_seen")
        ):
            raise TallerError(
                f"{self.out}/state.json no es el de un skip-gram (faltan 'position' o 'pairs_seen'); "
                "no se puede continuar: entrena de nuevo en otra carpeta."
            )
        self.g_neg.set_state(tensors["rng.negatives"])
        self.epoch, self.position, self.seen = state["epoch"], state["position"], state["pairs_seen"]
        self.pairs = self.epoch_pairs(self.epoch)

    def state(self) -> dict:
        return {
            "corpus": self.corpus,
            "split": self.split,
            "kind": self.cfg.model.kind,
            "position": self.position,
            "pairs_seen": self.seen,
            "vocab_size": len(self.vocab),
            "train_words": self.counts[0],
            "val_words": self.counts[1],
            "val_pairs": len(self.val_pairs),
        }

    def save_vocabulary(self, out: Path) -> None:
        self.vocab.save(out / VOCAB_FILE)

    # --- what the run folder shows ----------------------------------------------------------------------------------
    def begin(self, trainer) -> None:
        m = self.cfg.model
        if not trainer.resume:
            trainer.log_metrics({"step": 0, "epoch": 0, **self.evaluate(), "time": 0.0})
        trainer.log(
            f"Skip-gram: {thousands(len(self.vocab))} palabras (≥ {m.min_count} apariciones) × {m.d_model} "
            f"dimensiones, {thousands(2 * len(self.vocab) * m.d_model)} parámetros · corpus {self.corpus.name}: "
            f"{thousands(self.counts[0])} palabras de entrenamiento, {thousands(self.counts[1])} de validación · "
            f"ventana {m.window}, {m.negatives} negativas"
        )

    def end_epoch(self, trainer) -> None:
        self.epoch, self.position = self.epoch + 1, 0
        self.pairs = self.epoch_pairs(self.epoch)

    def stopped(self, trainer) -> list[dict]:
        """loss.png; returns the metrics it drew."""
        metrics = read_metrics(trainer.out)
        skipgram_loss_plot(metrics, trainer.out / "loss.png")
        return metrics

    def finish(self, trainer, final: dict) -> Run:
        pairs_per_s = self.seen / max(trainer.train_time, 1e-9)
        trainer.commit(finished=True, extra={"val_loss": final["val_loss"], "pairs_per_s": pairs_per_s})
        first = self.stopped(trainer)[0].get("val_loss", float("nan"))
        trainer.log(
            f"Validación: {number(first, 3)} → {number(final['val_loss'], 3)} nats por par ({trainer.step} pasos, "
            f"{trainer.epoch} épocas, {trainer.train_time:.0f} s, {thousands(pairs_per_s)} pares/s)."
        )
        trainer.log(f"Prueba: taller embeddings {trainer.out} --near sancho")
        return Run(trainer.out, self.cfg, self.vocab, self.model, trainer.saved_state)

    def interrupted_run(self, trainer) -> Run:
        return Run(trainer.out, self.cfg, self.vocab, self.model, trainer.saved_state, interrupted=trainer.stopped_by)
