"""Two CPU processes under torchrun (gloo) take the same steps as one process with the doubled batch."""

import os
import subprocess
import sys

import pytest
from conftest import PROVERBS, tiny_config, train_losses

import taller
from taller.runs.checkpoint import load_tensors, read_state
from taller.runs.metrics import read_metrics

SETTINGS = dict(dropout=0.0, log_every=1, samples=1, plot_every=0)  # no dropout: its masks differ per rank
# The two runs differ only in how the gradient average is rounded (DDP sums the ranks' gradients, then divides):
# measured at most ~4e-7 apart over these steps.
TOLERANCE = 1e-5


def torchrun(cwd, *args):
    """`torchrun --standalone --nproc_per_node 2 -m taller train …`, through the venv's Python (no PATH needed)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "taller",
        "train",
        "--device",
        "cpu",
        "--quiet",
        *args,
    ]
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_match_one_process_with_the_same_global_batch_and_resume(tmp_path):
    (tmp_path / "dichos.txt").write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    tiny_config(tmp_path / "dichos.txt", batch_size=4, **SETTINGS).save(tmp_path / "tiny.toml")  # per process
    first = torchrun(tmp_path, "--config", "tiny.toml", "--out", "ddp", "--steps", "20")
    assert first.stdout.count("Resultados en ddp/") == 1  # rank 0 speaks, rank 1 is silent
    # Only rank 0 wrote, and only inside its run folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "dichos.txt", "tiny.toml"]
    assert not [p for p in (tmp_path / "ddp").iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no leftovers
    torchrun(tmp_path, "--out", "ddp", "--resume", "--steps", "40")  # both ranks read rank 0's checkpoint

    one = taller.train(
        tiny_config(tmp_path / "dichos.txt", batch_size=8, max_steps=40, **SETTINGS), tmp_path / "one", progress=False
    )
    ddp, single = train_losses(tmp_path / "ddp"), train_losses(one.dir)
    assert [s for s, _ in ddp] == [s for s, _ in single] == list(range(1, 41))
    assert max(abs(a - b) for (_, a), (_, b) in zip(ddp[:20], single[:20])) < TOLERANCE, "2 procesos ≠ 1 proceso"
    assert max(abs(a - b) for (_, a), (_, b) in zip(ddp[20:], single[20:])) < TOLERANCE, "la continuación se desvía"
    # Validation is scored on the same windows by the same weights: the same numbers (each epoch's, and the final
    # one at step 40; the ddp run also keeps the final score of its first part, at step 20).
    val = lambda d: [(m["step"], m["val_loss"]) for m in read_metrics(d) if "val_loss" in m and m["step"] != 20]  # noqa: E731
    assert [s for s, _ in val(tmp_path / "ddp")] == [s for s, _ in val(one.dir)] and len(val(one.dir)) > 2
    assert max(abs(a - b) for (_, a), (_, b) in zip(val(tmp_path / "ddp"), val(one.dir))) < TOLERANCE
    # The checkpoint keeps each rank's random state (dropout), for the next --resume.
    state = read_state(tmp_path / "ddp")
    tensors, _ = load_tensors(tmp_path / "ddp" / "optim.safetensors")
    assert state["step"] == 40 and {"rng.torch.rank0", "rng.torch.rank1"} <= set(tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "dichos.txt", "one", "tiny.toml"]


@pytest.mark.parametrize("kind", ["bert", "t5"])
def test_bert_and_t5_hide_the_same_blanks_in_two_processes_as_in_one(tmp_path, kind):
    """Every rank hides the blanks (BERT) or spans (T5) of the whole global batch with the shared generator and
    trains on its block; the loss is the mean over the global batch's blanks, however unevenly they fall."""
    (tmp_path / "dichos.txt").write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    cfg = tiny_config(tmp_path / "dichos.txt", batch_size=4, max_steps=8, **SETTINGS)
    cfg.set_kind(kind)
    cfg.save(tmp_path / "tiny.toml")
    torchrun(tmp_path, "--config", "tiny.toml", "--out", "ddp")
    cfg = tiny_config(tmp_path / "dichos.txt", batch_size=8, max_steps=8, **SETTINGS)
    cfg.set_kind(kind)
    one = taller.train(cfg, tmp_path / "one", progress=False)
    ddp, single = train_losses(tmp_path / "ddp"), train_losses(one.dir)
    assert [s for s, _ in ddp] == [s for s, _ in single] == list(range(1, 9))
    assert max(abs(a - b) for (_, a), (_, b) in zip(ddp, single)) < TOLERANCE, "2 procesos ≠ 1 proceso"
    assert read_state(tmp_path / "ddp")["val_accuracy"] == pytest.approx(one.state["val_accuracy"], abs=1e-6)
