"""The surprise map: the bits a run pays for each character add up to its own evaluation (bits/char × characters),
for a Transformer, an LSTM and an n-gram; the difference between two runs; the command line, the report and limits."""

import math
import shutil

import numpy as np
import pytest
from conftest import one_line_error, run_cli

import taller
from taller.config import Config
from taller.evaluate import LN2
from taller.files import MB
from taller.inspect.report import write_report
from taller.inspect.surprise import difference, known_text, spread, surprise, validation_text
from taller.runs.folder import load_run


@pytest.fixture(scope="module")
def ngram_run(trained_run, tmp_path_factory):
    """A 4-gram of the same text as the shared Transformer (counted in a moment)."""
    cfg = Config()
    cfg.set_kind("ngram")
    cfg.set("order", 4)
    cfg.set("samples", 0)
    cfg.data.corpus = trained_run.config.data.corpus
    out = tmp_path_factory.mktemp("ngram") / "ngram"
    taller.train(cfg, out, progress=False, log=lambda *a: None)
    return load_run(out)


@pytest.fixture
def transformer(trained_run, tmp_path):
    """A copy of the shared Transformer run, to write maps into."""
    shutil.copytree(trained_run.dir, tmp_path / "run")
    return load_run(tmp_path / "run")


@pytest.mark.parametrize("which", ["trained_run", "trained_lstm_run", "ngram_run"])
def test_the_bits_of_the_validation_text_add_up_to_the_runs_evaluation(which, request):
    run = request.getfixturevalue(which)
    text = validation_text(run)
    s = surprise(run, known_text(text, [run]))
    assert s.text == text and len(s.bits) == len(text)
    assert s.bits[0] is None and s.scored == len(text) - 1  # every character but the first, as the evaluation
    assert s.total == pytest.approx(run.state["val_bpc"] * s.scored, rel=1e-6)
    assert all(b >= 0 for b in s.bits[1:])


def test_a_token_shares_its_bits_with_the_characters_it_completes():
    nats = np.array([2.0, 1.0, 3.0]) * LN2  # 2, 1 and 3 bits for tokens 1, 2 and 3 (token 0 has no context)
    token_chars = np.array([1, 2, 0, 2])  # token 2 completes no character (half of «ñ»): its bit goes on
    assert spread(nats, token_chars, 5) == [None, 1.0, 1.0, 2.0, 2.0]


def test_explain_surprise_against_another_run(transformer, ngram_run, tmp_path, capsys):
    trained_run = transformer
    text = tmp_path / "texto.txt"
    text.write_text("No hay mal que por bien no venga.\nMás vale tarde que nunca.\n", encoding="utf-8")
    code, out, err = run_cli(
        ["explain", str(trained_run.dir), "--surprise", str(text), "--against", str(ngram_run.dir)], capsys
    )
    assert code == 0, err
    a, b = surprise(trained_run, text.read_text()), surprise(ngram_run, text.read_text())
    assert f"{a.total:.2f}".replace(".", ",") + " bits en 59 caracteres" in out
    assert f"{b.total:.2f}".replace(".", ",") + " bits en 59 caracteres" in out
    assert "Los puntos más sorprendentes" in out and f"Donde más gana {ngram_run.dir.name}" in out
    page = (trained_run.dir / "surprise.html").read_text(encoding="utf-8")
    assert f"Total: <b>{a.total:,.2f} bits</b>".replace(",", "_").replace(".", ",").replace("_", ".") in page
    assert page.count("' title='«") == len(text.read_text())  # one coloured span per character
    diff = (trained_run.dir / "surprise_diff.html").read_text(encoding="utf-8")
    assert "Donde más gana" in diff and (trained_run.dir / "surprise_diff.png").stat().st_size > 5_000
    d = difference(a, b)
    assert d[0] is None and all(math.isclose(x, p - q) for x, p, q in zip(d[1:], a.bits[1:], b.bits[1:]))


def test_the_report_shows_the_map_and_the_difference(transformer, ngram_run):
    page = write_report(transformer, against=ngram_run).read_text(encoding="utf-8")
    assert "Mapa de sorpresa (los primeros 2000 caracteres del texto de validación)" in page
    assert f"¿Dónde gana cada uno? run contra {ngram_run.dir.name}" in page


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--against", "{run}"], "úsalo con --surprise"),
        (["--surprise", "{tmp}/no-existe.txt"], "no existe el fichero"),
        (["--surprise", "{tmp}/grande.txt"], "ocupa 5 MB"),
        (["--surprise", "{tmp}/raro.txt"], "nunca vio"),
    ],
)
def test_surprise_mistakes_are_one_line(trained_run, tmp_path, capsys, args, fragment):
    with open(tmp_path / "grande.txt", "wb") as f:
        f.truncate(5 * MB)  # sparse: over the 4 MB limit without writing it
    (tmp_path / "raro.txt").write_text("No hay ☃ que valga", encoding="utf-8")
    args = [a.format(run=trained_run.dir, tmp=tmp_path) for a in args]
    code, _, err = run_cli(["explain", str(trained_run.dir), *args], capsys)
    assert fragment in one_line_error(code, err)
