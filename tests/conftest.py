import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch

import taller
from taller.config import Config

THREADS = min(2, os.cpu_count() or 1)
torch.set_num_threads(THREADS)

PROVERBS = [
    "No hay mal que por bien no venga.",
    "No hay peor sordo que el que no quiere oír.",
    "No hay rosa sin espinas.",
    "Más vale tarde que nunca.",
    "Más vale pájaro en mano que ciento volando.",
    "A quien madruga, Dios le ayuda.",
    "Perro ladrador, poco mordedor.",
    "En casa de herrero, cuchillo de palo.",
    "Dime con quién andas y te diré quién eres.",
    "El que no llora no mama.",
    "Camarón que se duerme se lo lleva la corriente.",
    "Ojos que no ven, corazón que no siente.",
]


@pytest.fixture(autouse=True)
def no_downloads(tmp_path_factory, monkeypatch):
    """Tests never touch the network or the user's cache."""
    monkeypatch.setenv("TALLER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch):
    """Runs compared step for step compute with the same threads: not fitted to the machine's load, which changes
    from one test to the next (tests/test_threads.py checks the fitting itself)."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(THREADS))


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "dichos.txt"
    path.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    return path


def tiny_config(corpus: Path | str, **overrides) -> Config:
    cfg = Config()
    cfg.data.corpus = str(corpus)
    settings = dict(block_size=16, d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.0, batch_size=8,
                    lr=3e-3, min_lr=3e-4, warmup_steps=5, max_steps=30, epochs=1000, eval_chars=200,
                    log_every=5, plot_every=0, samples=2, prompt="No hay ")
    settings.update(overrides)
    for key, value in settings.items():
        cfg.set(key, value)
    return cfg


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One small run shared by the tests that only read a run folder."""
    root = tmp_path_factory.mktemp("run")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    return taller.train(tiny_config(corpus, max_steps=150), root / "run", progress=False)


@pytest.fixture(scope="session")
def trained_lstm_run(tmp_path_factory):
    """A real tiny LSTM (no attention, a character embedding), trained through the command line for 20 short epochs
    (160 steps, under a second): about 2.4 bits per character, so its predictions depend on what it reads."""
    from taller.apps.cli import main
    from taller.runs.folder import load_run

    root = tmp_path_factory.mktemp("lstm")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    out = root / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", "--corpus", str(corpus), "--preset", "lstm", "--model", "lstm", "--epochs", "20", "--seed", "5",
              "--out", str(out), "--quiet", "--set", "block_size=16", "--set", "d_embed=16", "--set", "d_model=32",
              "--set", "n_layers=1", "--set", "batch_size=8", "--set", "warmup_steps=5", "--set", "eval_chars=200",
              "--set", "samples=2", "--set", "prompt=No hay ", "--set", "lr=1e-2", "--set", "plot_every=0",
              "--set", "ema=0"])  # its own last weights, not their average: sharper, so what it reads shows
        sys.exit(0)
    assert e.value.code == 0
    return load_run(out)


@pytest.fixture(scope="session")
def mix_run(trained_run):
    """A mix of the shared tiny Transformer and a 4-gram of the same text (fitted in a second)."""
    root = trained_run.dir.parent
    ngram = Config.preset("ngram")
    ngram.data, ngram.model.order, ngram.train.samples = dataclasses.replace(trained_run.config.data), 4, 0
    taller.train(ngram, root / "ngram", progress=False, log=lambda *a: None)
    mix = Config.preset("mix")
    mix.model.runs, mix.train.samples, mix.model.fit_steps = f"{trained_run.dir},{root / 'ngram'}", 0, 100
    taller.train(mix, root / "mix", progress=False, log=lambda *a: None)
    from taller.runs.folder import load_run

    return load_run(root / "mix")


def run_cli(args, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `taller ARGS`, run in this process."""
    from taller.apps.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
        sys.exit(0)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def one_line_error(code, err) -> str:
    """A user's mistake: exit code 2 and one Spanish line starting "error: ", never a traceback. Returns the line."""
    assert code == 2, err
    lines = [line for line in err.strip().split("\n") if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def shared_corpus(name: str) -> Path | None:
    data = os.environ.get("TALLER_DATA")
    path = Path(data) / f"{name}.txt" if data else None
    return path if path and path.exists() else None
