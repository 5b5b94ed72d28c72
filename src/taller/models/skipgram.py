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

How it is trained (pairs, subsampling, negatives) is the objective's part: taller/training/skipgram.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.errors import TallerError
from taller.files import VOCABULARY_LIMIT, atomic_write, load_json
from taller.models.kind import Kind, ModelConfig, need

VOCAB_FORMAT = "taller-words-v1"
VOCAB_FILE = "vocab.json"
WORD = re.compile(r"[^\W\d_]+")  # a run of letters (any alphabet, accents and ñ included): no digits, no "_"


@dataclass
class SkipGramConfig(ModelConfig):
    """The [model] section of a skip-gram."""

    kind: str = "skipgram"
    d_model: int = 100  # the width of each word vector
    window: int = 5  # a centre sees up to this many words on each side
    negatives: int = 5  # random "wrong" context words per true pair
    min_count: int = 5  # words seen fewer times in the training text are left out
    subsample: float = 1e-3  # frequent words are thinned out above this share of the text (0 = never)

    def check(self, data) -> None:
        need(1 <= self.d_model <= 8192, f"model.d_model={self.d_model} debe estar entre 1 y 8192.")
        need(1 <= self.window <= 50, f"model.window={self.window} debe estar entre 1 y 50 palabras.")
        need(1 <= self.negatives <= 100, f"model.negatives={self.negatives} debe estar entre 1 y 100.")
        need(self.min_count >= 1, f"model.min_count={self.min_count} debe ser al menos 1.")
        need(
            0.0 <= self.subsample < 1.0, f"model.subsample={self.subsample} debe estar en [0, 1) (0 = sin submuestreo)."
        )
        need(
            data.tokenizer == "char",
            f"el skip-gram hace su propio vocabulario de palabras y no usa "
            f"data.tokenizer='{data.tokenizer}'; quita --tokenizer (o entrena un transformer o lstm con "
            f"{data.tokenizer}).",
        )

    def estimate_parameters(self) -> int:
        return 2 * self.vocab_size * self.d_model  # two tables of word vectors

    def estimate_activations(self, batch_size: int) -> int:
        return 2 * batch_size * (2 + self.negatives) * self.d_model  # each pair's vectors and its negatives', and grads


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
            raise TallerError(
                f"el texto de entrenamiento tiene menos de 2 palabras que aparezcan {min_count} veces o "
                f"más; usa un texto más largo o baja el mínimo (--set min_count=1)."
            )
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
            d = load_json(path, VOCABULARY_LIMIT, "el fichero está dañado (vuelve a entrenar)")
        except FileNotFoundError:
            raise TallerError(f"falta {path}; la carpeta no es una ejecución completa de un skip-gram.") from None
        words, counts = (d.get("words"), d.get("counts")) if isinstance(d, dict) else (None, None)
        if (
            not isinstance(d, dict)
            or d.get("type") != "words"
            or not isinstance(words, list)
            or not isinstance(counts, list)
            or len(words) != len(counts)
            or len(words) < 2
            or not all(isinstance(w, str) and w for w in words)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in counts)
            or len(set(words)) != len(words)
        ):
            raise TallerError(
                f"{path} no es un vocabulario de palabras válido (se esperaban listas 'words' y "
                "'counts' del mismo tamaño, sin repetidas); el fichero está dañado: vuelve a entrenar."
            )
        return cls(words, counts)


# --- the model ----------------------------------------------------------------------------------------------------


class SkipGram(nn.Module):
    """Two tables of word vectors; the score of (centre, context) is the dot product of their rows."""

    def __init__(self, cfg: SkipGramConfig):
        super().__init__()
        self.cfg, vocab_size, dim = cfg, cfg.vocab_size, cfg.d_model
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


KIND = Kind(
    name="skipgram",
    title="skip-gram",
    config=SkipGramConfig,
    build=SkipGram,
    objective="skipgram",
    preset="skipgram",
    timed_preset="skipgram",
    language_model=False,
    word_vectors=True,
    distributed=False,
    prepared_data=False,
    refusal="{run} es un skip-gram (vectores de palabras), no un modelo de lenguaje: no escribe ni predice "
    "texto; pregúntale con `taller embeddings {run} --near palabra`.",
)
