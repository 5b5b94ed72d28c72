"""The counting classifier (`--model ngram --task clasificar`): one n-gram per label, naive Bayes."""

import json

import pytest
from conftest import PROVERBS, one_line_error, run_cli

from taller.models import task_kind

BOOK = [
    "En un lugar de la Mancha vivía un hidalgo.",
    "Don Quijote tomó la lanza y salió al campo.",
    "Sancho pidió agua porque tenía sed.",
    "El cura y el barbero quemaron los libros.",
]


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    root = tmp_path_factory.mktemp("counted")
    tsv = root / "etiquetado.tsv"
    tsv.write_text(
        "".join(f"refrán\t{p}\nCervantes\t{BOOK[i % len(BOOK)]}\n" for i, p in enumerate(PROVERBS * 4)),
        encoding="utf-8",
    )
    return root / "run", tsv


def test_it_fits_labels_by_counting_and_answers_with_bayes(counted, capsys):
    out, tsv = counted
    code, printed, _ = run_cli(
        [
            "train",
            "--model",
            "ngram",
            "--task",
            "clasificar",
            "--corpus",
            str(tsv),
            "--out",
            str(out),
            "--set",
            "order=3",
        ],
        capsys,
    )
    state = json.loads((out / "state.json").read_text())
    assert code == 0 and state["labels"] == ["Cervantes", "refrán"] and state["val_accuracy"] == 1.0
    confusion = json.loads((out / "confusion.json").read_text())["counts"]
    assert sum(map(sum, confusion)) == state["val_texts"] and confusion[0][1] == confusion[1][0] == 0
    assert "acierta el 100,0 %" in printed and "real ↓" in printed
    code, printed, _ = run_cli(["classify", str(out), "--text", "Más vale tarde que nunca."], capsys)
    assert code == 0 and printed.split("\n")[1].split()[0] == "refrán"
    line = one_line_error(*run_cli(["generate", str(out)], capsys)[::2])
    assert "clasificador de n-gramas" in line and "taller classify" in line


def test_a_network_still_learns_the_task_when_no_model_is_named():
    assert task_kind("clasificar") == "bert-clasificador" and task_kind("clasificar", "ngram") == "ngram-clasificador"


def test_compare_puts_classifiers_side_by_side_on_the_same_held_out_lines(counted, tmp_path, capsys):
    _, tsv = counted
    out = tmp_path / "cmp"
    code, printed, _ = run_cli(
        [
            "compare",
            "--task",
            "clasificar",
            "--corpus",
            str(tsv),
            "--models",
            "ngram,bert",
            "--max-time",
            "1",
            "--set",
            "max_steps=3",
            "--set",
            "block_size=16",
            "--set",
            "d_model=32",
            "--set",
            "n_layers=1",
            "--set",
            "order=3",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    rows = [line.split() for line in printed.split("\n") if line.startswith(("  ngram ", "  bert "))]
    assert code == 0 and [r[0] for r in rows] == ["ngram", "bert"] and rows[0][-2] == "100,0"
    table = printed[printed.index("textos de validación, los mismos") :]  # after each training's own log
    assert table.count("real ↓") == 2 and (out / "compare.md").read_text(encoding="utf-8").strip() in printed
    assert (out / "compare.md").exists() and (out / "ngram" / "confusion.json").exists()
    line = one_line_error(
        *run_cli(
            [
                "compare",
                "--task",
                "clasificar",
                "--corpus",
                str(tsv),
                "--models",
                "lstm",
                "--out",
                str(tmp_path / "no"),
            ],
            capsys,
        )[::2]
    )
    assert "no aprende esa tarea" in line and not (tmp_path / "no").exists()
