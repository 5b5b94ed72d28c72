"""Every kind through every command: a language model works with explain, report, serve, generate, --resume and
compare (test_lesson_cli.py races them all), or the command refuses it in one Spanish line that says why (a count
model is refitted, not resumed; word vectors predict no text: test_embeddings.py shows the other commands)."""

import json
import sys

import pytest
from conftest import PROVERBS, one_line_error, run_cli
from fastapi.testclient import TestClient

from taller.apps.cli import main
from taller.apps.web.app import create_app
from taller.models import KINDS

TINY = {  # a second or so each: the count models as they are, the RNN for a few steps of a tiny network
    "bigram": [],
    "ngram": ["--order", "3"],
    "rnn": [
        "--steps",
        "4",
        "--epochs",
        "50",
        "--set",
        "block_size=8",
        "--set",
        "d_model=16",
        "--set",
        "batch_size=8",
        "--set",
        "eval_chars=200",
        "--set",
        "plot_every=0",
        "--set",
        "samples=1",
    ],
}


# the two count models above, mixed (no --corpus: theirs); never the rnn, which the test resumes (a mix refuses a
# part that changed after it was fitted)
MIX = ["--set", "runs={runs}/bigram,{runs}/ngram", "--set", "fit_steps=20"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/ with one tiny run of each kind in TINY, trained through the command line, and a mix of two of them."""
    root = tmp_path_factory.mktemp("kinds")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    for kind, options in [*TINY.items(), ("mix", [a.format(runs=root / "runs") for a in MIX])]:
        source = [] if kind == "mix" else ["--corpus", str(corpus)]
        with pytest.raises(SystemExit) as e:
            main(["train", *source, "--model", kind, "--quiet", "--out", str(root / "runs" / kind), *options])
            sys.exit(0)
        assert e.value.code == 0, kind
    return root / "runs"


@pytest.mark.parametrize("kind", [*TINY, "mix"])
def test_a_language_kind_goes_through_every_command(runs, kind, capsys):
    run = runs / kind
    code, out, _ = run_cli(["explain", str(run), "--text", "No hay ", "--temperature", "0.5", "1"], capsys)
    assert code == 0 and (run / "memory.png").exists() and (run / "temperature.png").exists()
    code, out, _ = run_cli(["explain", str(run), "--surprise", "--against", str(runs / "ngram")], capsys)
    assert code == 0 and f"{kind} en el texto de validación" in out and (run / "surprise_diff.html").exists()
    code, out, _ = run_cli(["report", str(run), "--against", str(runs / "bigram")], capsys)
    page = (run / "report.html").read_text(encoding="utf-8")
    assert code == 0 and "Probabilidades de una generación" in page and "bigram" in page
    code, out, _ = run_cli(
        ["generate", str(run), "--prompt", "No ", "--stop", ".", "--seed", "0", "--temperature", "0.7", "--show-probs"],
        capsys,
    )
    assert code == 0 and "modelo → muestreo" in out and out.split("\n")[-2].startswith("No ")

    client = TestClient(create_app(runs), base_url="http://127.0.0.1")
    listed = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed[kind]["kind"] == kind and "error" not in listed[kind]
    body = {"run": kind, "text": "No hay ", "temperature": 0.5}
    bars = client.post("/api/predict", json=body).json()
    assert len(bars["bars"]) == 10 and sum(b["sampled"] for b in bars["bars"]) + bars["rest_sampled"] == pytest.approx(
        1
    )
    assert client.post("/api/sample", json={**body, "mode": "line"}).json()["text"].startswith("No hay ")
    assert "note" in client.post("/api/attention", json=body).json()  # no attention: a note, not an error
    for against in ("", "mix"):
        reply = client.post(
            "/api/surprise", json={"run": kind, "text": "No hay mal que por bien no venga.", "against": against}
        )
        assert reply.status_code == 200 and len(reply.json()["bits"]) == 33, reply.text

    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--quiet", "--steps", "6"], capsys)
    if KINDS[kind].resumable:
        assert code == 0 and json.loads((run / "state.json").read_text(encoding="utf-8"))["step"] == 6
    else:  # a count model is fitted again in seconds: it says so
        line = one_line_error(code, err)
        assert KINDS[kind].title in line and "sin --resume" in line


def test_compare_refuses_word_vectors_in_one_line(runs, capsys, tmp_path):
    """(compare races bigram and rnn with the other kinds in test_lesson_cli.py.)"""
    line = one_line_error(
        *run_cli(
            [
                "compare",
                "--corpus",
                str(runs.parent / "dichos.txt"),
                "--models",
                "bigram,skipgram",
                "--out",
                str(tmp_path / "x"),
            ],
            capsys,
        )[::2]
    )
    assert "skip-gram, no un modelo de lenguaje" in line and not (tmp_path / "x").exists()
