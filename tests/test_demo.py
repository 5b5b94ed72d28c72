"""`taller demo` end to end on the tests' small refranes (found by name through TALLER_DATA, as the real ones are) for a
few epochs: the same files whatever the machine's speed. The demo on the real refranes is `make demo`: its figure is
measured and quoted in the README, not asserted here (it takes minutes)."""

import json
import shutil
import signal
import sys
import types

import pytest
from conftest import MINI_REFRANES, one_line_error, run_cli

from taller.apps.cli import main

MINI_EPOCHS = 8  # the small file (4.7 kB) gives a few steps an epoch: enough of them to beat a uniform guess


def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    shutil.copy(MINI_REFRANES, tmp_path / "refranes.txt")
    monkeypatch.setenv("TALLER_DATA", str(tmp_path))
    epochs = MINI_EPOCHS
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", str(epochs), "--out", str(out)])
        sys.exit(0)
    assert e.value.code == 0
    stdout = capsys.readouterr().out
    refranes = [line.strip()[2:] for line in stdout.split("\n") if line.strip().startswith("• ")]
    assert len(refranes) == 5 and all(r.startswith("No hay ") for r in refranes)
    for name in [
        "parameters.txt",
        "table.txt",
        "loss.png",
        "samples.txt",
        "epoch_000.png",
        "model.safetensors",
        "report.html",
        "attention.png",
        "embeddings.png",
        "evolution.png",
    ]:
        assert (out / name).exists(), name
    assert str(out) in stdout
    said = "1 época" if epochs == 1 else f"{epochs} épocas"
    assert (
        stdout.split("\n")[0] == f"taller demo: entreno un Transformer de caracteres con los refranes durante {said}."
    )
    final = [m for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if m.get("final")]
    assert final[0]["epoch"] == epochs and final[0]["val_bpc"] < 5.0  # below a uniform guess over the ~60-100 chars


def test_the_demo_trains_by_the_clock_unless_told_epochs(monkeypatch, tmp_path, capsys):
    import taller.apps.cli.training as cli
    from taller.config import Config

    seen = []

    def fake_train(cfg, out, **kwargs):
        seen.append((cfg.train.max_time, cfg.train.epochs, cfg.data.corpus, str(out)))
        return types.SimpleNamespace(interrupted=signal.SIGINT)  # as after Ctrl+C: the demo stops there, exit 130

    monkeypatch.setattr(cli, "train", fake_train)  # where the demo looks it up (the CLI imports it at the top)
    epochs = Config.preset("base").train.epochs
    headline = "taller demo: entreno un Transformer de caracteres con los refranes durante "
    expected = [
        (
            ["demo"],
            (cli.DEMO_SECONDS, epochs),
            f"{cli.DEMO_SECONDS:g} s (unos 4 minutos con las evaluaciones y los dibujos).",
        ),
        (["demo", "--max-time", "30"], (30.0, epochs), "30 s."),
        (["demo", "--max-time", "2.5"], (2.5, epochs), "2.5 s."),
        (["demo", "--epochs", "2"], (0.0, 2), "2 épocas."),
        (["demo", "--epochs", "1"], (0.0, 1), "1 época."),
    ]
    for argv, budget, said in expected:
        seen.clear()
        with pytest.raises(SystemExit) as stopped:
            main(argv + ["--out", str(tmp_path / "d")])
        assert stopped.value.code == 130, argv
        assert seen == [(*budget, "refranes", str(tmp_path / "d"))], argv
        assert capsys.readouterr().out == headline + said + "\n", argv  # and nothing after an interrupted run


def test_the_demo_budget_options_are_checked(capsys):
    from taller.apps.cli.training import DEMO_SECONDS

    help_text = run_cli(["demo", "--help"], capsys)[1]
    assert f"por defecto {DEMO_SECONDS}" in " ".join(help_text.split())  # (argparse wraps the help)
    for argv in (
        ["--max-time", "0"],
        ["--max-time", "-3"],
        ["--max-time", "inf"],
        ["--epochs", "0"],
        ["--max-time", "30", "--epochs", "2"],
    ):  # one budget or the other, and a positive one
        code, _, err = run_cli(["demo", *argv], capsys)
        one_line_error(code, err)
