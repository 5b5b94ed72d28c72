"""The files a language model's run folder shows while it learns and when it is done.

parameters.txt       every tensor: shape, count, statistics (at the start and at the end)
epoch_NNN.png        the weights as pictures, every `plot_every` epochs (step_NNNNNN.png: where a run ended between)
evolution.jsonl      how far each group of weights has travelled from where it started, epoch by epoch (and at
                     the last step)
loss.png             train and val curves
samples.txt          new text written by the model; table.txt: the probabilities behind each token
report.html          everything above on one page
"""

from __future__ import annotations

from pathlib import Path

from taller.files import atomic_write
from taller.inspect import epoch_plot, loss_plot, parameter_table, probability_table
from taller.inspect.evolution import (
    load_initial,
    read_evolution,
    save_initial,
    snapshot,
    weight_change,
    write_evolution,
)
from taller.inspect.report import write_report
from taller.runs.metrics import read_metrics


def write_samples(run, t) -> list:
    """samples.txt and table.txt: `t.samples` new samples after `t.prompt` (t: the [train] section)."""
    samples = run.generate(t.prompt, t.samples, seed=t.seed, max_chars=t.sample_chars, temperature=t.temperature)
    atomic_write(run.dir / "samples.txt", "".join(s.text + "\n" for s in samples).encode("utf-8"))
    atomic_write(run.dir / "table.txt", probability_table(samples).encode("utf-8"))
    return samples


class Pictures:
    """The pictures and tables of a run that is being trained (rank 0 only: the others pass `active=False`)."""

    def __init__(self, out: Path, model, plot_every: int, active: bool):
        self.out, self.model, self.plot_every, self.active = out, model, plot_every, active
        self.initial, self.evolution = None, []
        self.drawn_step: int | None = None  # the step of the last picture of the weights (None: not known, resumed)

    def begin(self, resume: bool, epoch: int) -> None:
        """The weights as they start: kept on disk, so that a resumed run measures how far they moved from there."""
        if not self.active:
            return
        if resume:
            self.initial = load_initial(self.out, self.model)  # None for runs saved before it was kept: no evolution
            # a point where an earlier run ended between epochs ("last") is not one an uninterrupted run would have
            self.evolution = [e for e in read_evolution(self.out) if e["epoch"] <= epoch and not e.get("last")]
        else:
            self.initial = snapshot(self.model)
            save_initial(self.out, self.initial)
            self.evolution = [{"epoch": 0, "step": 0, "change": weight_change(self.model, self.initial)}]
        if self.initial is not None:
            write_evolution(self.out, self.evolution)
        self.write_parameters()
        if not resume and self.plot_every:
            epoch_plot(self.model, 0, self.out / "epoch_000.png")
            self.drawn_step = 0

    def epoch(self, epoch: int, step: int) -> None:
        if not self.active:
            return
        if self.initial is not None:
            self.evolution.append({"epoch": epoch, "step": step, "change": weight_change(self.model, self.initial)})
            write_evolution(self.out, self.evolution)
        if self.plot_every and epoch % self.plot_every == 0:
            epoch_plot(self.model, epoch, self.out / f"epoch_{epoch:03d}.png")
            self.drawn_step = step

    def last_step(self, epoch: int, step: int) -> None:
        """The weights where the run ended, when that is not an epoch's end (a run shorter than an epoch, or one
        stopped by the clock): one more point of evolution.jsonl and step_NNNNNN.png."""
        if self.initial is not None and self.evolution and self.evolution[-1]["step"] != step:
            self.evolution.append(
                {"epoch": epoch, "step": step, "change": weight_change(self.model, self.initial), "last": True}
            )
            write_evolution(self.out, self.evolution)
        if self.plot_every and self.drawn_step != step:
            epoch_plot(self.model, epoch, self.out / f"step_{step:06d}.png", step=step)

    def stopped(self) -> None:
        if self.active:
            loss_plot(read_metrics(self.out), self.out / "loss.png")

    def finish(self, run, epoch: int, t, parts, samples: bool = True) -> None:
        """The last picture, the final tables, samples and the report (t: the [train] section; parts: the end's
        clock, records.Parts; `samples`: False for a model that does not write text, which gets neither samples nor
        the language model's report)."""
        if not self.active:
            return
        with parts.part("pesos y curvas"):
            self.last_step(epoch, run.state["step"])
            self.write_parameters()
            loss_plot(read_metrics(self.out), self.out / "loss.png", run.state.get("baseline_bpc"))
        if samples and t.samples:
            with parts.part("muestras"):
                write_samples(run, t)
        if samples and t.report:
            with parts.part("informe"):
                write_report(run, memory=False)  # the memory curve costs seconds: `taller report` draws it

    def write_parameters(self) -> None:
        atomic_write(self.out / "parameters.txt", parameter_table(self.model).encode("utf-8"))
