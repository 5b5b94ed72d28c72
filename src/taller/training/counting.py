"""Fitting a count model (the n-gram, the bigram): one pass of counting instead of a gradient loop.

It writes the same run folder as training — config.toml, tokenizer.json, model.safetensors (the counts),
state.json, metrics.jsonl, parameters.txt (what was counted), samples.txt and table.txt — so that generate,
probe and compare read it like any other run. The val text is scored once, after fitting: every character but
the first, each after the (up to) n-1 characters before it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from taller.evaluate import LN2
from taller.files import atomic_write
from taller.models import build_model, kind_of
from taller.runs.checkpoint import save_checkpoint
from taller.runs.folder import Run, clear_unfinished_start, lock_run_dir, run_state
from taller.text import number, thousands
from taller.training.artefacts import write_samples
from taller.training.by_text import by_text_line, part_vals
from taller.training.count_labels import fit_labels
from taller.training.next_token import check_lengths, find_text_data


def fit_counts(cfg, out: Path, ctx, log=print) -> Run:
    """Count the training text, score val, and write the run folder; return the fitted run. A counting classifier
    counts labelled lines instead (count_labels.py)."""
    if kind_of(cfg).classifies:
        return fit_labels(cfg, out, log)
    data = find_text_data(cfg, out, ctx, resume=False)
    check_lengths(data)
    with lock_run_dir(out, resume=False):  # a second fit or training of the same folder is refused meanwhile
        clear_unfinished_start(out)
        return count(cfg, out, data, log)


def count(cfg, out: Path, data, log) -> Run:
    """Fit the counts and write the run folder (locked by the caller)."""
    cfg.save(out / "config.toml")
    data.tokenizer.save(out / "tokenizer.json")
    model = build_model(cfg.model)
    log(
        f"Modelo: {model.describe()} · corpus {data.corpus.name}: {thousands(len(data.train_ids))} "
        f"caracteres de entrenamiento, {thousands(len(data.val_ids))} de validación"
    )
    started = time.perf_counter()
    model.fit(data.train_ids)
    fit_time = time.perf_counter() - started
    val_loss = float(-model.log_probs(data.val_ids).mean())  # nats per character
    by_text = {name: float(-model.log_probs(ids).mean()) / LN2 for name, ids, _ in part_vals(data)}
    score_time = time.perf_counter() - started - fit_time
    final = {"step": 0, "epoch": 1, "val_loss": val_loss, "val_bpc": val_loss / LN2, "time": fit_time, "final": True}
    atomic_write(out / "metrics.jsonl", (json.dumps(final) + "\n").encode("utf-8"))
    state = run_state(
        step=0,
        epoch=1,
        train_time=fit_time,
        finished=True,
        corpus=data.corpus,
        split=data.split,
        parameters=0,
        best_val_loss=val_loss,
        counts=model.num_counts,
        val_loss=val_loss,
        val_bpc=val_loss / LN2,
        chars_per_s=len(data.train_ids) / max(fit_time, 1e-9),
        score_time=score_time,
        **({"val_bpc_by_text": by_text} if by_text else {}),
    )
    save_checkpoint(out, model.state_dict(), {}, {}, state)
    atomic_write(out / "parameters.txt", model.count_table(data.tokenizer).encode("utf-8"))
    run = Run(out, cfg, data.tokenizer, model.eval(), state)
    if cfg.train.samples:
        write_samples(run, cfg.train)
    log(
        f"Validación: {number(val_loss, 4)} nats/carácter = {number(val_loss / LN2, 3)} bits/carácter "
        f"({thousands(model.num_counts)} cuentas; ajuste {number(fit_time, 1)} s, "
        f"evaluación {number(score_time, 1)} s)."
    )
    if by_text:
        log(by_text_line(by_text, "bits/carácter"))
    return run
