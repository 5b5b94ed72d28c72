"""Time to loss: train for a budget of seconds (training steps only; evaluation is not counted) with the learning
rate scheduled over that budget, then score the whole validation split.

    python bench/time_to_loss.py --corpus quijote --budget 300 [--preset base] [--set key=value ...]
                                                                                    → one JSON line
"""

import argparse
import json
import tempfile
import time

from machine import cpu_info

from taller.config import Config
from taller.training.loop import train

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("--budget", type=float, default=300, help="seconds of training")
    p.add_argument("--preset", default=None, help="default: base")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    a = p.parse_args()
    preset = a.preset or "base"
    cfg = Config.preset(preset)
    cfg.data.corpus = a.corpus
    cfg.train.mix_slice = 0.0  # the Transformer alone, never mixed: it learns from the whole training text
    cfg.apply_overrides(a.set)
    cfg.train.max_time = a.budget
    cfg.train.samples, cfg.train.plot_every = 0, 0  # nothing beyond the loss
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = train(cfg, f"{out}/run", progress=False, log=lambda *_: None)
    if getattr(run, "interrupted", False):
        raise SystemExit("time_to_loss: interrupted before the budget was spent; no figure.")
    s = run.state
    print(
        json.dumps(
            {
                "bench": "time_to_loss",
                "corpus": a.corpus,
                "preset": preset,
                "overrides": a.set,
                "budget_s": a.budget,
                "train_s": s["train_time"],
                "steps": s["step"],
                "chars_per_s": s["chars_per_s"],
                "parameters": s["parameters"],
                "val_loss_nats": s["val_loss"],
                "val_bpc": s["val_bpc"],
                "tokenizer": cfg.data.tokenizer,
                "wall_s": time.perf_counter() - started,
                **cpu_info(),
            }
        )
    )
