"""Training processes for the crash tests, forked from a clean server (see test_robustness.py)."""

import os
import signal


def kill_at(dest_name: str, when: str, occurrence: int) -> None:
    """SIGKILL this process at a precise point of the checkpoint protocol: just before or after the
    `occurrence`-th rename onto a file called `dest_name`."""
    real_replace = os.replace
    seen = {"n": 0}

    def replace(src, dst):
        if os.path.basename(dst) == dest_name:
            seen["n"] += 1
            if seen["n"] == occurrence and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
            if seen["n"] == occurrence and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return
        real_replace(src, dst)

    os.replace = replace


def train(corpus: str, out: str, settings: dict, resume: bool, max_steps: int | None = None, kill: tuple | None = None):
    import torch

    torch.set_num_threads(1)
    from conftest import tiny_config

    from taller.config import Config
    from taller.training.loop import train as run_training

    if kill:
        kill_at(*kill)
    if resume:
        cfg = Config.load(os.path.join(out, "config.toml"))
    else:
        cfg = tiny_config(corpus, **settings)
    if max_steps is not None:
        cfg.train.max_steps = max_steps
    run_training(cfg, out, resume=resume, progress=False, log=lambda *a: None)


def cli(argv: list[str], kill: tuple | None = None):
    """`taller ARGV` in this process: its exit code is the process's."""
    import torch

    torch.set_num_threads(1)
    from taller.apps.cli import main

    if kill:
        kill_at(*kill)
    main(argv)
