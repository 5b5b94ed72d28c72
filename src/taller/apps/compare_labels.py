"""`taller compare --task clasificar`: several classifiers on the same labelled lines and the same held-out ones.

    taller compare --task clasificar --models ngram,bert,t5 --max-time 300
    taller compare --task clasificar --models ngram,bert=runs/bert,t5=runs/t5     (BERT, T5 afinados desde sus runs)

Each model learns the task its own way — the n-gram counts each label's lines (models/counted_labels.py), BERT
learns a head on its encoder, T5 writes the label as text — on the same training lines (data.val_fraction and
data.split_seed are the same for all), and each is scored on the same held-out lines: its accuracy and its confusion
table, side by side. `MODEL=RUN` starts that model from a pretrained run (--init).
"""

from __future__ import annotations

from pathlib import Path

from taller.config import Config
from taller.data.labelled import BUILTIN_TASK
from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect.classify import confusion_table, read_confusion
from taller.models import kind_named, task_kind
from taller.runs.folder import check_run_dir, create_run_dir
from taller.text import number, thousands
from taller.training.loop import train

TASK = "clasificar"


def label_config(spec: str, corpus: str, max_time: float, overrides) -> Config:
    """The configuration of one classifier of the comparison: MODEL or MODEL=PRETRAINED_RUN."""
    model, _, init = spec.partition("=")
    kind = kind_named(task_kind(TASK, model.strip()))
    cfg = Config.preset(kind.timed_preset)
    cfg.set_kind(kind.name)
    cfg.data.corpus, cfg.train.max_time = corpus, max_time
    cfg.apply_overrides(list(overrides), skip_other_kinds=True)
    if init:
        if not kind.fine_tunes:
            raise TallerError(f"--models: {spec}: {kind.a_title} no empieza desde otra ejecución; quita «={init}».")
        cfg.model.init = init.strip()
    return cfg.validate()


def compare_labels(
    corpus: str | None,
    models: list[str],
    max_time: float,
    out: Path,
    *,
    overrides=(),
    progress: bool = False,
    log=print,
    threads: int = 0,
) -> str:
    """Train each classifier, then the table: accuracy on the held-out lines and each one's confusion table."""
    if not models or len({m.partition("=")[0] for m in models}) != len(models):
        raise TallerError("--models necesita una lista de modelos distintos, p. ej. --models ngram,bert,t5.")
    corpus = corpus or BUILTIN_TASK
    configs = [label_config(m, corpus, max_time, overrides) for m in models]  # every mistake said before training
    check_run_dir(out, resume=False)
    create_run_dir(out)
    results = []
    for spec, cfg in zip(models, configs):
        name = spec.partition("=")[0].strip()
        log(f"\n== {name}: {kind_named(cfg.model.kind).title}, {number(max_time, 0)} s como máximo ==")
        run = train(cfg, out / name, progress=progress, log=log, threads=threads)
        labels, counts = read_confusion(run.dir)
        right, total = sum(counts[i][i] for i in range(len(labels))), sum(map(sum, counts))
        results.append((name, kind_named(cfg.model.kind).title, right, total, labels, counts))
    table = results_table(results, corpus)
    atomic_write(out / "compare.md", (table + "\n").encode("utf-8"))
    return table


def results_table(results: list, corpus: str) -> str:
    total = results[0][3]
    lines = [
        f"«{corpus}»: {thousands(total)} textos de validación, los mismos para todos",
        "",
        f"  {'modelo':<12} {'tipo':<28} {'acierta':>9}",
    ]
    lines += [
        f"  {name:<12} {title:<28} {number(100 * right / max(1, n), 1):>7} %" for name, title, right, n, _, _ in results
    ]
    for name, _, _, _, labels, counts in results:
        lines += ["", f"{name}:", confusion_table(counts, labels)]
    return "\n".join(lines)
