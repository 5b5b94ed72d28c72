import json
import math

import pytest
import torch
from conftest import tiny_config, train_losses, use_fake_clock

import taller
from taller.config import Config
from taller.inspect.evolution import read_evolution
from taller.inspect.health import read_health
from taller.runs.checkpoint import load_tensors
from taller.runs.folder import load_run
from taller.runs.metrics import read_metrics
from taller.training.adapt import score_run
from taller.training.average import WeightAverage


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
    settings = dict(log_every=1, dropout=0.1, epochs=10, health_every=5)  # 10 passes: the rule adds the average
    full = train_losses(
        taller.train(tiny_config(corpus_file, max_steps=24, **settings), tmp_path / "full", progress=False).dir
    )
    taller.train(tiny_config(corpus_file, max_steps=13, **settings), tmp_path / "half", progress=False)
    cfg = Config.load(tmp_path / "half" / "config.toml")
    cfg.train.max_steps = 24
    resumed = train_losses(taller.train(cfg, tmp_path / "half", resume=True, progress=False).dir)
    assert len(full) == 24 and resumed == full
    # the weights' travel is measured from the same start after resuming (epoch_000.safetensors)
    full_evolution = read_evolution(tmp_path / "full")
    assert len(full_evolution) >= 3 and read_evolution(tmp_path / "half") == full_evolution
    # and the health checkups go on where they were, with the same numbers
    full_health = read_health(tmp_path / "full")
    assert [e["step"] for e in full_health] == [1, 6, 11, 16, 21] and read_health(tmp_path / "half") == full_health
    # the model kept (here the average of the weights: a small text) is the same, tensor for tensor
    assert cfg.train.ema == 0.99
    kept = [load_tensors(tmp_path / run / "model.safetensors")[0] for run in ("full", "half")]
    assert kept[0].keys() == kept[1].keys() and all(torch.equal(kept[0][k], kept[1][k]) for k in kept[0])


def test_the_average_of_the_weights_is_what_a_run_scores_and_keeps(tmp_path, corpus_file):
    """train.ema: after every step, average ← d·average + (1−d)·weights; the run's model is that average, and its
    last weights wait in optim.safetensors for a --resume."""
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, 0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model, step=0)  # early on the decay is smaller: (1 + 0) / (3 + 0) = 1/3
    assert torch.allclose(average.weights["weight"], start["weight"] / 3 + 2 * model.weight / 3)
    then = average.weights["weight"].clone()
    average.update(model, step=1000)  # later, the decay asked for
    assert torch.allclose(average.weights["weight"], 0.9 * then + 0.1 * model.weight)
    with average.in_place_of(model):
        assert torch.equal(model.weight, average.weights["weight"])
    assert torch.equal(model.weight, start["weight"] + 1.0)  # its own weights again after the block

    run = taller.train(tiny_config(corpus_file, max_steps=20, ema=0.9, keep_best=False), tmp_path / "r", progress=False)
    kept, _ = load_tensors(tmp_path / "r" / "model.safetensors")
    optim, _ = load_tensors(tmp_path / "r" / "optim.safetensors")
    assert all(torch.equal(kept[k], optim["average." + k]) for k in kept)  # the model kept is the average ...
    assert not all(torch.equal(kept[k], optim["last." + k]) for k in kept)  # ... not the last weights
    assert score_run(load_run(run.dir)).static.bpc == pytest.approx(
        run.state["val_bpc"], abs=1e-4
    )  # its score: the average's


def expected_lr(cfg, step: int, progress: float) -> float:
    """The schedule, written out independently: linear warm-up, then a cosine from lr to min_lr."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    return t.min_lr + (t.lr - t.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0))) / 2


@pytest.mark.parametrize("tick, max_time, steps", [(0.25, 2.0, 8), (1.0, 12.5, 13)])
def test_max_time_stops_at_the_first_step_that_reaches_it_and_the_lr_follows_the_clock(
    tmp_path, corpus_file, monkeypatch, tick, max_time, steps
):
    # Each step reads the clock at its start and at its end: with readings `tick` apart every step takes `tick`
    # seconds, whatever the speed of the machine. 8 × 0.25 s reach 2 s exactly; the 13th 1-s step crosses 12.5 s.
    use_fake_clock(monkeypatch, tick)
    cfg = tiny_config(corpus_file, max_steps=0, max_time=max_time, log_every=1, warmup_steps=2, samples=0, plot_every=0)
    run = taller.train(cfg, tmp_path / "t", progress=False)
    assert run.state["step"] == steps and run.state["train_time"] == steps * tick and run.state["finished"]
    logged = [m for m in read_metrics(run.dir) if "train_loss" in m]
    assert [m["step"] for m in logged] == list(range(1, steps + 1))
    assert [m["time"] for m in logged] == [tick * k for k in range(1, steps + 1)]
    # the learning rate of step k follows the clock: progress = seconds trained before it / max_time
    lrs = [m["lr"] for m in logged]
    assert lrs == pytest.approx([expected_lr(cfg, k, tick * k / max_time) for k in range(steps)], rel=1e-12, abs=0)
    assert lrs[1] == cfg.train.lr and all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # warm-up, then down
    assert cfg.train.min_lr < lrs[-1] < cfg.train.min_lr + 0.05 * (cfg.train.lr - cfg.train.min_lr)  # near the end
