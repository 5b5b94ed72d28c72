import json

import torch

import taller
from taller.config import Config
from taller.inspect.evolution import read_evolution
from taller.runs.folder import load_run
from taller.runs.metrics import read_metrics

from conftest import tiny_config


def train_losses(run_dir):
    return [(m["step"], m["train_loss"]) for m in read_metrics(run_dir) if "train_loss" in m]


def test_the_same_seed_gives_the_same_losses(tmp_path, corpus_file):
    cfg = dict(max_steps=20, log_every=1, dropout=0.1)
    a = train_losses(taller.train(tiny_config(corpus_file, **cfg), tmp_path / "a", progress=False).dir)
    b = train_losses(taller.train(tiny_config(corpus_file, **cfg), tmp_path / "b", progress=False).dir)
    c = train_losses(taller.train(tiny_config(corpus_file, seed=99, **cfg), tmp_path / "c", progress=False).dir)
    assert len(a) == 20 and a == b and a != c


def test_training_lowers_the_loss_and_records_metrics(trained_run):
    metrics = read_metrics(trained_run.dir)
    train = [m["train_loss"] for m in metrics if "train_loss" in m]
    assert train[-1] < train[0] - 0.5
    final = [m for m in metrics if m.get("final")]
    assert len(final) == 1 and abs(final[0]["val_bpc"] - final[0]["val_loss"] / 0.6931471805599453) < 1e-9
    state = json.loads((trained_run.dir / "state.json").read_text())
    assert state["step"] == 150 and state["val_loss"] == final[0]["val_loss"]


def test_a_saved_and_loaded_run_gives_identical_logits(trained_run):
    loaded = load_run(trained_run.dir)
    x = torch.randint(0, trained_run.tokenizer.vocab_size, (3, 16))
    trained_run.model.eval()
    assert torch.equal(trained_run.model(x), loaded.model(x))
    assert loaded.tokenizer.chars == trained_run.tokenizer.chars
    assert loaded.config == trained_run.config


def test_resume_reproduces_the_uninterrupted_run_step_for_step(tmp_path, corpus_file):
    settings = dict(log_every=1, dropout=0.1, epochs=3)
    full = train_losses(taller.train(tiny_config(corpus_file, max_steps=24, **settings), tmp_path / "full", progress=False).dir)
    taller.train(tiny_config(corpus_file, max_steps=13, **settings), tmp_path / "half", progress=False)
    cfg = Config.load(tmp_path / "half" / "config.toml")
    cfg.train.max_steps = 24
    resumed = train_losses(taller.train(cfg, tmp_path / "half", resume=True, progress=False).dir)
    assert len(full) == 24 and resumed == full
    # the weights' travel is measured from the same start after resuming (epoch_000.safetensors)
    full_evolution = read_evolution(tmp_path / "full")
    assert len(full_evolution) >= 3 and read_evolution(tmp_path / "half") == full_evolution


def test_max_time_bounds_training(tmp_path, corpus_file):
    run = taller.train(tiny_config(corpus_file, max_steps=0, max_time=1.5), tmp_path / "t", progress=False)
    assert 1.5 <= run.state["train_time"] < 3.0 and run.state["step"] > 0
