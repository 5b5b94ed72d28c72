"""Word vectors: a skip-gram with negative sampling (word2vec, Mikolov et al. 2013), written by hand.

The idea in one line: a word is known by the company it keeps. For every word of the text (the centre) and every
word near it (a context word), the model is asked a yes/no question — "do these two appear together?" — and is
shown, for each true pair, a few false ones (negatives: random words). Each word has two vectors: `vectors`
(as a centre) and `contexts` (as a context word). The score of a pair is their dot product:

    centre c, true context o, negatives n1..nK:
        loss = -log σ(v_c · u_o) - Σ_k log σ(-v_c · u_nk)          (σ: the sigmoid)

Two words that appear among the same neighbours must score high with the same context vectors, so their centre
vectors end up pointing the same way: cosine similarity measures meaning, and differences between vectors
(rey − hombre + mujer) can carry relations.

Why a skip-gram and not a word-level language model, for this lesson? A language model learns its input vectors only
as a side effect of predicting the next word through many layers; on a book of ~380.000 words those vectors were
nearly useless for geometry (an earlier word-level model ranked «reina» 4.546th for rey − hombre + mujer). The
skip-gram's whole objective *is* the geometry: its only parameters are the vectors, and the only thing they are
trained to do is to make the dot product of words that share contexts large. It is also cheap: one dot product per
pair, so on two CPU cores it reads the whole Quijote several times in half a minute.

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
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.files import atomic_write

from taller.runs.checkpoint import checkpoint_file, flatten_optimizer, load_tensors, read_state, save_checkpoint
from taller.errors import TallerError
from taller.runs.metrics import append_metrics, truncate_metrics
from taller.text import thousands

VOCAB_FORMAT = "taller-words-v1"
VOCAB_FILE = "vocab.json"
WORD = re.compile(r"[^\W\d_]+")  # a run of letters (any alphabet, accents and ñ included): no digits, no "_"


def words_of(text: str) -> list[str]:
    """'¿Qué dice, Sancho?' -> ['qué', 'dice', 'sancho']."""
    return WORD.findall(text.lower())


# --- the vocabulary -----------------------------------------------------------------------------------------------


class WordVocab:
    """The words of the training text seen at least `min_count` times, most frequent first, with their counts."""

    def __init__(self, words: list[str], counts: list[int]):
        self.words, self.counts = list(words), list(counts)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_words(cls, words: list[str], min_count: int) -> WordVocab:
        counted = sorted(((n, w) for w, n in Counter(words).items() if n >= min_count), key=lambda t: (-t[0], t[1]))
        if len(counted) < 2:
            raise TallerError(f"el texto de entrenamiento tiene menos de 2 palabras que aparezcan {min_count} veces o "
                              f"más; usa un texto más largo o baja el mínimo (--set min_count=1).")
        return cls([w for _, w in counted], [n for n, _ in counted])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: list[str]) -> torch.Tensor:
        """Word ids of the words in the vocabulary; the others are dropped (as word2vec does)."""
        return torch.tensor([self.index[w] for w in words if w in self.index], dtype=torch.long)

    def save(self, path: Path) -> None:
        data = {"format": VOCAB_FORMAT, "type": "words", "words": self.words, "counts": self.counts}
        atomic_write(path, json.dumps(data, ensure_ascii=False, indent=0).encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> WordVocab:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TallerError(f"falta {path}; la carpeta no es una ejecución completa de un skip-gram.") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TallerError(f"{path} no es JSON válido; el fichero está dañado (vuelve a entrenar).") from None
        words, counts = (d.get("words"), d.get("counts")) if isinstance(d, dict) else (None, None)
        if (not isinstance(d, dict) or d.get("type") != "words" or not isinstance(words, list)
                or not isinstance(counts, list) or len(words) != len(counts) or len(words) < 2
                or not all(isinstance(w, str) and w for w in words)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in counts)
                or len(set(words)) != len(words)):
            raise TallerError(f"{path} no es un vocabulario de palabras válido (se esperaban listas 'words' y "
                              "'counts' del mismo tamaño, sin repetidas); el fichero está dañado: vuelve a entrenar.")
        return cls(words, counts)


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


# --- the model ----------------------------------------------------------------------------------------------------


class SkipGram(nn.Module):
    """Two tables of word vectors; the score of (centre, context) is the dot product of their rows."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.vectors = nn.Embedding(vocab_size, dim, sparse=True)  # centre vectors: the word vectors we keep
        self.contexts = nn.Embedding(vocab_size, dim, sparse=True)  # context vectors
        nn.init.uniform_(self.vectors.weight, -0.5 / dim, 0.5 / dim)  # as word2vec: small random centres,
        nn.init.zeros_(self.contexts.weight)  # zero contexts (every first score is σ(0) = ½)

    def forward(self, centre: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch: centre (B,), context (B,), negatives (B, K) -> scalar."""
        targets = torch.cat([context[:, None], negatives], dim=1)  # (B, 1+K): the true one first
        v = self.vectors(centre)  # (B, D)
        u = self.contexts(targets)  # (B, 1+K, D)
        scores = torch.bmm(u, v[:, :, None]).squeeze(2)  # (B, 1+K) dot products
        sign = torch.ones_like(scores)
        sign[:, 1:] = -1  # "yes" for the true context, "no" for the negatives
        return -F.logsigmoid(sign * scores).sum(dim=1).mean()


@torch.no_grad()
def evaluate(model: SkipGram, pairs: torch.Tensor, negatives: torch.Tensor, batch: int = 8192) -> float:
    """Mean loss per pair over fixed pairs (P, 2) and negatives (P, K)."""
    total = 0.0
    for i in range(0, len(pairs), batch):
        p = pairs[i:i + batch]
        total += model(p[:, 0], p[:, 1], negatives[i:i + batch]).item() * len(p)
    return total / max(1, len(pairs))


# --- training: the normal run folder ------------------------------------------------------------------------------


def train_skipgram(cfg, out: Path, *, resume: bool = False, progress: bool = True, log=print):
    """Train word vectors as `cfg` says (model.kind = "skipgram"), writing the run folder `out`; return its Run.

    A step is one batch of `batch_size` pairs; an epoch is one pass over the training text (its pairs are drawn
    again each epoch from the seed and the epoch number, so a resumed run sees the same pairs). Checkpoints are
    committed at every epoch end and when stopped (Ctrl-C, --max-time).
    """
    from tqdm.auto import tqdm

    from taller._version import __version__
    from taller.data.corpora import prepare_corpus
    from taller.data.batches import split_text
    from taller.inspect.words import skipgram_loss_plot
    from taller.runs.folder import Run
    from taller.runs.metrics import read_metrics
    from taller.training.loop import StopFlag, create_run_dir, learning_rate

    m, t = cfg.model, cfg.train
    if t.device not in ("auto", "cpu"):
        raise TallerError(f"el skip-gram se entrena en la CPU (sus tablas dispersas son pequeñas); quita --device {t.device}.")
    corpus = prepare_corpus(cfg.data)
    split = split_text(corpus.text, lines=corpus.lines, val_fraction=cfg.data.val_fraction,
                       seed=cfg.data.split_seed, kind=cfg.data.split, max_chars=cfg.data.max_chars)
    train_words, val_words = words_of(split.train), words_of(split.val)
    vocab = WordVocab.load(out / VOCAB_FILE) if resume else WordVocab.from_words(train_words, m.min_count)
    train_ids, val_ids = vocab.encode(train_words), vocab.encode(val_words)  # (N,), (M,) words out of vocab dropped
    m.vocab_size = len(vocab)
    cfg.validate()

    torch.manual_seed(t.seed)
    counts = torch.tensor(vocab.counts)
    keep, negative = keep_probability(counts, m.subsample), NegativeSampler(counts)
    model = SkipGram(len(vocab), m.d_model)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=t.lr, betas=(t.beta1, t.beta2))
    g_neg = torch.Generator().manual_seed(t.seed + 1)  # negatives of the training batches; saved for --resume
    g_val = torch.Generator().manual_seed(t.seed + 2)  # the fixed validation pairs and their negatives
    val_pairs = skipgram_pairs(val_ids, keep, m.window, g_val)  # (P, 2)
    val_negatives = negative((len(val_pairs), m.negatives), g_val)  # (P, K)
    if len(val_pairs) == 0:
        raise TallerError("el texto de validación no da ningún par de palabras del vocabulario; usa un texto más "
                          "largo o más validación (--set val_fraction=0.2).")

    def epoch_pairs(epoch: int) -> torch.Tensor:
        pairs = skipgram_pairs(train_ids, keep, m.window, torch.Generator().manual_seed(t.seed + 7919 * (epoch + 1)))
        if len(pairs) == 0:
            raise TallerError("el texto de entrenamiento no da ningún par de palabras vecinas; usa un texto más largo.")
        return pairs

    step, epoch, position, train_time, seen = 0, 0, 0, 0.0, 0
    if resume:
        state = read_state(out)
        if state.get("kind") != "skipgram" or not all(isinstance(state.get(k), int) for k in ("position", "pairs_seen")):
            raise TallerError(f"{out}/state.json no es el de un skip-gram (faltan 'position' o 'pairs_seen'); "
                              "no se puede continuar: entrena de nuevo en otra carpeta.")
        model.load_state_dict(load_tensors(checkpoint_file(out, "model.safetensors", state), model.state_dict())[0])
        opt_tensors, meta = load_tensors(checkpoint_file(out, "optim.safetensors", state))
        from taller.runs.checkpoint import unflatten_optimizer

        try:
            optimizer.load_state_dict(unflatten_optimizer(opt_tensors, meta))
            g_neg.set_state(opt_tensors["rng.negatives"])
        except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            raise TallerError(f"{out}/optim.safetensors no corresponde a este modelo ({e}); no se puede continuar.") from None
        step, epoch, position, train_time = state["step"], state["epoch"], state["position"], float(state["train_time"])
        seen = state["pairs_seen"]
        truncate_metrics(out, step, keep_final=False)
        cfg.save(out / "config.toml")
        log(f"Continúo {out} desde el paso {step} (época {epoch}).")
    else:
        create_run_dir(out)
        cfg.save(out / "config.toml")
        vocab.save(out / VOCAB_FILE)

    def commit(finished: bool, extra: dict | None = None) -> None:
        opt_tensors, opt_meta = flatten_optimizer(optimizer)
        opt_tensors["rng.negatives"] = g_neg.get_state()
        state = {"kind": "skipgram", "step": step, "epoch": epoch, "position": position, "pairs_seen": seen,
                 "train_time": train_time,
                 "finished": finished, "taller": __version__, "corpus": corpus.name, "split": split.kind,
                 "line_corpus": corpus.lines, "parameters": sum(p.numel() for p in model.parameters()),
                 "vocab_size": len(vocab), "train_words": len(train_words), "val_words": len(val_words),
                 "val_pairs": len(val_pairs), **(extra or {})}
        save_checkpoint(out, model.state_dict(), opt_tensors, opt_meta, state)
        return state

    if not resume:
        append_metrics(out, {"step": 0, "epoch": 0, "val_loss": evaluate(model, val_pairs, val_negatives), "time": 0.0})
    log(f"Skip-gram: {thousands(len(vocab))} palabras (≥ {m.min_count} apariciones) × {m.d_model} dimensiones, "
        f"{thousands(2 * len(vocab) * m.d_model)} parámetros · corpus {corpus.name}: {thousands(len(train_words))} "
        f"palabras de entrenamiento, {thousands(len(val_words))} de validación · ventana {m.window}, "
        f"{m.negatives} negativas")

    timed = t.max_time > 0
    bar = tqdm(total=int(t.max_time) if timed else t.epochs, initial=min(int(train_time), int(t.max_time)) if timed else epoch,
               disable=not progress, dynamic_ncols=True, desc="Entrenando", mininterval=1.0,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} " + ("s" if timed else "épocas")
                          + " [{elapsed}<{remaining}{postfix}]")
    pairs = epoch_pairs(epoch)  # (P, 2) this epoch's pairs; `position` is how many are done
    window_loss, window_count, window_pairs, window_time = 0.0, 0, 0, 0.0
    interrupted, lr = False, t.lr
    with StopFlag() as stop:
        while True:
            if (timed and train_time >= t.max_time) or (not timed and epoch >= t.epochs) or (t.max_steps and step >= t.max_steps):
                break
            if stop.requested:
                interrupted = True
                break
            started = time.perf_counter()
            done = (epoch + position / len(pairs)) / t.epochs
            lr = learning_rate(cfg, step, train_time / t.max_time if timed else done)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = pairs[position:position + t.batch_size]  # (B, 2)
            loss = model(batch[:, 0], batch[:, 1], negative((len(batch), m.negatives), g_neg))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TallerError(f"la pérdida se ha vuelto {loss_value} en el paso {step}: el entrenamiento diverge; "
                                  f"baja el learning rate (--set lr={t.lr / 3:.2g}).")
            elapsed = time.perf_counter() - started
            step, position, seen, train_time = step + 1, position + len(batch), seen + len(batch), train_time + elapsed
            window_loss, window_count = window_loss + loss_value, window_count + 1
            window_pairs, window_time = window_pairs + len(batch), window_time + elapsed
            if step % t.log_every == 0:
                append_metrics(out, {"step": step, "epoch": epoch, "train_loss": window_loss / window_count, "lr": lr,
                                     "pairs_per_s": window_pairs / window_time, "time": train_time})
                bar.set_postfix_str(f"pérdida {window_loss / window_count:.3f} · "
                                    f"{thousands(window_pairs / window_time)} pares/s", refresh=False)
                window_loss, window_count, window_pairs, window_time = 0.0, 0, 0, 0.0
            if timed:
                bar.update(min(int(train_time), bar.total) - bar.n)
            if position >= len(pairs):  # the end of an epoch: score val, commit, draw the next pairs
                epoch, position = epoch + 1, 0
                append_metrics(out, {"step": step, "epoch": epoch, "val_loss": evaluate(model, val_pairs, val_negatives),
                                     "time": train_time})
                commit(finished=False)
                if not timed:
                    bar.update(1)
                pairs = epoch_pairs(epoch)
    bar.close()

    run = Run(out, cfg, vocab, model, {})
    if interrupted:
        run.state = commit(finished=False)
        skipgram_loss_plot(read_metrics(out), out / "loss.png")
        log(f"Interrumpido: guardado en el paso {step} (época {epoch}). Continúa con `taller train --out {out} --resume`.")
        run.interrupted = True
        return run
    val_loss = evaluate(model, val_pairs, val_negatives)
    append_metrics(out, {"step": step, "epoch": epoch, "val_loss": val_loss, "time": train_time, "final": True})
    pairs_per_s = seen / max(train_time, 1e-9)
    run.state = commit(finished=True, extra={"val_loss": val_loss, "pairs_per_s": pairs_per_s})
    skipgram_loss_plot(read_metrics(out), out / "loss.png")
    first = read_metrics(out)[0].get("val_loss", float("nan"))
    log(f"Validación: {first:.3f} → {val_loss:.3f} nats por par ({step} pasos, {epoch} épocas, {train_time:.0f} s, "
        f"{thousands(pairs_per_s)} pares/s).")
    log(f"Prueba: taller embeddings {out} --near sancho")
    return run


# --- looking at the vectors: neighbours, analogies, ranks ---------------------------------------------------------


@dataclass
class Ranked:
    word: str
    similarity: float


class WordVectors:
    """A run's word vectors, unit length, with the vocabulary: what `taller embeddings` asks questions of."""

    def __init__(self, vocab: WordVocab, vectors: torch.Tensor, run_dir: Path | None = None, state: dict | None = None):
        if vectors.shape[0] != len(vocab):
            raise TallerError(f"el vocabulario tiene {len(vocab)} palabras pero los vectores son {vectors.shape[0]}; "
                              "la carpeta mezcla ficheros de ejecuciones distintas.")
        self.vocab, self.dir, self.state = vocab, run_dir, state or {}
        self.unit = F.normalize(vectors.float(), dim=1)  # (V, D): cosine similarity is a dot product now

    @classmethod
    def load(cls, run_dir: str | Path) -> WordVectors:
        from taller.config import Config

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise TallerError(f"no existe la carpeta de ejecución {run_dir}; entrena una con "
                              f"`taller train --corpus quijote --model skipgram --out {run_dir}`.")
        state = read_state(run_dir)
        cfg = Config.load(run_dir / "config.toml")
        if cfg.model.kind != "skipgram":
            raise TallerError(f"{run_dir} es un modelo de lenguaje «{cfg.model.kind}», no un skip-gram: no tiene vectores "
                              "de palabras. Entrena uno con `taller train --corpus quijote --model skipgram`.")
        vocab = WordVocab.load(run_dir / VOCAB_FILE)
        expected = SkipGram(len(vocab), cfg.model.d_model).state_dict()
        tensors, _ = load_tensors(checkpoint_file(run_dir, "model.safetensors", state), expected=expected)
        return cls(vocab, tensors["vectors.weight"], run_dir, state)

    def check_known(self, words: list[str]) -> list[str]:
        """The words, lowercased; one clear error listing those that are not in the vocabulary."""
        words = [w.strip().lower() for w in words]
        unknown = list(dict.fromkeys(w for w in words if w not in self.vocab.index))
        if unknown:
            shown = ", ".join(f"«{w}»" for w in unknown)
            where = f" de {self.dir}" if self.dir else ""
            raise TallerError(f"no están en el vocabulario{where}: {shown} (sólo tiene las {thousands(len(self.vocab))} "
                              f"palabras que aparecen al menos {self.vocab.counts[-1]} veces en el texto de "
                              "entrenamiento); prueba con otras.")
        return words

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of every word to a query vector: (D,) -> (V,)."""
        return self.unit @ F.normalize(query, dim=0)

    def ranked(self, scores: torch.Tensor, exclude: list[str], k: int) -> list[Ranked]:
        scores = scores.clone()
        scores[[self.vocab.index[w] for w in exclude]] = -math.inf
        top = torch.topk(scores, min(k, len(scores) - len(set(exclude))))
        return [Ranked(self.vocab.words[i], float(s)) for s, i in zip(top.values, top.indices)]

    def rank_of(self, scores: torch.Tensor, word: str, exclude: list[str]) -> tuple[int, int, float]:
        """(rank of `word` counting from 1, how many words compete, its similarity); the excluded words do not compete."""
        excluded = {self.vocab.index[w] for w in exclude}
        target = float(scores[self.vocab.index[word]])
        mask = torch.ones(len(scores), dtype=torch.bool)
        mask[list(excluded)] = False
        return int((scores[mask] > target).sum()) + 1, int(mask.sum()), target

    def near_scores(self, word: str) -> torch.Tensor:
        return self.scores(self.unit[self.vocab.index[word]])  # (V,)

    def analogy_scores(self, a: str, b: str, c: str) -> torch.Tensor:
        """a − b + c (rey − hombre + mujer): the unit vectors are added, then every word is compared to the sum."""
        v = self.unit[self.vocab.index[a]] - self.unit[self.vocab.index[b]] + self.unit[self.vocab.index[c]]  # (D,)
        return self.scores(v)
