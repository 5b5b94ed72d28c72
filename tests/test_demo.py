"""`taller demo` on the real refranes (from TALLER_DATA), cut to a few seconds."""

import sys

import pytest

from taller.cli import main

from conftest import shared_corpus


@pytest.mark.skipif(shared_corpus("refranes") is None, reason="TALLER_DATA no tiene refranes.txt")
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "--max-time", "6", "--out", str(out)])
        sys.exit(0)
    assert e.value.code == 0
    stdout = capsys.readouterr().out
    refranes = [line.strip()[2:] for line in stdout.split("\n") if line.strip().startswith("• ")]
    assert len(refranes) == 5 and all(r.startswith("No hay ") for r in refranes)
    for name in ["parameters.txt", "table.txt", "loss.png", "samples.txt", "epoch_000.png", "model.safetensors",
                 "report.html", "attention.png", "embeddings.png", "evolution.png"]:
        assert (out / name).exists(), name
    assert str(out) in stdout
