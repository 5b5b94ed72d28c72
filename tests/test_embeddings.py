"""The skip-gram (taller/embeddings.py) and `taller embeddings`: on a small text with planted structure."""

import json
import math
import random
import sys

import pytest
import torch
from conftest import one_line_error, run_cli

from taller.apps.cli import main
from taller.inspect.words import WordVectors
from taller.models.skipgram import WordVocab, words_of
from taller.training.skipgram import keep_probability, skipgram_pairs

FILLER = (
    "la casa del monte tiene un patio grande donde juegan los niños con una pelota roja mientras "
    "su abuela lee cartas viejas junto al fuego y el viento sopla fuerte sobre las tejas"
).split()
# Planted: «gato» and «minino» live in exactly the same company; so do «perro» and «chucho». Nothing else does.
TEMPLATES = [
    "el {} come pescado fresco",
    "mi {} duerme sobre cojines",
    "aquel {} maúlla cada noche",
    "el {} ladra al cartero",
    "mi {} roe huesos grandes",
    "aquel {} mueve la cola",
]
PLANTED = {
    0: ("gato", "minino"),
    1: ("gato", "minino"),
    2: ("gato", "minino"),
    3: ("perro", "chucho"),
    4: ("perro", "chucho"),
    5: ("perro", "chucho"),
}


def planted_text(sentences: int = 1500, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        if rng.random() < 0.5:
            i = rng.randrange(len(TEMPLATES))
            lines.append(TEMPLATES[i].format(rng.choice(PLANTED[i])) + ".")
        else:
            lines.append(" ".join(rng.choice(FILLER) for _ in range(6)) + ".")
    return "\n".join(lines) + "\n"


TINY = [
    "--set",
    "d_model=16",
    "--set",
    "window=2",
    "--set",
    "min_count=2",
    "--set",
    "subsample=0",
    "--set",
    "batch_size=512",
    "--set",
    "lr=0.03",
    "--set",
    "log_every=5",
]


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("skipgram")
    corpus = root / "granja.txt"
    corpus.write_text(planted_text(), encoding="utf-8")
    out = root / "sg"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                "--corpus",
                str(corpus),
                "--model",
                "skipgram",
                "--epochs",
                "3",
                "--out",
                str(out),
                "--quiet",
                *TINY,
            ]
        )
        sys.exit(0)
    assert e.value.code == 0
    return out, corpus


def test_training_writes_a_run_folder_and_lowers_the_val_loss(sg_run):
    out, _ = sg_run
    for name in (
        "config.toml",
        "vocab.json",
        "model.safetensors",
        "optim.safetensors",
        "state.json",
        "metrics.jsonl",
        "loss.png",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [m["val_loss"] for m in metrics if "val_loss" in m]
    assert val[0] == pytest.approx(6 * math.log(2), abs=1e-4)  # context vectors start at zero: σ(0) for 1 + 5 pairs
    assert val[-1] < val[0] - 1.0
    assert metrics[-1]["final"] and metrics[-1]["epoch"] == 3
    state = json.loads((out / "state.json").read_text())
    assert state["finished"] and state["kind"] == "skipgram" and state["pairs_per_s"] > 0
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["words"][0] in FILLER + ["el", "mi", "aquel"] and "gato" in vocab["words"]


def test_the_planted_neighbour_comes_first(sg_run, capsys):
    out, _ = sg_run
    for word, partner in (("gato", "minino"), ("chucho", "perro")):
        code, stdout, _ = run_cli(["embeddings", str(out), "--near", word.upper(), "--k", "3"], capsys)
        assert code == 0
        rows = [line.split() for line in stdout.splitlines()[2:]]
        assert rows[0][:2] == ["1", partner], stdout


def test_unknown_words_are_listed_in_one_line(sg_run, capsys):
    out, _ = sg_run
    code, _, err = run_cli(["vectores", str(out), "--analogy", "rey", "gato", "reina"], capsys)
    line = one_line_error(code, err)
    assert "«rey»" in line and "«reina»" in line and "«gato»" not in line


def test_the_plot_is_written(sg_run, capsys):
    out, _ = sg_run
    code, stdout, _ = run_cli(["embeddings", str(out), "--plot", "gato", "minino", "perro", "chucho", "casa"], capsys)
    assert code == 0 and "words.png" in stdout
    assert (out / "words.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "{run}", "--prompt", "el "],
        ["probe", "{run}", "--context", "el", "--candidates", "gato", "perro"],
        ["explain", "{run}"],
        ["report", "{run}"],
        ["tokenize", "{run}", "--text", "el gato"],
    ],
)
def test_other_commands_refuse_a_skipgram_run(sg_run, capsys, args):
    out, _ = sg_run
    code, _, err = run_cli([a.format(run=out) for a in args], capsys)
    assert "skip-gram" in one_line_error(code, err)


def test_the_server_lists_it_as_not_for_this_page_and_answers_4xx(sg_run):
    from fastapi.testclient import TestClient

    from taller.apps.web.app import create_app

    out, _ = sg_run
    client = TestClient(create_app(out.parent), base_url="http://localhost")  # the server answers loopback names only
    (listed,) = client.get("/api/runs").json()["runs"]
    assert listed["kind"] == "skipgram" and "taller embeddings" in listed["error"]  # the page shows why it can't open
    r = client.post("/api/predict", json={"run": out.name, "text": "el "})
    assert r.status_code == 400 and "skip-gram" in r.json()["error"]


def test_a_character_run_has_no_word_vectors(sg_run, capsys, tmp_path):
    _, corpus = sg_run
    chars = tmp_path / "ngram"
    assert (
        run_cli(["train", "--corpus", str(corpus), "--model", "ngram", "--out", str(chars), "--quiet"], capsys)[0] == 0
    )
    code, _, err = run_cli(["embeddings", str(chars), "--near", "gato"], capsys)
    assert "no un skip-gram" in one_line_error(code, err)


def test_a_corrupt_vocabulary_is_refused(sg_run, capsys, tmp_path):
    import shutil

    out, _ = sg_run
    for bad, fragment in (
        ("{ roto", "no es JSON válido"),
        (json.dumps({"type": "words", "words": ["a", "a"], "counts": [3, 3]}), "no es un vocabulario"),
    ):
        copy = tmp_path / f"copia{len(bad)}"
        shutil.copytree(out, copy)
        (copy / "vocab.json").write_text(bad, encoding="utf-8")
        code, _, err = run_cli(["embeddings", str(copy), "--near", "gato"], capsys)
        assert fragment in one_line_error(code, err)


def test_resume_continues_where_it_stopped(sg_run, tmp_path, capsys):
    _, corpus = sg_run
    common = ["train", "--corpus", str(corpus), "--model", "skipgram", "--epochs", "1", "--quiet", *TINY]
    assert run_cli(common + ["--out", str(tmp_path / "whole")], capsys)[0] == 0
    assert run_cli(common + ["--out", str(tmp_path / "cut"), "--steps", "7"], capsys)[0] == 0
    assert json.loads((tmp_path / "cut" / "state.json").read_text())["step"] == 7
    code, _, _ = run_cli(
        ["train", "--out", str(tmp_path / "cut"), "--resume", "--quiet", "--set", "max_steps=0"], capsys
    )
    assert code == 0
    whole, cut = (WordVectors.load(tmp_path / name).unit for name in ("whole", "cut"))
    # The same pairs, negatives and optimizer state: the same vectors (up to rounding: Adam's step count comes back
    # as a tensor, and its bias correction is computed in another precision).
    assert (whole - cut).abs().max() < 1e-5


# --- the pieces, by hand ----------------------------------------------------------------------------------------


def test_words_pairs_and_subsampling():
    assert words_of("¿Qué dice, Sancho? ¡Doña Rodríguez, 3 veces!") == [
        "qué",
        "dice",
        "sancho",
        "doña",
        "rodríguez",
        "veces",
    ]
    ids = torch.arange(6)
    pairs = skipgram_pairs(ids, torch.ones(6), window=1, g=torch.Generator().manual_seed(0))
    expected = {(i, i + 1) for i in range(5)} | {(i + 1, i) for i in range(5)}
    assert sorted(map(tuple, pairs.tolist())) == sorted(expected)  # window 1: each neighbour once, both ways
    keep = keep_probability(torch.tensor([10_000, 10]), subsample=1e-3)
    assert keep[0] < 0.05 and keep[1] == 1.0  # the frequent word is thinned, the rare one always kept


def test_analogy_arithmetic_on_hand_set_vectors():
    words = ["hombre", "mujer", "rey", "reina", "perro"]
    vectors = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [0, 0, -1]])
    wv = WordVectors(WordVocab(words, [5] * 5), vectors)
    scores = wv.analogy_scores("rey", "hombre", "mujer")  # rey − hombre + mujer
    best = wv.ranked(scores, exclude=["rey", "hombre", "mujer"], k=2)
    assert [r.word for r in best] == ["reina", "perro"]
    v = torch.tensor([1 / 2**0.5 - 1, 1, 1 / 2**0.5])
    assert best[0].similarity == pytest.approx(float(v @ torch.tensor([0, 1, 1.0]) / (v.norm() * 2**0.5)), abs=1e-6)
    assert wv.rank_of(scores, "perro", ["rey", "hombre", "mujer"])[:2] == (2, 2)

    from taller.inspect.words import expectation

    assert "1.ª de 2" in expectation(wv, scores, "reina", ["rey", "hombre", "mujer"], k=1, corpus_words=0)
    honest = expectation(wv, scores, "perro", ["rey", "hombre", "mujer"], k=1, corpus_words=380_000)
    assert "2.ª de 2" in honest and "NO es la primera" in honest and "380.000" in honest
