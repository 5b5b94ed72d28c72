"""Did the network learn? Its validation bits per character beside the corpus's counting baseline and its steps.

    baseline:  an 8-gram fitted by counting on the same training text, scored on the same validation text (about a
               second on a corpus of a few MB; models/ngram.py)
    verdict:   one Spanish line: too few steps, worse than the 8-gram (with the fix), or learnt

A network that ran a few hundred steps, or that ends worse than what counting reaches in a second, has not learnt
yet: the run says so, and report.html shows the same line on top.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import numpy as np

from taller.data.tokenizers import CharTokenizer
from taller.evaluate import LN2
from taller.models.ngram import NGram, NGramConfig
from taller.text import number

ORDER = 8  # the baseline's n: the n-gram preset's order
MIN_STEPS = 300  # fewer steps than this is too few to judge a network, unless it already beats the baseline
MARGIN = 0.02  # bits/char by which the network may trail the baseline and still count as level with it
BASELINE_CHARS = 20_000_000  # a longer training text is not counted (the baseline would take more than seconds)


def baseline_bpc(data, train_ids: np.ndarray) -> float | None:
    """The 8-gram's bits per character on the run's validation text, fitted on its training text (`train_ids`: the
    tokens the network reads). None for a prepared folder (texts on disk) or a text too long to count in seconds."""
    if data.split.kind == "prepared" or len(data.split.train) > BASELINE_CHARS:
        return None
    if data.tokenizer.kind == "char":
        train, val, vocab = np.asarray(train_ids), np.asarray(data.val_ids), data.tokenizer.vocab_size
    else:  # a word or BPE run: the same texts, counted as characters
        chars = CharTokenizer.from_text(data.split.train + data.split.val)
        train, val = (np.asarray(chars.encode(t), dtype=np.int64) for t in (data.split.train, data.split.val))
        vocab = chars.vocab_size
    if len(train) < ORDER or len(val) < 2:
        return None
    model = NGram(NGramConfig(order=ORDER, vocab_size=vocab)).fit(train)
    return float(-model.log_probs(val).mean()) / LN2


def verdict(bpc: float, baseline: float | None, steps: int, epochs: float) -> tuple[bool, str]:
    """(learnt, the line that says so): a network judged by its steps and by the 8-gram's figure."""
    beats = baseline is not None and bpc <= baseline + MARGIN
    versus = f"el 8-grama, que solo cuenta, llega a {number(baseline)}" if baseline is not None else ""
    if steps < MIN_STEPS and not beats:
        return False, (
            f"Veredicto: pocos pasos ({steps}, {number(epochs, 2)} épocas); la red apenas ha empezado a "
            f"aprender ({number(bpc)} bits/car{'; ' + versus if versus else ''}). Dale más tiempo "
            "(--max-time), cierra otros programas que usen la CPU, o prueba `--model ngram`."
        )
    if baseline is not None and not beats:
        return False, (
            f"Veredicto: la red ({number(bpc)} bits/car) no supera al 8-grama ({number(baseline)}) tras "
            f"{steps} pasos. Dale más tiempo (--max-time), cierra otros programas que usen la CPU, usa "
            "`--model ngram` o mezcla la red con un 8-grama (`--model mix --set runs=RED,NGRAMA`)."
        )
    if baseline is None:
        return True, f"Veredicto: {steps} pasos, {number(bpc)} bits/car (sin comparación con un 8-grama)."
    return True, (
        f"Veredicto: ha aprendido: {number(bpc)} bits/car, frente a {number(baseline)} del 8-grama, en {steps} pasos."
    )


def judge(bpc: float, data, train_ids, steps: int, epochs: float) -> dict:
    """What state.json keeps: the baseline's figure, the verdict and its line, and how long the baseline took."""
    started = time.perf_counter()
    baseline = baseline_bpc(data, train_ids)
    learnt, line = verdict(bpc, baseline, steps, epochs)
    return {"baseline_bpc": baseline, "learnt": learnt, "verdict": line, "baseline_time": time.perf_counter() - started}


def mix_command(run_dir: Path) -> str:
    """The one shell line that mixes a run with an 8-gram of the same text (its own config.toml: same text, same split,
    same tokens): the 8-gram is counted in seconds, then the mix's table is fitted on the slice the network left unread.
    """
    run = str(run_dir)
    ngram, mix = f"{run}-8grama", f"{run}-mezcla"
    q = shlex.quote
    return (
        f"taller train --config {q(str(run_dir / 'config.toml'))} --model ngram --out {q(ngram)} && "
        f"taller train --model mix --set {q(f'runs={run},{ngram}')} --out {q(mix)}"
    )


def safety_net(run_dir: Path, bpc: float, baseline: float | None) -> str | None:
    """When the network alone trails the 8-gram on its own split: the line that says so and how to mix them."""
    if baseline is None or bpc <= baseline + MARGIN:
        return None
    return (
        f"La red sola ({number(bpc)} bits/car) queda por detrás del 8-grama ({number(baseline)}) en este texto; "
        f"su mezcla suele ganar a los dos. Mézclalas con: {mix_command(run_dir)}"
    )
