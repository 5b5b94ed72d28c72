"""`taller explain` and `taller report`: the pictures, the self-contained page, and models without attention."""

import re
import shutil

import pytest
from conftest import run_cli, tiny_config

import taller
from taller.inspect.evolution import read_evolution
from taller.inspect.inside import NO_ATTENTION, NO_EMBEDDING, explain_run
from taller.runs.folder import load_run


def copy_without(run, path, pictures):
    """A copy of a trained run without the pictures train drew: the commands under test must draw them again."""
    shutil.copytree(run.dir, path)
    for name in pictures + ("report.html",):
        (path / name).unlink(missing_ok=True)  # (memory.png: the end of a training leaves it to `taller report`)
    return path


@pytest.fixture
def run_dir(trained_run, tmp_path):
    return copy_without(
        trained_run, tmp_path / "run", ("attention.png", "embeddings.png", "evolution.png", "memory.png")
    )


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_draws_attention_embeddings_and_evolution(run_dir, capsys):
    code, out, _ = run_cli(["explain", str(run_dir), "--text", "No hay mal que"], capsys)
    assert code == 0
    for name in ("attention.png", "embeddings.png", "evolution.png", "memory.png"):
        assert is_png(run_dir / name) and name in out


def test_explain_refuses_characters_the_model_never_saw(run_dir, capsys):
    code, _, err = run_cli(["explain", str(run_dir), "--text", "No hay €"], capsys)
    assert code == 2 and err.count("\n") == 1 and "'€'" in err
    assert not (run_dir / "attention.png").exists()


def test_the_weights_move_away_from_the_start_and_every_tensor_is_followed(trained_run):
    entries = read_evolution(trained_run.dir)
    names = {n for n, _ in trained_run.model.named_parameters()}
    epochs, steps = [e["epoch"] for e in entries], [e["step"] for e in entries]
    assert epochs[:-1] == list(range(len(entries) - 1)) and len(entries) >= 3  # each epoch's end, and where it ended
    assert steps == sorted(set(steps)) and steps[-1] == trained_run.state["step"]
    assert set(entries[0]["change"]) == names and all(v == 0 for v in entries[0]["change"].values())
    assert entries[-1]["change"]["embedding.weight"] > entries[1]["change"]["embedding.weight"] > 0


def test_report_is_one_self_contained_page(run_dir, capsys):
    code, out, _ = run_cli(["report", str(run_dir)], capsys)
    assert code == 0 and "report.html" in out
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for title in (
        "Curvas de pérdida",
        "Los pesos a lo largo del entrenamiento",
        "Muestras",
        "Probabilidades de una generación",
        "Atención",
        "Embeddings de los caracteres",
    ):
        assert f"<h2>{title}" in page, title
    assert "<summary>La configuración completa</summary>" in page and "<summary>Todos los parámetros" in page
    sources = re.findall(r"""(?:src|href)=['"]([^'"]*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page
    run = load_run(run_dir)
    assert all(f">{name}<" in page for name, _ in run.model.named_parameters())
    for line in (run_dir / "samples.txt").read_text(encoding="utf-8").splitlines():
        assert line.replace("'", "&#x27;") in page


@pytest.fixture
def lstm_dir(trained_lstm_run, tmp_path):
    return copy_without(
        trained_lstm_run, tmp_path / "lstm", ("embeddings.png", "evolution.png", "memory.png", "recurrent.png")
    )


def test_an_lstm_gets_a_note_for_attention_and_pictures_of_the_rest(lstm_dir, capsys):
    assert load_run(lstm_dir).config.model.kind == "lstm" and not (lstm_dir / "attention.png").exists()
    code, out, _ = run_cli(["explain", str(lstm_dir), "--text", "No hay mal que"], capsys)
    assert code == 0 and NO_ATTENTION in out  # the Spanish note, not a traceback
    assert not (lstm_dir / "attention.png").exists()
    for name in ("embeddings.png", "evolution.png", "memory.png", "recurrent.png"):  # embeddings, epochs, memory, gates
        assert is_png(lstm_dir / name) and name in out
    results = explain_run(load_run(lstm_dir), "No hay")
    assert results == {
        "attention": NO_ATTENTION,
        "embeddings": lstm_dir / "embeddings.png",
        "evolution": lstm_dir / "evolution.png",
        "memory": lstm_dir / "memory.png",
        "recurrent": lstm_dir / "recurrent.png",
    }
    assert [e["epoch"] for e in read_evolution(lstm_dir)] == list(range(21))


def test_the_report_of_an_lstm_has_the_note_and_no_attention_picture(lstm_dir, capsys):
    code, _, _ = run_cli(["report", str(lstm_dir)], capsys)
    assert code == 0
    page = (lstm_dir / "report.html").read_text(encoding="utf-8")
    assert NO_ATTENTION.split(":")[0] in page and NO_EMBEDDING.split(" de ")[0] not in page
    for title in (
        "Probabilidades de una generación",
        "Embeddings de los caracteres",
        "Los pesos a lo largo del entrenamiento",
    ):
        assert f"<h2>{title}" in page, title
    assert all(f">{name}<" in page for name, _ in load_run(lstm_dir).model.named_parameters())
    assert "lstm.weight_hh_l0" in page


def test_report_false_leaves_the_page_to_taller_report(corpus_file, tmp_path, capsys):
    """train.report = false: no report.html at the end of a training (nor the memory curve); `taller report` writes
    both whenever asked."""
    run = taller.train(tiny_config(corpus_file, max_steps=5, samples=1), tmp_path / "r", progress=False)
    assert run.config.train.report is False and not (run.dir / "report.html").exists()
    code, out, _ = run_cli(["report", str(run.dir)], capsys)
    assert code == 0 and (run.dir / "report.html").is_file() and is_png(run.dir / "memory.png")
