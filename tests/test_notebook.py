"""The lesson's notebook runs from top to bottom (small budgets), so that it never rots."""

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "escribir-como-cervantes.ipynb"


def test_the_lesson_notebook_runs(quijote_corpora, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # A kernel spec for this very interpreter (the venv), whatever `python` on PATH is.
    spec = tmp_path / "jupyter" / "kernels" / "taller-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "taller",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("TALLER_DATA", str(quijote_corpora.folder))  # the real book (CI), else the tests' small one
    monkeypatch.setenv(
        "TALLER_PRESUPUESTO", "1"
    )  # seconds per model: the cells run; how well they learn is not tested here
    monkeypatch.setenv("TALLER_CARACTERES", "10000")  # a smaller slice of the Quijote: the same cells, less to read
    # (and less to compress: `compare` compresses each model's validation text, step by step)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="taller-test", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    # The lesson's 100.000 characters and its LSTM over their alphabet (the tests' small book has fewer characters).
    chars, parameters = ("48", "372.784") if quijote_corpora.real else ("38", "370.854")
    assert f"100.000 caracteres, {chars} símbolos distintos" in text
    assert f"{parameters} parámetros" in text and "bits/car en validación" in text
    for name in (
        "ngram",
        "lstm",
        "transformer",
        "lzma",
        "temperatura 1.2",
        "concesionario",
        "Sólo la última frase",
        "lee a los dos lados del hueco",
        "lee sólo lo anterior al hueco",
    ):
        assert name in text, name
    assert any(
        out.get("output_type") == "execute_result" and "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert len(list((tmp_path / "runs").glob("cervantes-*/comparacion/compare.csv"))) == 1
