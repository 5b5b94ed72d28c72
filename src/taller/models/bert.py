"""BERT: the Transformer's blocks with the causal mask off, so that every position reads both sides of the text.

    GPT  (transformer.py):  «el coche al ___»             each position sees only what is before it
    BERT (this file):       «el coche al ___ porque …»    each position sees the whole window, before and after

It is the very same network (taller/models/transformer.py: embedding, blocks, LayerNorm, output layer); its config
says `causal = False` and adds one token to the vocabulary, the mask token [MASK] (id = the tokenizer's vocab_size),
which stands for "a token you must guess here". It cannot write text left to right — there is no "next" token for a
model that has read the end — so instead it learns by filling blanks (training/masked.py) and is used to fill blanks
(`taller fill`) or, with a small head on top, to classify texts (`BertClassifier`, `taller train --task clasificar`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from taller.data.accents import centred, window_starts
from taller.models.kind import Kind, need
from taller.models.transformer import Transformer, TransformerConfig


@dataclass
class EncoderConfig(TransformerConfig):
    """What BERT and its classifier share: the Transformer's fields, the causal mask off, one extra token."""

    @property
    def causal(self) -> bool:
        return False  # every position reads the whole window

    @property
    def n_ids(self) -> int:
        return self.vocab_size + 1  # the tokenizer's tokens and [MASK]

    @property
    def mask_id(self) -> int:
        return self.vocab_size  # the id just past the tokenizer's


# What BERT's pretraining hides at once (training/masked.py): whole words (Google's whole-word masking, 2019),
# single tokens (the original BERT: in a character model, single characters) or spans of whole words (SpanBERT).
MASKINGS = ("words", "chars", "spans", "mixed")  # mixed: a coin per window, whole words or single characters


@dataclass
class BertConfig(EncoderConfig):
    """The [model] section of a BERT (masked-token pretraining)."""

    kind: str = "bert"
    mask_rate: float = (
        0.15  # share of positions hidden for the model to guess (of them: 80% [MASK], 10% random, 10% kept)
    )
    masking: str = "words"  # what is hidden at once (MASKINGS): whole words, single tokens, or spans of whole words

    def check(self, data) -> None:
        super().check(data)
        need(0.0 < self.mask_rate < 1.0, f"model.mask_rate={self.mask_rate} debe estar entre 0 y 1 (BERT usa 0.15).")
        need(
            self.masking in MASKINGS,
            f"model.masking={self.masking} no existe; elige {', '.join(MASKINGS)} "
            "(palabras enteras, caracteres sueltos, tramos de palabras o mixed: palabras o caracteres a suertes).",
        )


@dataclass
class ClassifierConfig(EncoderConfig):
    """The [model] section of a text classifier: a BERT encoder and a head that answers one label per text."""

    kind: str = "bert-clasificador"
    n_labels: int = 0  # filled in from the labelled lines
    init: str = ""  # folder of a pretrained BERT run whose encoder starts this one ("" = from scratch)
    encoder_lr: float = 1.0  # the encoder's learning rate, as a multiple of lr: a new head may learn faster than the
    #                          pretrained encoder under it (BertClassifier.lr_ratios)

    def check(self, data) -> None:
        super().check(data)
        need(
            self.n_labels == 0 or 2 <= self.n_labels <= 1000,
            f"model.n_labels={self.n_labels}: un clasificador necesita entre 2 y 1000 etiquetas.",
        )
        need(
            0.0 < self.encoder_lr <= 1.0,
            f"model.encoder_lr={self.encoder_lr} debe estar en (0, 1] (el codificador aprende a esa fracción del "
            "learning rate; 1 por defecto).",
        )

    def estimate_parameters(self) -> int:
        return super().estimate_parameters() + (self.d_model + 1) * max(2, self.n_labels)


class EncoderAndHead(nn.Module):
    """An encoder (the same Transformer as BERT, whose weights can come from a pretrained run) and a linear head
    with `outputs` scores: what a classifier and a tagger are made of."""

    def __init__(self, cfg: EncoderConfig, outputs: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = Transformer(cfg)  # named `encoder.*`: a BERT run's weights load into it tensor by tensor
        self.head = nn.Linear(cfg.d_model, outputs)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size


class BertClassifier(EncoderAndHead):
    """text (B, T) ──► encoder's states (B, T, C) ──► mean over its positions (B, C) ──► Linear ──► (B, labels)"""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__(cfg, max(2, cfg.n_labels))

    def forward(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids, keys (B, T) True where there is text (False: padding) -> label logits (B, L)."""
        if keys is None:
            keys = torch.ones_like(idx, dtype=torch.bool)
        states = self.encoder.features(idx, keys=keys)  # (B, T, C)
        weights = keys.to(states.dtype)[:, :, None]  # (B, T, 1)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, C) the mean of the text's states
        return self.head(pooled)  # (B, L)

    def lr_ratios(self) -> dict[int, float]:
        """The encoder learns at encoder_lr × lr, the head at lr (discriminative fine-tuning, ULMFiT 2018): the
        head starts from nothing, the encoder from what pretraining learnt (at 1, the default: both at lr)."""
        return {id(p): self.cfg.encoder_lr for p in self.encoder.parameters()}


@dataclass
class TaggerConfig(EncoderConfig):
    """The [model] section of an accent tagger («tildes»): a BERT encoder and a head of one mark per character."""

    kind: str = "bert-tildes"
    init: str = ""  # folder of a pretrained BERT run whose encoder starts this one ("" = from scratch)
    word_loss: float = 0.3  # weight of the choice among a word's training forms, beside each letter's mark (README)

    def check(self, data) -> None:
        super().check(data)
        need(
            0.0 <= self.word_loss <= 100.0,
            f"model.word_loss={self.word_loss} debe estar entre 0 (sólo las marcas de las letras) y 100.",
        )
        need(
            data.tokenizer == "char",
            f"data.tokenizer={data.tokenizer}: el etiquetador de tildes pone una marca por "
            "carácter y necesita caracteres (--set tokenizer=char).",
        )

    def estimate_parameters(self) -> int:
        return super().estimate_parameters() + (self.d_model + 1) * N_MARKS


N_MARKS = 3  # none, acute, diaeresis (taller/data/accents.py: NONE, ACUTE, DIAERESIS)


class BertTagger(EncoderAndHead):
    """A head that labels every position: which mark its character gets (a token-classification head, as for named
    entities).

    stripped text (B, T) ──► encoder's states (B, T, C) ──► Linear ──► (B, T, marks)
    """

    def __init__(self, cfg: TaggerConfig):
        super().__init__(cfg, N_MARKS)

    def forward(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> mark logits (B, T, N_MARKS)."""
        return self.head(self.encoder.features(idx, keys=keys))

    @torch.no_grad()
    def mark_log_probs(self, ids: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """The log-probability of every mark of every token of a text of any length, ids (N,) -> (N, N_MARKS).
        `allowed` (V, N_MARKS) says which marks each token can carry; the others get -inf (the rest share the
        probability). Windows of block_size overlap by half, and each position takes its answer from the window where
        it sits farthest from an edge."""
        N, T = len(ids), min(self.cfg.block_size, len(ids))
        starts = window_starts(N, T)
        windows = torch.stack([ids[s : s + T] for s in starts])  # (W, T)
        device = next(self.parameters()).device
        logits = torch.cat([self(windows[i : i + 64].to(device)).float().cpu() for i in range(0, len(windows), 64)])
        logp = logits.masked_fill(~allowed[windows], float("-inf")).log_softmax(-1)  # (W, T, N_MARKS)
        return centred(starts, logp, N)

    def marks(self, ids: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """The most probable allowed mark of every token, ids (N,) -> (N,)."""
        return self.mark_log_probs(ids, allowed).argmax(-1)


KIND = Kind(
    name="bert",
    title="BERT",
    config=BertConfig,
    build=Transformer,
    objective="masked",
    preset="bert",
    timed_preset="bert",
    language_model=False,
    fills=True,
    prepared_data=False,
    shows_attention=True,
    shows_embedding=True,
    score_head=True,
    tasks=(("clasificar", "bert-clasificador"), ("tildes", "bert-tildes")),
    starts_encoders=("t5-tildes", "t5-tareas"),
    refusal="{run} es un BERT: lee a los dos lados de un hueco y no escribe texto de izquierda a derecha; "
    'úsalo con `taller fill {run} --text "Más vale ___ que …"` o afínalo para clasificar '
    "(`taller train --model bert --task clasificar --init {run} --corpus etiquetado.tsv`).",
)

CLASSIFIER = Kind(
    name="bert-clasificador",
    title="clasificador BERT",
    config=ClassifierConfig,
    build=BertClassifier,
    objective="classify",
    preset="clasificador",
    timed_preset="clasificador",
    fine_tunes=True,
    language_model=False,
    slower_parts=True,
    classifies=True,
    distributed=False,
    prepared_data=False,
    refusal="{run} es un clasificador de textos: no escribe ni rellena texto; pregúntale con "
    '`taller classify {run} --text "…"`.',
)

TAGGER = Kind(
    name="bert-tildes",
    title="etiquetador de tildes BERT",
    config=TaggerConfig,
    build=BertTagger,
    objective="tildes",
    preset="tildes",
    timed_preset="tildes",
    fine_tunes=True,
    language_model=False,
    fixes_accents=True,
    distributed=False,
    prepared_data=False,
    refusal="{run} es un etiquetador de tildes: no escribe ni rellena texto; úsalo con "
    '`taller tildes {run} --text "el dijo que si"`.',
)
