"""Fitting a count model (the n-gram): one pass of counting instead of a gradient loop.

It writes the same run folder as training — config.toml, tokenizer.json, model.safetensors (the counts),
state.json, metrics.jsonl, parameters.txt (what was counted), samples.txt and table.txt — so that generate,
probe and compare read it like any other run. The val text is scored once, after fitting: every character but
the first, each after the (up to) n-1 characters before it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from taller._version import __version__
from taller.files import atomic_write
from taller.runs.checkpoint import save_checkpoint
from taller.models import build_model
from taller.runs.folder import Run
from taller.text import thousands

LN2 = math.log(2)


def fit_counts(cfg, out: Path, corpus, split, tokenizer, train_ids, val_ids, log=print) -> Run:
    cfg.save(out / "config.toml")
    tokenizer.save(out / "tokenizer.json")
    model = build_model(cfg.model)
    log(f"Modelo: {cfg.model.order}-gramas de caracteres · corpus {corpus.name}: {thousands(len(train_ids))} "
        f"caracteres de entrenamiento, {thousands(len(val_ids))} de validación")
    started = time.perf_counter()
    model.fit(train_ids)
    fit_time = time.perf_counter() - started
    val_loss = float(-model.log_probs(val_ids).mean())  # nats per character
    score_time = time.perf_counter() - started - fit_time
    final = {"step": 0, "epoch": 1, "val_loss": val_loss, "val_bpc": val_loss / LN2, "time": fit_time, "final": True}
    atomic_write(out / "metrics.jsonl", (json.dumps(final) + "\n").encode("utf-8"))
    state = {"step": 0, "epoch": 1, "train_time": fit_time, "best_val_loss": val_loss, "finished": True,
             "taller": __version__, "corpus": corpus.name, "split": split.kind, "line_corpus": corpus.lines,
             "parameters": 0, "counts": model.num_counts, "val_loss": val_loss, "val_bpc": val_loss / LN2,
             "chars_per_s": len(train_ids) / max(fit_time, 1e-9), "score_time": score_time}
    save_checkpoint(out, model.state_dict(), {}, {}, state)
    atomic_write(out / "parameters.txt", model.count_table().encode("utf-8"))
    run = Run(out, cfg, tokenizer, model.eval(), state)
    t = cfg.train
    if t.samples:
        run.write_samples(prompt=t.prompt, n=t.samples, seed=t.seed, max_chars=t.sample_chars, temperature=t.temperature)
    log(f"Validación: {val_loss:.4f} nats/carácter = {val_loss / LN2:.3f} bits/carácter "
        f"({thousands(model.num_counts)} cuentas; ajuste {fit_time:.1f} s, evaluación {score_time:.1f} s).")
    return run
