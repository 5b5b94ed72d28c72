"""Fitting the counting classifier (models/counted_labels.py): each label's texts counted by its own n-gram.

The same labelled lines and the same held-out share as a BERT classifier (training/classify.py: data.val_fraction,
data.split_seed), so that their accuracies are on the same texts; the run folder has what `taller classify` and
`taller compare --task clasificar` read: config.toml, tokenizer.json, the counts, state.json (its labels) and
confusion.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from taller.data.corpora import Corpus
from taller.data.labelled import load_labelled
from taller.data.split import Split
from taller.data.tokenizers import build_tokenizer
from taller.files import atomic_write
from taller.inspect.classify import confusion, confusion_table, write_confusion
from taller.models import build_model
from taller.runs.checkpoint import save_checkpoint
from taller.runs.folder import Run, clear_unfinished_start, lock_run_dir, run_state
from taller.text import number, thousands


def fit_labels(cfg, out: Path, log=print) -> Run:
    """Count each label's training texts, score the held-out ones, and write the run folder."""
    m, d = cfg.model, load_labelled(cfg.data.corpus)
    train, val = d.split(cfg.data.val_fraction, cfg.data.split_seed)
    tokenizer = build_tokenizer(cfg.data, Split("\n".join(d.texts[i] for i in train) + "\n", "", "lines"))
    m.vocab_size, m.n_labels, m.line_end = tokenizer.vocab_size, len(d.names), tokenizer.encode("\n")[0]
    cfg.validate()
    ids = [tokenizer.encode(t, unknown="replace")[: m.block_size] for t in d.texts]
    with lock_run_dir(out, resume=False):
        clear_unfinished_start(out)
        started = time.perf_counter()
        model = build_model(m).fit([ids[i] for i in train], [d.labels[i] for i in train])
        fit_time = time.perf_counter() - started
        predicted = torch.stack([model(torch.tensor([ids[i]]))[0] for i in val]).argmax(-1)  # (N,)
        truth = torch.tensor([d.labels[i] for i in val])
        accuracy = float((predicted == truth).float().mean())
        counts = confusion(predicted, truth, len(d.names))
        cfg.save(out / "config.toml")
        tokenizer.save(out / "tokenizer.json")
        final = {"step": 0, "epoch": 1, "val_accuracy": accuracy, "time": fit_time, "final": True}
        atomic_write(out / "metrics.jsonl", (json.dumps(final) + "\n").encode("utf-8"))
        state = run_state(
            step=0,
            epoch=1,
            train_time=fit_time,
            finished=True,
            corpus=Corpus(d.name, "", d.source, True),
            split=Split("", "", "lines"),
            parameters=0,
            labels=d.names,
            train_texts=len(train),
            val_texts=len(val),
            val_accuracy=accuracy,
        )
        save_checkpoint(out, model.state_dict(), {}, {}, state)
        write_confusion(out, d.names, counts)
    log(
        f"Clasificador de {m.order}-gramas · {d.name}: {thousands(len(train))} textos de entrenamiento, "
        f"{thousands(len(val))} de validación"
    )
    log(
        f"Validación: acierta el {number(100 * accuracy, 1)} % de {thousands(len(val))} textos "
        f"(ajuste {number(fit_time, 1)} s).\n"
        f"{confusion_table(counts, d.names)}"
    )
    log(f'Prueba: taller classify {out} --text "Quien mucho abarca, poco aprieta."')
    return Run(out, cfg, tokenizer, model, state)
