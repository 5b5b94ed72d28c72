"""What the training loop writes down as it goes, and reads back on --resume: the part of the Trainer (loop.py) that
keeps the books, so that the loop's file shows the phases of learning and this one the records.

    the checkpoint   commit(): weights, optimizer, random generators, the average, the best weights and state.json, in
                     two phases (runs/checkpoint.py); restore(): all of it read back, so a resumed run goes on exactly
    the metrics      one line of metrics.jsonl every train.log_every steps and at each score; the progress bar
    the health       a checkup every train.health_every steps (health.jsonl), health.png and one line at the end

`Records` is a mixin: it reads the Trainer's own attributes (cfg, out, ctx, objective, model, optimizer, step, epoch,
train_time, best_*, average, last_weights, scores, lr, writer, log).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from tqdm.auto import tqdm

from taller.inspect.health import HEALTH, Checkup, NoCheckup, health_plot, read_health, summary
from taller.runs.checkpoint import flatten_optimizer, load_tensors, read_state, remove_leftovers, save_checkpoint
from taller.runs.folder import load_optimizer, load_weights, optimizer_mismatch, run_state
from taller.runs.metrics import METRICS, append_metrics, truncate_metrics
from taller.text import number, thousands
from taller.training import distributed
from taller.training.optim import slowed_parameters

LAST = "last."  # a finished run's last weights in optim.safetensors (its model may be the average or the best ones)


class Window:
    """The steps since the last metrics line: their mean loss and speed."""

    def __init__(self):
        self.loss, self.steps, self.items, self.seconds = 0.0, 0, 0, 0.0

    def add(self, loss: float, items: int, seconds: float) -> None:
        self.loss, self.steps, self.items, self.seconds = (
            self.loss + loss,
            self.steps + 1,
            self.items + items,
            self.seconds + seconds,
        )


class Parts:
    """How long each part of the end took (the final score, the baseline, the pictures, the report): said in one line,
    so that the time after the budget is never a mystery."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def line(self) -> str:
        parts = " · ".join(f"{name} {number(s, 1)} s" for name, s in self.seconds.items())
        return f"Después del entrenamiento: {parts} (total {number(sum(self.seconds.values()), 1)} s)."


class Records:
    """The Trainer's books: checkpoints, metrics, the progress bar and the health checkups."""

    # --- the checkpoint: written, and read back ----------------------------------------------------------------
    def commit(self, finished: bool, extra: dict | None = None) -> None:
        """A checkpoint: weights, optimizer, random states and state.json, committed in two phases (runs/checkpoint)."""
        rank_states = distributed.gather_rng_states(self.ctx)  # every rank takes part; only rank 0 writes
        if not self.writer:
            return
        tensors, meta = flatten_optimizer(self.optimizer)  # the same on every rank: same gradients, same steps
        tensors.update(self.objective.random_state())
        if self.average is not None:
            tensors.update(self.average.tensors())
        if self.last_weights is not None:  # the run's model may be the average or the best: training goes on from these
            tensors.update({LAST + k: v for k, v in self.last_weights.items()})
        tensors.update(rank_states)
        state = run_state(
            step=self.step,
            epoch=self.epoch,
            train_time=self.train_time,
            finished=finished,
            parameters=sum(p.numel() for p in self.model.parameters()),
            best_val_loss=self.best_val,
            best_step=self.best_step,
            **self.objective.state(),
            **(extra or {}),
        )
        best = self.best_weights if self.best_unsaved else None
        save_checkpoint(self.out, self.model.state_dict(), tensors, meta, state, best=best)
        self.saved_state, self.best_unsaved = state, False

    def keep_as_best(self) -> None:
        """The weights that scored best so far: kept in memory (every rank); the next commit writes them to
        best.safetensors (rank 0), in the same checkpoint as the state.json that names their step."""
        self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.best_step, self.best_unsaved = self.step, True

    def restore(self) -> None:
        """Weights, optimizer and random generators as the last checkpoint left them: the run goes on exactly."""
        with distributed.main_first(self.ctx):  # rank 0 may finish an interrupted checkpoint on disk; then all read it
            state = read_state(self.out, repair=self.writer)  # the lock's holder finishes a cut checkpoint
            load_weights(self.out, self.model, state)
            tensors = load_optimizer(self.out, state, self.optimizer)
            try:
                self.objective.restore(tensors, state)
                if self.average is not None:
                    self.average.restore(tensors)
                last = {k[len(LAST) :]: v for k, v in tensors.items() if k.startswith(LAST)}
                if last:  # a finished run goes on from its last weights, not from the model it kept
                    self.model.load_state_dict(last)
            except (KeyError, ValueError, RuntimeError) as e:
                raise optimizer_mismatch(self.out, e) from None
            if self.ctx.active:
                distributed.restore_rng_state(self.ctx, tensors, state)
        self.step, self.epoch, self.train_time = state["step"], state["epoch"], float(state["train_time"])
        self.best_val = float(state.get("best_val_loss", float("inf")))
        self.best_step = int(state.get("best_step", 0))
        if self.cfg.train.keep_best and (self.out / "best.safetensors").is_file():  # what finish() may go back to
            self.best_weights, _ = load_tensors(self.out / "best.safetensors", expected=self.model.state_dict())
        if self.writer:
            remove_leftovers(self.out)
            self.cfg.save(self.out / "config.toml")  # a longer schedule given on resuming is remembered
            truncate_metrics(self.out, self.step)
            truncate_metrics(self.out, self.step, HEALTH)
        self.log(f"Continúo {self.out} desde el paso {self.step} (época {self.epoch}).")

    # --- the metrics and the progress bar ----------------------------------------------------------------------
    def log_metrics(self, entry: dict, name: str = METRICS) -> None:
        if self.writer:
            append_metrics(self.out, entry, name)

    def log_window(self, window: Window, bar) -> None:
        speed = window.items / window.seconds
        self.log_metrics(
            {
                "step": self.step,
                "epoch": self.epoch,
                "train_loss": window.loss / window.steps,
                "lr": self.lr,
                self.objective.speed_key: speed,
                "time": self.train_time,
            }
        )
        s = self.scores
        shown = f"val {number(s['val_loss'], 3)}" if s else "val —"
        shown += f" · {number(s['val_bpc'], 2)} bits/car" if "val_bpc" in s else ""
        bar.set_postfix_str(
            f"pérdida {number(window.loss / window.steps, 3)} · {shown} · {thousands(speed)} "
            f"{self.objective.speed_unit}",
            refresh=False,
        )

    def progress_bar(self):
        t = self.cfg.train
        if self.timed:
            total, initial, unit = int(t.max_time), min(int(self.train_time), int(t.max_time)), "s"
        else:
            total, initial, unit = self.total_steps(), self.step, "pasos"
        return tqdm(
            total=total,
            initial=initial,
            disable=not self.progress,
            dynamic_ncols=True,
            desc="Entrenando",
            mininterval=1.0,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} " + unit + " [{elapsed}<{remaining}{postfix}]",
        )

    def total_steps(self) -> int:
        t = self.cfg.train
        scheduled = t.epochs * self.objective.steps_per_epoch
        return min(scheduled, t.max_steps) if t.max_steps else scheduled

    # --- the network's health (inspect/health.py) --------------------------------------------------------------
    def checkup(self, lr: float) -> Checkup | NoCheckup:
        """A checkup of this step (activations, gradients, updates) every train.health_every steps, from the first.
        A compiled model is not hooked (a hook would make it compile again): gradients and updates only."""
        every = self.cfg.train.health_every
        if not every or self.step % every:
            return NoCheckup()
        slowed = slowed_parameters(self.model, self.optimizer)  # judged against their own rate (a T5's encoder)
        return Checkup(
            self.model,
            self.step,
            activations=not self.cfg.train.compile,
            epoch=self.epoch,
            lr=lr,
            warming_up=self.step < self.cfg.train.warmup_steps,
            **({"lr_ratios": slowed} if slowed else {}),
        )

    def record_health(self, checkup: Checkup | NoCheckup) -> None:
        """The watched step's line of health.jsonl (measured on every rank, written by rank 0)."""
        if checkup.entry is not None:
            self.log_metrics(checkup.entry, HEALTH)

    def health_report(self) -> None:
        """At the end (or a stop): health.png, and what the last checkup found out of range, said once."""
        entries = read_health(self.out) if self.writer and self.cfg.train.health_every else []
        if not entries:
            return
        health_plot(entries, self.out / "health.png")
        title, said = summary(entries)[-1]
        said = " · ".join(said) if said else "sin avisos"
        self.log(f"Salud de la red, {title.lower()}: {said} (health.png).")
