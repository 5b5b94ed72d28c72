"""Run folders written by taller 0.1.0 (tests/fixtures/run-0.1.0) still load, generate and resume, with the same
text and the same numbers as the code that wrote them."""

import json
import shutil
from pathlib import Path

import pytest

from taller.apps.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A copy of the fixture (resuming writes into it), with the current folder where its corpus is."""
    copy = tmp_path / "runs"
    shutil.copytree(FIXTURE, copy)
    monkeypatch.chdir(copy)
    return copy


def greedy(capsys, run: Path) -> str:
    main(["generate", str(run), "--prompt", "No hay ", "--greedy", "--max-chars", "30"])
    return capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("kind", ["transformer", "lstm", "ngram"])
def test_old_run_generates_what_it_generated(runs, capsys, kind):
    assert greedy(capsys, runs / kind) == EXPECTED["greedy"][kind]


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_old_run_resumes_exactly(runs, capsys, kind):
    main(["train", "--out", kind, "--resume", "--steps", "30", "--quiet"])
    state = json.loads((runs / kind / "state.json").read_text(encoding="utf-8"))
    assert state["step"] == 30
    assert state["val_loss"] == pytest.approx(EXPECTED["resumed_to_30"][kind]["val_loss"], rel=1e-6)
    capsys.readouterr()
    assert greedy(capsys, runs / kind) == EXPECTED["resumed_to_30"][kind]["greedy"]


def test_old_skipgram_answers(runs, capsys):
    main(["embeddings", "skipgram", "--near", "que", "--k", "3"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[1] for row in rows] == EXPECTED["near_que"]
