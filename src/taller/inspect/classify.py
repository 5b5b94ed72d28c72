"""What a classifier answers: the probability of each label for a text (`taller classify`), and its confusion table."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from taller.data.corpora import clean_like
from taller.data.tokenizers import check_known
from taller.errors import TallerError
from taller.files import MB, atomic_write, load_json_object
from taller.models import kind_of
from taller.models.modes import evaluating
from taller.models.t5 import CLASSIFY_PREFIX, answers_of, label_scores

CONFUSION = "confusion.json"
SHOWN_LABELS = 12  # a wider confusion table is only written to CONFUSION
CONFUSION_LIMIT = 16 * MB  # 1,000 labels: a million counts of a few digits (about 6 MB)


def encode_text(run, text: str) -> list[int]:
    """A text as the classifier reads it: prepared like its training texts, cut to its window."""
    text = clean_like(text.strip(), run.config.data)
    check_known(run.tokenizer, text)  # never dropped silently: the answer would be for another text
    ids = run.tokenizer.encode(text, unknown="replace")[: run.config.model.block_size]
    if not ids:
        raise TallerError("--text está vacío (o no tiene ningún carácter que el modelo conozca): escribe una frase.")
    return ids


@torch.no_grad()
def classify(run, text: str) -> list[tuple[str, float]]:
    """(label, probability) for every label of the run, the most probable first."""
    labels = run.state.get("labels")
    if not isinstance(labels, list) or len(labels) != run.config.model.n_labels:
        raise TallerError(
            f"{run.dir}/state.json no dice las etiquetas del clasificador; la carpeta está dañada o el "
            "entrenamiento no llegó a su primer punto de control: vuelve a entrenar."
        )
    with evaluating(run.model):
        if kind_of(run.config).encoder_decoder:  # a T5: each label's probability as the answer it writes
            ids = run.tokenizer.encode(CLASSIFY_PREFIX, unknown="replace") + encode_text(run, text)
            x = torch.tensor([ids[: run.config.model.block_size]])
            logits = label_scores(
                run.model, x, torch.ones_like(x, dtype=torch.bool), *answers_of(run.tokenizer, labels, run.config.model)
            )[0]
        else:
            logits = run.model(torch.tensor([encode_text(run, text)])).float()[0]  # (L,)
        probs = torch.softmax(logits, dim=-1)
        return sorted(zip(map(str, labels), probs.tolist()), key=lambda lp: -lp[1])


def answer_table(answers: list[tuple[str, float]]) -> str:
    width = max(12, *(len(label) for label, _ in answers))
    return "\n".join(f"  {label:<{width}} {p:>7.1%}  {'█' * round(30 * p)}" for label, p in answers)


def confusion(predicted: torch.Tensor, truth: torch.Tensor, n_labels: int) -> list[list[int]]:
    """counts[real][predicted]."""
    counts = torch.zeros(n_labels, n_labels, dtype=torch.long)
    counts.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    return counts.tolist()


def write_confusion(run_dir: Path, labels: list[str], counts: list[list[int]]) -> None:
    """confusion.json: {"labels": [...], "counts": counts[real][predicted]}, beside state.json (which stays small)."""
    atomic_write(Path(run_dir) / CONFUSION, json.dumps({"labels": labels, "counts": counts}).encode("utf-8"))


def read_confusion(run_dir: Path) -> tuple[list[str], list[list[int]]]:
    """The labels and the confusion table of a finished classifier, read with their own bound."""
    value = load_json_object(
        Path(run_dir) / CONFUSION,
        CONFUSION_LIMIT,
        f"{Path(run_dir) / CONFUSION} no existe: el "
        "entrenamiento del clasificador no terminó; termínalo con `taller train --resume`.",
    )
    labels, counts = value.get("labels"), value.get("counts")
    if not isinstance(labels, list) or not isinstance(counts, list) or len(counts) != len(labels):
        raise TallerError(f"{Path(run_dir) / CONFUSION} no tiene una tabla de confusión; el fichero está dañado.")
    return labels, counts


def confusion_table(counts: list[list[int]], labels: list[str]) -> str:
    if len(labels) > SHOWN_LABELS:
        return (
            f"La tabla de confusión ({len(labels)} × {len(labels)} etiquetas) no cabe en la terminal: está en "
            f"{CONFUSION}."
        )
    width = max(10, *(len(label) for label in labels)) + 2
    lines = [f"{'real ↓  predicho →':<{width + 8}}" + "".join(f"{label:>{width}}" for label in labels)]
    for label, row in zip(labels, counts):
        lines.append(f"{label:<{width + 8}}" + "".join(f"{n:>{width}}" for n in row))
    return "\n".join(lines)
