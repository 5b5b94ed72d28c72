"""The health panel: activations, dead and saturated units, gradients and update ratios, measured during training
(health.jsonl, health.png, report.html), and the Spanish notes when a layer is unhealthy on purpose."""

import json
import math
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from taller.config import Config
from taller.errors import TallerError
from taller.inspect.health import Checkup, notes, read_health
from taller.inspect.report import health_html
from taller.models import build_model
from taller.runs.folder import Run


def tiny_model(kind: str = "transformer", **settings):
    cfg = Config()
    cfg.set_kind(kind)
    for key, value in {"block_size": 16, "d_model": 32, "dropout": 0.0, **settings}.items():
        cfg.set(key, value)
    cfg.model.vocab_size = 30
    torch.manual_seed(0)
    return build_model(cfg.model)


def watched_step(model, warming_up: bool = True) -> dict:
    """One training step watched by a Checkup, as the loop does it; its health.jsonl line."""
    x = torch.randint(0, 30, (4, 16), generator=torch.Generator().manual_seed(1))
    checkup = Checkup(model, 0, warming_up=warming_up)
    checkup.start()
    loss = F.cross_entropy(model(x).reshape(-1, 30), x.reshape(-1))
    loss.backward()
    checkup.gradients()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    checkup.updates()
    return checkup.entry


def test_a_layer_with_dead_units_is_seen_and_said():
    model = tiny_model(n_layers=2, n_heads=2, d_ff=20)
    with torch.no_grad():  # 8 of the 20 units of the second feed-forward pushed far below GELU's bend: dead
        model.blocks[1].feed_forward.up.bias[:8] = -100.0
    entry = watched_step(model)
    layers = entry["activations"]
    assert [(a["layer"], a["name"], a["kind"]) for a in layers] == [
        (1, "blocks.0.feed_forward.bend", "GELU"),
        (2, "blocks.1.feed_forward.bend", "GELU"),
    ]
    assert layers[0]["dead"] == 0.0 and layers[1]["dead"] == pytest.approx(0.4)
    said = notes(entry)
    assert len(said) == 1 and said[0].startswith(
        "la capa 2 (blocks.1.feed_forward.bend, GELU) tiene el 40 % de unidades muertas"
    )
    assert not notes(watched_step(tiny_model(n_layers=2, n_heads=2, d_ff=20)))  # the same model, healthy: silence


def test_a_huge_initialisation_saturates_a_tanh_and_is_said():
    model = tiny_model("rnn")
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(10)  # ten times PyTorch's initialisation
    entry = watched_step(model)
    (layer,) = entry["activations"]
    assert layer["name"] == "rnn" and layer["saturated"] > 0.5
    assert any(n.startswith("la capa 1 (rnn, RNN) tiene el") and "saturados" in n for n in notes(entry))
    healthy = watched_step(tiny_model("rnn"))["activations"][0]
    assert healthy["saturated"] < 0.1


def test_gradients_and_update_ratios_of_every_matrix():
    model = tiny_model(n_layers=1, n_heads=2, d_ff=20)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.ndim == 2}
    entry = watched_step(model, warming_up=False)
    assert set(entry["gradients"]) == set(entry["updates"]) == set(before)  # matrices only, not biases or norms
    for name, p in model.named_parameters():
        if p.ndim == 2:
            assert entry["gradients"][name] == pytest.approx(float(p.grad.norm()), rel=1e-5)
            moved = float((p.detach() - before[name]).norm() / before[name].norm())
            assert entry["updates"][name] == pytest.approx(moved, rel=1e-4)
    entry["updates"]["output.weight"] = 0.5  # a matrix that changes by half in one step
    assert any("output.weight llega a 5e-1" in n and "baja el learning rate" in n for n in notes(entry))
    assert not any("output.weight" in n for n in notes({**entry, "warming_up": True}))  # not judged in warm-up
    barely = {"step": 9, "warming_up": False, "updates": {"output.weight": 2e-5}}  # too slow at the full rate …
    assert any("output.weight baja a 2e-5" in n and "sube el learning rate" in n for n in notes(barely))
    slowed = {
        **barely,
        "lr_ratios": {"output.weight": 0.1},
    }  # … but not for a matrix that learns at 0.1 × lr on purpose
    assert notes(slowed) == []
    slowed["updates"] = {"output.weight": 2e-6}  # below even a tenth of the usual range: still slow
    assert any("output.weight baja a 2e-6" in n for n in notes(slowed))


def test_a_slow_matrix_that_gets_no_gradient_is_not_told_to_raise_the_rate():
    # as a T5 classifier's decoder writing one-token answers: its self-attention's query and key get 1e-4 of the
    # typical gradient (measured), so they barely move whatever the rate
    entry = {
        "step": 9,
        "warming_up": False,
        "updates": {"decoder.query": 1e-5, "decoder.key": 2e-5, "blocks.up": 5e-3, "blocks.down": 5e-5},
        "gradients": {"decoder.query": 1e-6, "decoder.key": 2e-6, "blocks.up": 2e-2, "blocks.down": 1e-2},
    }
    said = notes(entry)
    (silent,) = [n for n in said if "decoder.query" in n]
    assert "decoder.key" in silent and "apenas reciben gradiente" in silent and "sube el learning rate" not in silent
    (slow,) = [n for n in said if "blocks.down" in n]  # a normal gradient and a small step: the rate is the cause
    assert "sube el learning rate" in slow and "decoder" not in slow


def test_a_matrix_outside_the_steps_graph_is_not_called_slow():
    model = tiny_model(n_layers=1, n_heads=2, d_ff=20)
    model.unused = torch.nn.Parameter(torch.ones(4, 4))  # as a pretrained BERT's letter head under a tagger's head
    entry = watched_step(model, warming_up=False)
    assert "unused" not in entry["gradients"] and "unused" not in entry["updates"]
    assert "embedding.weight" in entry["updates"] and not any("unused" in n for n in notes(entry))


def test_training_writes_health_and_the_report_shows_it(trained_run, tmp_path):
    entries = read_health(trained_run.dir)
    assert [e["step"] for e in entries] == [1, 101]  # every train.health_every = 100 steps, from the first
    n_layers = trained_run.config.model.n_layers
    for e in entries:
        assert [a["kind"] for a in e["activations"]] == ["GELU"] * n_layers
        assert all(math.isfinite(g) and g > 0 for g in e["gradients"].values())
        assert all(0 < r < 1 for r in e["updates"].values())
    assert entries[0]["warming_up"] and not entries[1]["warming_up"]
    assert (trained_run.dir / "health.png").stat().st_size > 10_000
    report = (trained_run.dir / "report.html").read_text(encoding="utf-8")
    assert "Salud de la red mientras aprende" in report and 'alt="salud de la red"' in report

    run = tmp_path / "enfermo"  # the same run with a last checkup that found dead units
    shutil.copytree(trained_run.dir, run)
    sick = {
        **entries[-1],
        "step": 150,
        "activations": [{**a, "dead": 0.4 if a["layer"] == 2 else 0.0} for a in entries[-1]["activations"]],
    }
    picture, checkups = run / "health.png", run / "health.jsonl"
    os.utime(picture, (1e9, 1e9))
    os.utime(checkups, (1e9 - 1, 1e9 - 1))  # drawn after its last checkup: the report does not draw it again
    copy = Run(run, trained_run.config, trained_run.tokenizer, trained_run.model, trained_run.state)
    health_html(copy)
    assert picture.stat().st_mtime == 1e9
    with open(checkups, "a") as f:  # a checkup added since (as a resumed training does): drawn again
        f.write(json.dumps(sick) + "\n")
    shown = health_html(copy)
    assert picture.stat().st_mtime > 1e9 and picture.stat().st_size > 10_000
    assert "En la última revisión (paso 150)" in shown
    assert "la capa 2 (blocks.1.feed_forward.bend, GELU) tiene el 40 % de unidades muertas" in shown


def test_health_every_is_a_train_key():
    cfg = Config()
    cfg.set("health_every", 0)  # no checkups
    assert cfg.train.health_every == 0
    cfg.set("health_every", -1)
    with pytest.raises(TallerError, match="health_every=-1 no puede ser negativo"):
        cfg.validate()
