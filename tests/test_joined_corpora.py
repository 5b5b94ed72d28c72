"""Several texts as one corpus (`--corpus libro.txt+dichos.txt`): each split by its own rule, val reported per text."""

import json
from types import SimpleNamespace

import pytest
from conftest import PROVERBS, one_line_error, run_cli, tiny_config

import taller
from taller.config import Config
from taller.data.corpora import prepare_corpus
from taller.data.split import split_corpus

BOOK = " ".join(
    [
        "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que vivía un "
        "hidalgo de los de lanza en astillero, adarga antigua, rocín flaco y galgo corredor."
    ]
    * 30
)


@pytest.fixture
def texts(tmp_path):
    book, sayings = tmp_path / "libro.txt", tmp_path / "dichos.txt"
    book.write_text(BOOK + "\n", encoding="utf-8")  # one long line: prose, split by its tail
    sayings.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")  # lines: split by whole lines
    return SimpleNamespace(book=book, sayings=sayings, both=f"{book}+{sayings}")


def test_each_text_is_split_by_its_own_rule_and_val_knows_where_each_lies(texts):
    cfg = Config()
    cfg.data.corpus = texts.both
    corpus = prepare_corpus(cfg.data)
    assert corpus.name == "libro+dichos" and [p.lines for p in corpus.parts] == [False, True]
    split = split_corpus(corpus, cfg.data)
    (book, a, b), (sayings, c, d) = split.parts
    assert (book, sayings, a, b == c, d) == ("libro", "dichos", 0, True, len(split.val)) and split.kind == "tail+lines"
    assert split.val[a:b].strip() == BOOK[int(len(BOOK) * 0.9) :].strip()  # the book's ending
    val_lines = split.val[c:d].strip().split("\n")
    assert len(val_lines) == round(len(PROVERBS) * 3 * 0.1) and all(line in PROVERBS for line in val_lines)
    cut = int((len(BOOK) + 1) * 0.9)  # the file is BOOK and a newline; its tail is val
    assert split.train[: cut + 1] == BOOK[:cut] + "\n" and split.train.endswith("\n")


def test_a_run_on_two_texts_reports_val_for_each_one(texts, tmp_path, capsys):
    out = tmp_path / "ngram"
    code, printed, _ = run_cli(
        [
            "train",
            "--model",
            "ngram",
            "--corpus",
            texts.both,
            "--out",
            str(out),
            "--set",
            "order=4",
            "--set",
            "samples=0",
        ],
        capsys,
    )
    state = json.loads((out / "state.json").read_text())
    assert code == 0 and set(state["val_bpc_by_text"]) == {"libro", "dichos"}
    assert state["val_bpc_by_text"]["libro"] < state["val_bpc"] < state["val_bpc_by_text"]["dichos"]  # a repeated book
    assert "Validación por texto: libro " in printed and state["corpus"] == "libro+dichos"


def test_a_missing_text_in_the_list_is_refused_in_one_line(texts, tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line_error(
        *run_cli(
            ["train", "--model", "ngram", "--corpus", f"{texts.sayings}+{tmp_path}/no.txt", "--out", str(out)], capsys
        )[::2]
    )
    assert "no.txt" in line and not out.exists()
    line = one_line_error(
        *run_cli(["train", "--model", "ngram", "--corpus", f"{texts.sayings}+", "--out", str(out)], capsys)[::2]
    )
    assert "falta un texto" in line and not out.exists()


@pytest.mark.parametrize("kind,key", [("transformer", "val_bpc_by_text"), ("bert", "val_accuracy_by_text")])
def test_a_network_reports_val_for_each_text_too(texts, tmp_path, kind, key):
    cfg = tiny_config(texts.both, max_steps=2, samples=0)
    cfg.set_kind(kind)
    run = taller.train(cfg, tmp_path / kind, progress=False, log=lambda *a: None)
    scores = json.loads((run.dir / "state.json").read_text())[key]
    assert list(scores) == ["libro", "dichos"] and all(x > 0 for x in scores.values())
