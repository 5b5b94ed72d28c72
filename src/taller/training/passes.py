"""The rule by passes (models/kind.py, REGULARISE_BY_PASSES), corrected once the first steps have measured the speed.

Before the first step, a training by the clock (--max-time) only guesses how many times it will read its text: its
speed is guessed from the model's size (config.py, expected_passes). The first steps are timed anyway, to choose the
threads (threads.py, StepCheck); their time per step gives the real figure. If, at that speed, the rule falls in
another row of its table, the run changes to that row's dropout and average from then on, and says so in one line.

    passes = max_time ÷ seconds per step ÷ steps per epoch
"""

from __future__ import annotations

from taller.models import set_dropout
from taller.models.kind import BY_PASSES, by_passes
from taller.text import number, short
from taller.threads import SAMPLE, WARMUP
from taller.training.average import WeightAverage

MEASURED_AT = WARMUP + 2 * SAMPLE + 1  # the step at which the threads' check has timed both settings


class PassesCheck:
    """For a run by the clock whose dropout or average the rule chose: at step MEASURED_AT, the passes at the measured
    speed, and the rule applied again."""

    def __init__(self, cfg, dropout_by_rule: bool, average_by_rule: bool):
        self.cfg = cfg
        self.dropout_by_rule, self.average_by_rule = dropout_by_rule, average_by_rule
        self.started_at = 0.0  # the clock after the WARMUP steps, which are slow (memory, caches)

    @classmethod
    def before(cls, cfg, resume: bool) -> PassesCheck | None:
        """Called before the objective applies the rule (it replaces the -1s): a check if there is anything to check."""
        dropout, average = cfg.model.dropout_by_passes, cfg.train.ema == BY_PASSES
        return cls(cfg, dropout, average) if cfg.train.max_time > 0 and not resume and (dropout or average) else None

    def after_step(self, trainer, step_seconds: float | None) -> str | None:
        """After each step; `step_seconds`: the threads' check's usual step, if it timed one. Returns a line to say."""
        if trainer.step == WARMUP:
            self.started_at = trainer.train_time
        if trainer.step != MEASURED_AT:
            return None
        seconds = step_seconds or (trainer.train_time - self.started_at) / (MEASURED_AT - WARMUP)
        passes = trainer.objective.epochs_done(self.cfg.train.max_time / max(seconds, 1e-9))
        return self.apply(trainer, passes, seconds)

    def apply(self, trainer, passes: float, seconds: float) -> str | None:
        """The rule's row for `passes`, applied to the model, its average and the saved configuration."""
        dropout, ema = by_passes(passes)
        m, t, changed = self.cfg.model, self.cfg.train, []
        if self.dropout_by_rule and dropout != m.dropout:
            m.dropout = dropout
            set_dropout(trainer.model, dropout)
            changed.append(f"dropout {short(dropout)}")
        if self.average_by_rule and ema != t.ema:
            t.ema = ema
            trainer.average = WeightAverage(trainer.model, ema) if ema else None
            changed.append(f"media de los pesos {short(ema)}" if ema else "sin media de los pesos")
        if not changed:
            return None
        if trainer.writer:
            trainer.cfg.save(trainer.out / "config.toml")
        return (
            f"Medidos los primeros pasos ({number(seconds, 3)} s cada uno), leeré el texto unas {number(passes, 1)} "
            f"veces, no las estimadas: sigo con {' y '.join(changed)} (--set dropout=X y --set ema=X los fijan)."
        )
