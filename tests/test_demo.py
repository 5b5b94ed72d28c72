"""`taller demo` on the real refranes (from TALLER_DATA), cut to one epoch: the same files whatever the machine's speed."""

import json
import sys

import pytest

from taller.apps.cli import main

from conftest import shared_corpus


@pytest.mark.skipif(shared_corpus("refranes") is None, reason="TALLER_DATA no tiene refranes.txt")
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", "1", "--out", str(out)])
        sys.exit(0)
    assert e.value.code == 0
    stdout = capsys.readouterr().out
    refranes = [line.strip()[2:] for line in stdout.split("\n") if line.strip().startswith("• ")]
    assert len(refranes) == 5 and all(r.startswith("No hay ") for r in refranes)
    for name in ["parameters.txt", "table.txt", "loss.png", "samples.txt", "epoch_000.png", "model.safetensors",
                 "report.html", "attention.png", "embeddings.png", "evolution.png"]:
        assert (out / name).exists(), name
    assert str(out) in stdout
    assert "durante 1 época." in stdout and "3 minutos" not in stdout
    final = [m for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if m.get("final")]
    assert final[0]["epoch"] == 1 and final[0]["val_bpc"] < 5.0  # one epoch: below a uniform guess over ~100 chars

def test_the_demo_trains_by_the_clock_unless_told_epochs(monkeypatch, tmp_path):
    from taller.apps.cli import DEMO_SECONDS

    train_module = sys.modules["taller.training.loop"]  # `taller.train` is also the function the package exports

    seen = []

    def fake_train(cfg, out, **kwargs):
        seen.append((cfg.train.max_time, cfg.train.epochs))
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(train_module, "train", fake_train)
    for argv in (["demo"], ["demo", "--max-time", "30"], ["demo", "--epochs", "2"]):
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            main(argv + ["--out", str(tmp_path / "d")])
    assert seen == [(DEMO_SECONDS, 24), (30.0, 24), (0.0, 2)] and DEMO_SECONDS <= 180
