"""The training loop: one loop for every model that learns by gradient descent.

    for each step:  batch = objective.next_batch()  →  loss = objective.loss(model, batch)  →  loss.backward()
                    →  clip the gradient  →  optimizer step with the scheduled learning rate

What a batch is and how its loss is computed belongs to the objective: windows of text and the next token
(next_token.py) or pairs of words (skipgram.py). The loop owns everything else, the same for every model: the clock
and the learning-rate schedule, the progress bar, Ctrl-C and SIGTERM, divergence, the score at each epoch's end,
checkpoints and metrics. A model fitted by counting (the n-gram, the bigram) skips the loop: counting.py.

This file holds the phases of learning; what the loop writes down as it goes (checkpoints, metrics, the progress bar,
the health checkups) is records.py, a part of the same Trainer.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from taller.config import Config
from taller.data.prepared import is_prepared
from taller.errors import TallerError
from taller.models import Kind, kind_of
from taller.runs.folder import Run, check_run_dir, clear_unfinished_start, lock_run_dir
from taller.text import number
from taller.threads import StepCheck, choose, use
from taller.training import distributed
from taller.training.average import WeightAverage
from taller.training.classify import Classify
from taller.training.counting import fit_counts
from taller.training.device import available_memory, pick_device, processes_sharing_memory
from taller.training.masked import MaskedTokens
from taller.training.mixing import fit_mix
from taller.training.next_token import NextToken
from taller.training.optim import learning_rate, set_learning_rate
from taller.training.passes import PassesCheck
from taller.training.records import Parts, Records, Window
from taller.training.skipgram import SkipGramPairs
from taller.training.spans import SpanCorruption
from taller.training.text_to_text import TextToText
from taller.training.tildes import Accents

OBJECTIVES = {
    "next_token": NextToken,
    "skipgram": SkipGramPairs,
    "masked": MaskedTokens,
    "classify": Classify,
    "spans": SpanCorruption,
    "text_to_text": TextToText,
    "tildes": Accents,
}  # a kind's `objective` -> what the loop asks of it


def train(
    cfg: Config, out: str | Path, *, resume: bool = False, progress: bool = True, log=print, threads: int = 0
) -> Run:
    """Train a model as `cfg` says, writing the run folder `out`; return the trained run.

    `threads`: how many threads compute on the CPU (0: fitted to the cores other programs leave free; threads.py).
    Under torchrun every process calls this: it joins the process group, trains its share (see distributed.py)
    and leaves the group at the end, also on an error. Only rank 0 prints and writes.
    """
    cfg.validate()
    ctx = distributed.start(pick_device(cfg.train.device))
    try:
        out = Path(distributed.broadcast_text(ctx, str(out)))  # a name made from the clock: rank 0's, everywhere
        run = fit(
            cfg,
            out,
            ctx,
            resume=resume,
            progress=progress and ctx.main,
            log=log if ctx.main else quiet,
            threads=threads,
        )
        distributed.barrier(ctx)  # everyone waits until rank 0 has written the last file
        return run
    finally:
        distributed.stop(ctx)


def quiet(*args, **kwargs) -> None:
    """The log of ranks other than 0: they train in silence."""


def fit(cfg: Config, out: Path, ctx: distributed.Context, *, resume: bool, progress: bool, log, threads: int) -> Run:
    """Check the folder and what the kind can do, then fit the model the way its kind learns."""
    kind = kind_of(cfg)
    refuse_what_the_kind_cannot_do(kind, cfg, ctx, resume)
    check_run_dir(out, resume)
    distributed.barrier(ctx)  # every rank has checked the folder before rank 0 creates it
    cfg.check_memory(available_memory(ctx.device), processes_sharing_memory(ctx.device, ctx.world))
    if kind.counted:
        return fit_counts(cfg, out, ctx, log=log)
    if kind.combines:
        return fit_mix(cfg, out, ctx, log=log)
    passes = PassesCheck.before(cfg, resume)  # before the objective replaces the rule's -1s with its guess
    objective = OBJECTIVES[kind.objective](cfg, out, ctx, resume)  # the data is read and checked here
    choice = use(choose(threads))
    log(f"Calculo con {choice.why}.")
    watch = choice.automatic and ctx.device.type == "cpu" and not ctx.active  # are fewer threads faster?
    return Trainer(
        cfg,
        out,
        ctx,
        objective,
        resume=resume,
        progress=progress,
        log=log,
        threads=StepCheck(choice) if watch else None,
        passes=passes,
    ).run()


def refuse_what_the_kind_cannot_do(kind: Kind, cfg: Config, ctx: distributed.Context, resume: bool) -> None:
    if ctx.active and not kind.distributed:
        raise TallerError(
            f"{kind.a_title} se entrena en un solo proceso (segundos en una CPU): no se reparte entre "
            f"procesos; lánzalo sin torchrun (`taller train --model {kind.name} …`)."
        )
    if resume and not kind.resumable:
        raise TallerError(
            f"{kind.a_title} no se entrena por pasos, se ajusta contando en segundos: "
            "vuelve a ajustarlo en otra carpeta, sin --resume."
        )
    if not kind.prepared_data and is_prepared(cfg.data.corpus):
        raise TallerError(
            f"{kind.a_title} lee el texto entero en memoria: entrénalo con el fichero de texto, "
            "no con una carpeta preparada."
        )


class StopFlag:
    """Ctrl-C or SIGTERM ask the loop to stop at the end of the current step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self.signum = 0  # which signal asked first
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread (e.g. inside some notebook runners)
                pass
        return self

    def handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signum = True, self.signum or signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Trainer(Records):
    """Runs one objective to the end of its budget (epochs, seconds or steps), writing the run folder as it goes."""

    def __init__(
        self,
        cfg: Config,
        out: Path,
        ctx: distributed.Context,
        objective,
        *,
        resume: bool,
        progress: bool,
        log,
        threads: StepCheck | None = None,
        passes: PassesCheck | None = None,
    ):
        self.cfg, self.out, self.ctx, self.objective = cfg, out, ctx, objective
        self.resume, self.progress, self.log = resume, progress, log
        self.threads = threads  # times the first steps: are fewer threads faster on this machine now? (threads.py)
        self.passes = passes  # then: the passes at the measured speed; the rule's dropout and average again (passes.py)
        self.writer = ctx.main  # only rank 0 writes the run folder
        self.model = objective.model
        self.optimizer = objective.make_optimizer()
        self.step, self.epoch, self.train_time, self.best_val = 0, 0, 0.0, float("inf")
        self.best_weights: dict[str, torch.Tensor] | None = None  # a copy of the weights that scored best_val
        self.best_step = 0
        self.best_unsaved = False  # best_weights changed since the last checkpoint (the next one writes them)
        self.average = (
            WeightAverage(self.model, cfg.train.ema) if cfg.train.ema > 0 else None
        )  # what is scored and kept
        self.last_weights: dict[str, torch.Tensor] | None = None  # at the end: the weights a --resume goes on from
        self.scores: dict = {}  # the last validation scores
        self.lr = cfg.train.lr  # the learning rate of the last step
        self.saved_state: dict = {}  # what state.json says since the last commit
        self.stopped_by = 0  # the signal that stopped the steps early (SIGINT: Ctrl-C, SIGTERM), 0 if none
        self.parts = Parts()  # how long each part of the end takes (said in the run's last line)

    def run(self) -> Run:
        """The whole story: lock and open the run folder, learn until the budget is spent (or a stop), then finish."""
        with self.claim_folder():
            self.open_folder()
            self.objective.begin(self)
            stopped = self.learn(self.wrap(self.model))
            return self.stop() if stopped else self.finish()

    # --- the phases -----------------------------------------------------------------------------------------------
    def claim_folder(self):
        """The run folder's lock, held until the training ends: a second training on the folder is refused. Rank 0
        takes it; under torchrun every rank learns whether it got it, so that all stop together if not."""
        lock, refusal = nullcontext(), ""
        if self.writer:
            try:
                lock = lock_run_dir(self.out, self.resume)
            except TallerError as e:
                refusal = str(e)
        refusal = distributed.broadcast_text(self.ctx, refusal)
        if refusal:
            raise TallerError(refusal)
        return lock

    def open_folder(self) -> None:
        """Everything is checked and the folder is ours: only now is it written (or, resuming, read back)."""
        if self.resume:
            self.restore()
        elif self.writer:
            taken_over = clear_unfinished_start(self.out)
            if taken_over:
                self.log(
                    f"{self.out} se detuvo antes de su primer punto de control (sin state.json): empiezo de cero "
                    f"y reemplazo sus ficheros ({', '.join(taken_over)})."
                )
            self.cfg.save(self.out / "config.toml")
            self.objective.save_vocabulary(self.out)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """What the steps call: under torchrun, DDP (it averages the gradients during backward(), starting from rank
        0's weights); compiled if asked."""
        if self.ctx.active:
            device = self.ctx.device
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        return torch.compile(model) if self.cfg.train.compile else model

    def learn(self, model: torch.nn.Module) -> bool:
        """Steps until the budget is spent; True if Ctrl-C or SIGTERM stopped them first."""
        bar, window, stop_all = self.progress_bar(), Window(), False
        self.model.train()
        with StopFlag() as stop:
            while not self.budget_spent():
                if stop_all or (stop.requested and not self.ctx.active):  # ranks stop together, at the step they agreed
                    bar.close()
                    self.stopped_by = stop.signum or signal.SIGTERM  # (another rank's: torchrun passes SIGTERM on)
                    return True
                stop_all = self.take_step(model, window, stop.requested)
                bar.update(min(int(self.train_time), bar.total) - bar.n if self.timed else 1)
                if self.step % self.cfg.train.log_every == 0:
                    self.log_window(window, bar)
                    window = Window()
                if self.objective.epoch_ended(self.step):
                    self.end_epoch()
        bar.close()
        return False

    def take_step(self, model: torch.nn.Module, window: Window, stop_requested: bool) -> bool:
        """One step of gradient descent; returns whether the ranks agreed to stop after it."""
        t = self.cfg.train
        started = time.perf_counter()
        lr = learning_rate(self.cfg, self.step, self.progress_fraction())
        set_learning_rate(self.optimizer, lr)
        batch = self.objective.next_batch()
        checkup = self.checkup(lr)  # every train.health_every steps this step is watched; otherwise it does nothing
        checkup.start()
        loss = self.objective.loss(model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        checkup.gradients()
        if t.grad_clip > 0 and self.objective.clip_gradients:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model, self.step)
        checkup.updates()
        loss_value = loss.item()  # waits for the step's work
        elapsed = time.perf_counter() - started
        # torchrun: the global batch's loss, one clock and one decision to stop, the same on every rank
        loss_value, elapsed, stop_all = distributed.agree(self.ctx, loss_value, elapsed, stop_requested)
        if not math.isfinite(loss_value):
            raise TallerError(
                f"la pérdida se ha vuelto {loss_value} en el paso {self.step}: el entrenamiento diverge; "
                f"baja el learning rate (--set lr={t.lr / 3:.2g})."
            )
        self.step, self.train_time, self.lr = self.step + 1, self.train_time + elapsed, lr
        window.add(loss_value, self.objective.items(batch), elapsed)
        self.record_health(checkup)
        self.fit_threads(elapsed)
        return stop_all

    def fit_threads(self, elapsed: float) -> None:
        """The machine may be busier than it looked at the start: fewer threads, if they are faster. Once the first
        steps are timed: how many times the budget will really read the text (passes.py)."""
        said = self.threads.after_step(elapsed) if self.threads is not None else None
        if said:
            self.log(said)
        usual = self.threads.usual if self.threads is not None else None
        said = self.passes.after_step(self, usual) if self.passes is not None else None
        if said:
            self.log(said)

    # --- an epoch's end, a stop, the end ---------------------------------------------------------------------------
    def end_epoch(self) -> None:
        """The end of an epoch: the objective's turn (pictures, new pairs), a score on val, a checkpoint."""
        self.epoch += 1
        self.objective.end_epoch(self)
        with self.averaged():
            self.scores = self.objective.evaluate()
        self.log_metrics({"step": self.step, "epoch": self.epoch, **self.scores, "time": self.train_time})
        if self.scores["val_loss"] < self.best_val:
            self.best_val = self.scores["val_loss"]
            with self.averaged():
                self.keep_as_best()
        self.commit(finished=False)  # with the best weights, if they changed: best_step always names them

    def averaged(self):
        """The average of the weights in the model's place for the block (train.ema), or the weights themselves."""
        return self.average.in_place_of(self.model) if self.average is not None else nullcontext()

    def stop(self) -> Run:
        """Ctrl-C or SIGTERM: a checkpoint of this very step, and how to go on."""
        self.commit(finished=False)
        self.health_report()
        self.objective.stopped(self)
        self.log(
            f"Interrumpido: guardado en el paso {self.step} (época {self.epoch}). Continúa con "
            f"`taller train --out {self.out} --resume`."
        )
        return self.objective.interrupted_run(self)

    def finish(self) -> Run:
        """The end: the epoch's yardstick once more (for the best weights), then the whole validation text."""
        own = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.average is not None:  # from here on the model is the average (the run's model: what was scored)
            self.model.load_state_dict(self.average.weights)
        with self.parts.part("evaluación"):
            last = self.objective.evaluate()
        kept_other = self.average is not None
        if last["val_loss"] <= self.best_val:
            self.best_val = last["val_loss"]
            self.keep_as_best()  # the objective's finish commits it
        elif self.cfg.train.keep_best and self.best_weights is not None:
            self.take_best(last["val_loss"])
            kept_other = True
        self.last_weights = own if kept_other else None  # the model kept is not the last weights: a --resume needs them
        with self.parts.part("evaluación"):
            final = self.objective.evaluate(whole=True)
        self.log_metrics({"step": self.step, "epoch": self.epoch, **final, "time": self.train_time, "final": True})
        self.health_report()
        run = self.objective.finish(self, final)
        self.log(self.parts.line())
        return run

    def take_best(self, last_loss: float) -> None:
        """The last weights scored worse than earlier ones (often: the model has begun to memorise its training text):
        the run keeps the best (train.keep_best), and says so. They were chosen by the validation curve, so the final
        figure on that same text is slightly optimistic."""
        self.model.load_state_dict(self.best_weights)
        self.log(
            f"Me quedo con los pesos del paso {self.best_step}, los de menor pérdida de validación "
            f"({number(self.best_val, 3)}; los últimos, del paso {self.step}: {number(last_loss, 3)}). Como los elegí "
            "mirando la validación, su cifra final es algo optimista; --set keep_best=false guarda los últimos."
        )

    # --- the budget and the schedule --------------------------------------------------------------------------------
    @property
    def timed(self) -> bool:
        return self.cfg.train.max_time > 0

    def budget_spent(self) -> bool:
        t = self.cfg.train
        if t.max_steps and self.step >= t.max_steps:
            return True
        if self.timed:
            return self.train_time >= t.max_time
        return self.objective.epochs_done(self.step) >= t.epochs

    def progress_fraction(self) -> float:
        """How far along the schedule is, 0 … 1: by the clock, or by the epochs."""
        t = self.cfg.train
        return self.train_time / t.max_time if self.timed else self.objective.epochs_done(self.step) / t.epochs
