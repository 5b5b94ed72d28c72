import os
from pathlib import Path

import pytest
import torch

import taller
from taller.config import Config

torch.set_num_threads(min(2, os.cpu_count() or 1))

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


def shared_corpus(name: str) -> Path | None:
    data = os.environ.get("TALLER_DATA")
    path = Path(data) / f"{name}.txt" if data else None
    return path if path and path.exists() else None


class NoAttention(torch.nn.Module):
    """An attention-free model (as an LSTM will be): the same interface, no `attention_maps`, no `embedding`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    block_size = property(lambda self: self.inner.block_size)

    def forward(self, idx):
        return self.inner(idx)

    def start(self, idx):
        return self.inner.start(idx)

    def step(self, idx, state):
        return self.inner.step(idx, state)

    def state_length(self, state):
        return self.inner.state_length(state)


def without_attention(path):
    from taller.runs.folder import load_run

    run = load_run(path)
    run.model = NoAttention(run.model)
    return run
