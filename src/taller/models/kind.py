"""What a model kind is: its [model] section and one record that says how it is built, fitted and used.

Every kind (transformer, lstm, ngram, skipgram …) declares, in the file that holds the model:

    @dataclass
    class LSTMConfig(ModelConfig):          its [model] section: fields, defaults, checks
        kind: str = "lstm"
        d_model: int = 128
        def check(self, need): ...

    KIND = Kind(name="lstm", title="LSTM", config=LSTMConfig, build=LSTM, objective="next_token", …)

and taller/models/__init__.py collects them in one table. The rest of taller asks that table what a kind can do
(`kind.language_model`, `kind.resumable` …) and never compares a kind's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch.nn as nn

from taller.errors import TallerError
from taller.text import short


def need(ok: bool, msg: str) -> None:
    """One rule of a configuration: if it does not hold, say why in one line."""
    if not ok:
        raise TallerError(f"configuración imposible: {msg}")


BY_PASSES = -1.0  # model.dropout = -1, train.ema = -1: chosen from how many times the training will read its text
# The rule, measured (bench/README.md, "Regularising by passes"; bench/sizes.py): what overfits is not a text's size
# but how many times the budget reads it. Each row: (fewer expected passes than this, dropout, average of the weights).
# Read a few times there is little to memorise yet: the Quijote's first 1 M characters, read 2.2 times in 180 s,
# ended 0.009 bits/char from the 8-gram with neither, its best weights the last. Read ten times, the average alone: all
# the refranes in 180 s, 1.976 bits/char (12 times); with dropout 0.1 as well, 2.050 (on a CPU dropout takes attention
# off its fused kernel: 30% fewer steps). Read 18 times (the demo's 165 s), dropout 0.1 pays: 1.94 with, 2.30 without.
REGULARISE_BY_PASSES = (
    (4.0, 0.0, 0.0),
    (15.0, 0.0, 0.99),
    (40.0, 0.1, 0.99),
    (math.inf, 0.2, 0.99),  # a few hundred sayings, read a hundred times and more
)
# Before the first step the speed is not known yet: it is guessed from the model's size. A training step costs about
# 6 operations per parameter per token, and our slowest machine does about this many a second on our models: `base`
# (668,544 parameters) trained at 10,673 chars/s on the 2-core AMD EPYC with AVX2 (bench/sizes.py, 6 Dec 2026), i.e.
# 4.3e10. A faster machine reads the text more times than guessed.
OPERATIONS_PER_S = 4e10

# How a kind learns (Kind.objective): the gradient loop's objectives (training/loop.py OBJECTIVES), counting, a mix.
OBJECTIVES = ("next_token", "skipgram", "masked", "classify", "spans", "text_to_text", "tildes", "counts", "mix")


def by_passes(passes: float) -> tuple[float, float]:
    """(dropout, average) for a training that reads its text `passes` times: the first row whose limit is above."""
    return next((dropout, ema) for limit, dropout, ema in REGULARISE_BY_PASSES if passes < limit)


def guessed_tokens_per_s(cfg: ModelConfig) -> float:
    """Tokens a second a CPU trains this model on, guessed from its size before any step (OPERATIONS_PER_S)."""
    return OPERATIONS_PER_S / (6 * max(1, cfg.estimate_parameters()))


@dataclass
class ModelConfig:
    """The fields every [model] section has; each kind adds its own (see the model's file)."""

    kind: str = ""  # which model: the name of its Kind
    vocab_size: int = 0  # filled in from the tokenizer

    def check(self, data) -> None:
        """The kind's own rules, given the [data] section (e.g. the tokenizers it accepts)."""

    def fit_to_text(self, passes: float) -> str | None:
        """dropout = -1 (BY_PASSES): pick it for a training that reads its text `passes` times
        (REGULARISE_BY_PASSES); returns the Spanish words for what was picked, or None."""
        if not self.dropout_by_passes:
            return None
        self.dropout = by_passes(passes)[0]
        return f"dropout {short(self.dropout)}"

    @property
    def dropout_by_passes(self) -> bool:
        """dropout = -1: still to be chosen by the rule by passes (False for a kind without dropout)."""
        return getattr(self, "dropout", None) == BY_PASSES

    def estimate_parameters(self) -> int:
        """About how many parameters the model will have, before it is built (memory guard)."""
        return 0

    def estimate_activations(self, batch_size: int) -> int:
        """About how many numbers one training step of `batch_size` keeps for its backward pass (memory guard)."""
        return 0

    @property
    def context(self) -> int | None:
        """The longest context the model reads, in tokens (None: no limit)."""
        return None

    @property
    def training_window(self) -> int:
        """The windows it trains on, in tokens, even when it could read further (an LSTM's block_size); 0: none."""
        return 0

    @property
    def causal(self) -> bool:
        """Each position sees only the ones before it; an encoder (BERT, T5's) reads both sides."""
        return True

    def traceable(self) -> ModelConfig:
        """The same model as torch.onnx must trace it (a recurrent kind's readable Python loop → its fused path)."""
        return self


@dataclass(frozen=True)
class Kind:
    """Everything taller needs to know about one kind of model, declared once beside the model."""

    name: str  # what --model and config.toml call it
    title: str  # how Spanish messages call it: "Transformer", "LSTM", "n-grama", "skip-gram"
    config: type[ModelConfig]  # its [model] section
    build: Callable[[ModelConfig], nn.Module]  # config (vocab_size filled in) -> a fresh model
    objective: str  # how it learns: "next_token" or "skipgram" (the gradient loop), "counts" (counting), "mix"
    #                 (a table fitted over other runs' predictions: training/mixing.py)
    preset: str = "base"  # the preset `taller train --model NAME` starts from
    timed_preset: str = "base"  # the recipe for a fixed time budget: what `taller compare` trains
    language_model: bool = True  # reads and writes text: generate, probe, explain, report, serve, tokenize, compare
    word_vectors: bool = False  # its weights are word vectors: `taller embeddings`
    resumable: bool = True  # `--resume` continues it (a count model is refitted in seconds instead)
    distributed: bool = True  # torchrun can share its training between processes
    prepared_data: bool = True  # trains from a `taller prepare` folder without loading the text
    fills: bool = False  # reads both sides of a blank: `taller fill` (BERT)
    classifies: bool = False  # answers a label for a text: `taller classify`
    fixes_accents: bool = False  # puts the accents back on a text, one mark per character: `taller tildes`
    encoder_decoder: bool = False  # an encoder reads, a decoder writes the answer (T5): blanks of any length
    tasks: tuple[tuple[str, str], ...] = ()  # `--task NAME` -> the kind that learns it from this one's runs
    fine_tunes: bool = False  # starts from a pretrained run's weights, `--init RUN` (its config's `init`)
    starts_encoders: tuple[str, ...] = ()  # kinds whose encoder a run of this one can start (`--init`: a BERT for
    #                                       a T5's task), their decoder starting anew
    refusal: str = ""  # what commands for language models say about a run of this kind ({run} is the folder)
    exports: tuple[str, ...] = ()  # what `taller export` writes of it: "html" (a page that runs it), "onnx"
    # What its models show and offer, each a Protocol of models/protocols.py (PROTOCOLS) that they implement:
    shows_attention: bool = False  # attention_maps(idx): where each head looks (explain, serve)
    shows_embedding: bool = False  # embedding: nn.Embedding, a vector per token (embeddings.png)
    traces_state: bool = False  # trace(idx): a recurrent network's state (and gates) along a text
    count_table: bool = False  # table(): the whole model is one table of probabilities (a bigram)
    slower_parts: bool = False  # lr_ratios(): some parameters learn at a fraction of the rate (T5's encoder)
    score_head: bool = False  # output: the nn.Linear that writes the scores (kept out of Muon's matrices)
    keeps_reading: bool = False  # reads, read(ids, start): goes on counting what it reads (`score --adapt`)
    # and, from fields above: encoder_decoder → cross_attention_maps(src, tgt); objective "mix" → a Mixer.
    article: str = "un"  # its title's indefinite article: "una mezcla", "una RNN"

    def starts(self, kind: str) -> bool:
        """Whether a run of this kind can start a run of `kind` (`--init`): a task of its own, or an encoder."""
        return kind in dict(self.tasks).values() or kind in self.starts_encoders

    def __post_init__(self):
        if not self.language_model and not self.refusal:
            raise ValueError(f"the kind {self.name} is not a language model: it must say so to the user (refusal=…)")
        if self.fine_tunes != any(f.name == "init" for f in fields(self.config)):
            raise ValueError(f"the kind {self.name}: fine_tunes must say whether its config has `init` (--init RUN)")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"the kind {self.name} learns by objective={self.objective!r}: use one of "
                f"{', '.join(OBJECTIVES)} (a new one is added to OBJECTIVES and to training/loop.py)"
            )

    @property
    def a_title(self) -> str:
        """Its title with its article, for messages: "un n-grama", "una mezcla"."""
        return f"{self.article} {self.title}"

    @property
    def counted(self) -> bool:
        """Fitted by counting: no trained parameters, no gradient loop, tables that grow with the text."""
        return self.objective == "counts"

    @property
    def combines(self) -> bool:
        """Made of other runs (a mix): their models are loaded from their own folders, beside its own weights."""
        return self.objective == "mix"

    def refuse(self, run_dir) -> TallerError:
        return TallerError(self.refusal.format(run=run_dir))

    def task(self, name: str) -> str:
        """The kind that learns task `name` (e.g. "clasificar") on top of this kind's runs."""
        tasks = dict(self.tasks)
        if name not in tasks:
            offered = f"las suyas son {', '.join(tasks)}" if tasks else "no tiene ninguna"
            raise TallerError(
                f"--task {name}: {self.a_title} no aprende esa tarea ({offered}); usa --model bert --task clasificar."
            )
        return tasks[name]
