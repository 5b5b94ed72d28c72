"""A race in one process on one machine: how soon does the default preset reach what nanoGPT's baby recipe reaches in
the whole budget?

    python bench/race.py --corpus quijote --budget 300 [--preset base] [--set key=value ...] [--within 0.05]
                                                                                      → one JSON line

1. `nanogpt-baby` trains for the budget (learning rate over the clock); its final bits/char on the whole validation
   split is the mark.
2. The preset trains with the same budget for its schedule (or `--schedule S` seconds: its learning rate then decays
   over S, and the run ends there) and is scored on the whole validation split at training times growing by `within`
   (5%: t, 1.05·t, …, from the schedule/30 on) and at its end, until it reaches the mark. The time reported is the
   first scoring at or under the mark, so the true crossing lies within 5% before it. Scoring is not counted.
   Both runs are scored with their last weights (train.keep_best off).

    python bench/race.py --corpus quijote --budget 300 --schedule 100     → can the preset, given 100 s, reach the mark?
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from machine import cpu_info

from taller.config import Config
from taller.training import distributed
from taller.training.device import pick_device
from taller.training.loop import Trainer, quiet, train
from taller.training.next_token import NextToken


class Chaser(Trainer):
    """The loop, scoring the whole val split at training times t, (1 + within)·t, … and stopping at the mark."""

    def __init__(self, *args, mark: float, first: float, within: float, **kw):
        super().__init__(*args, **kw)
        self.mark, self.next_score, self.within = mark, first, within
        self.scored: list[tuple[float, float]] = []  # (training seconds, val bits/char)
        self.reached: float | None = None
        self.at_end = False  # reached at the end of its own schedule (its budget), not before

    def take_step(self, model, window, stop_requested: bool) -> bool:
        stop = super().take_step(model, window, stop_requested)
        if self.train_time < self.next_score:
            return stop
        bpc = self.objective.evaluate(whole=True)["val_bpc"]
        self.scored.append((self.train_time, bpc))
        self.next_score = self.train_time * (1 + self.within)
        if bpc <= self.mark:
            self.reached = self.train_time
            return True  # the loop stops here, as after a Ctrl-C
        return stop


def configured(preset: str, corpus: str, overrides: list[str], budget: float) -> Config:
    cfg = Config.preset(preset)
    cfg.data.corpus = corpus
    cfg.train.mix_slice = 0.0  # never mixed: the whole training text
    cfg.apply_overrides(overrides)
    cfg.train.max_time = budget
    cfg.train.samples, cfg.train.plot_every, cfg.train.keep_best = 0, 0, False
    return cfg.validate()


def mark_of_the_baby(corpus: str, budget: float, out: Path) -> dict:
    run = train(configured("nanogpt-baby", corpus, [], budget), out / "baby", progress=False, log=quiet)
    s = run.state
    return {"val_bpc": s["val_bpc"], "steps": s["step"], "chars_per_s": s["chars_per_s"], "train_s": s["train_time"]}


def chase(cfg: Config, mark: float, within: float, out: Path) -> Chaser:
    ctx = distributed.start(pick_device(cfg.train.device))
    objective = NextToken(cfg, out, ctx, False)
    chaser = Chaser(
        cfg,
        out,
        ctx,
        objective,
        resume=False,
        progress=False,
        log=quiet,
        mark=mark,
        first=cfg.train.max_time / 30,
        within=within,
    )
    run = chaser.run()
    if chaser.reached is None and not run.interrupted:  # the end of its schedule: scored there too
        chaser.scored.append((chaser.train_time, run.state["val_bpc"]))
        if run.state["val_bpc"] <= mark:  # within its schedule: the last step is the one that crossed its clock
            chaser.reached = chaser.train_time
            chaser.at_end = True
    return chaser


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("--budget", type=float, default=300, help="seconds of training for the baby (and the schedule)")
    p.add_argument("--preset", default="base", help="the challenger (default: base)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the challenger")
    p.add_argument(
        "--schedule",
        type=float,
        default=None,
        help="seconds the challenger's schedule (and run) lasts (default: --budget)",
    )
    p.add_argument("--within", type=float, default=0.05, help="scoring times grow by this fraction")
    a = p.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        baby = mark_of_the_baby(a.corpus, a.budget, Path(tmp))
        chaser = chase(
            configured(a.preset, a.corpus, a.set, a.schedule or a.budget),
            baby["val_bpc"],
            a.within,
            Path(tmp) / "challenger",
        )
    reached, schedule = chaser.reached, a.schedule or a.budget
    within_a_third = bool(reached and (reached <= a.budget / 3 or (chaser.at_end and schedule <= a.budget / 3)))
    print(
        json.dumps(
            {
                "bench": "race",
                "corpus": a.corpus,
                "budget_s": a.budget,
                "baby": baby,
                "mark_bpc": baby["val_bpc"],
                "challenger": a.preset,
                "overrides": a.set,
                "schedule_s": schedule,
                "reached_s": reached,
                "reached_after_s": chaser.scored[-2][0] if reached and len(chaser.scored) > 1 else 0.0,
                "speedup": a.budget / reached if reached else None,
                "reached_at_schedule_end": chaser.at_end,
                "target_met": within_a_third,
                "scored": [[round(t, 1), round(b, 4)] for t, b in chaser.scored],
                "wall_s": time.perf_counter() - started,
                **cpu_info(),
            }
        )
    )
