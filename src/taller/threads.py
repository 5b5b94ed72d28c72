"""How many threads PyTorch computes with: fitted to the cores that other programs leave free.

A matrix product on two threads splits its rows between them, and each waits for the other at the end. On a quiet
2-core machine that is twice the speed. On a busy one (a browser, another training) the operating system takes a
core away from one thread now and then, and its partner spins, waiting: measured with one busy loop beside
`taller train` on 2 cores (bench/busy.py), two threads trained 20 times slower than one. So:

1. each command chooses its number of threads once, at its start, in the main thread: the cores nobody else kept
   busy during a fifth of a second (`choose`); `--threads N` or OMP_NUM_THREADS choose by hand;
2. training checks in its first steps that half as many threads are not faster, and steps down for good if the
   steps become several times slower later (`StepCheck`): the machine got busy.

The same seed gives the same losses on the same threads: the trial's steps at n/2 threads may add up in another order
than at n, so a run that must repeat exactly on a machine whose load changes fixes them (`--threads N`).

Nothing here changes the number of threads from any thread but the main one: a server answers requests in a pool
of threads, and one request must not change how the others compute (`limited` does nothing there).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from taller.text import number

PROBE_SECONDS = 0.2  # how long the cores are watched before choosing
STEP_ALONE_BELOW = 4_000_000  # parameters × rows: a step smaller than this runs faster on one thread (generation)
WARMUP, SAMPLE = 3, 5  # StepCheck: steps not timed (the first are slow: memory, caches), steps timed per setting
SLOWER, SLOW_STEPS = 4.0, 3  # after the check: this many steps in a row this many times slower → step down


@dataclass(frozen=True)
class Choice:
    threads: int
    why: str  # the Spanish words for it, said in one line
    automatic: bool  # chosen from the load (a training may still step down)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of our cores since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        ours = {f"cpu{i}" for i in os.sched_getaffinity(0)}
        with open("/proc/stat", "rb") as f:
            lines = f.read(1 << 20).decode("ascii", "replace").splitlines()
    except (AttributeError, OSError):
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name in ours:
            ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return (busy, total) if total else None


def others_busy(seconds: float = PROBE_SECONDS) -> float | None:
    """How many of our cores other programs kept busy during the next `seconds` (our own work left out); None where
    the system does not say."""
    before, own, start = cpu_ticks(), time.process_time(), time.perf_counter()
    if before is None:
        try:  # the last minute's runnable processes, ourselves included
            return max(0.0, os.getloadavg()[0] - 1)
        except (AttributeError, OSError):
            return None
    time.sleep(seconds)
    after = cpu_ticks()
    wall = time.perf_counter() - start
    busy_cores = (after[0] - before[0]) / max(1, after[1] - before[1]) * cores()
    return max(0.0, busy_cores - (time.process_time() - own) / max(wall, 1e-3))


def threads_words(n: int) -> str:
    return f"{n} hilo{'s' * (n != 1)}"


def choose(requested: int = 0) -> Choice:
    """The threads for this command: `requested` (--threads), OMP_NUM_THREADS, or the cores left free."""
    if requested:
        return Choice(requested, f"{threads_words(requested)} (--threads)", False)
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) > 0:
        return Choice(int(asked), f"{threads_words(int(asked))} (OMP_NUM_THREADS)", False)
    n, busy = cores(), others_busy()
    if busy is None:
        return Choice(n, f"{threads_words(n)}, uno por núcleo", True)
    free = max(1, min(n, round(n - busy)))
    if free == n:
        return Choice(n, f"{threads_words(n)}, uno por núcleo libre", True)
    return Choice(
        free,
        f"{threads_words(free)}: otros programas ocupan {number(busy, 1)} de los {n} núcleos"
        + " (--threads N para elegir)",
        True,
    )


def set_threads(threads: int) -> None:
    """Compute with `threads` from now on: in the main thread only (see the module's docstring)."""
    if threading.current_thread() is threading.main_thread():
        torch.set_num_threads(threads)


def use(choice: Choice) -> Choice:
    set_threads(choice.threads)
    return choice


@contextmanager
def limited(threads: int):
    """At most `threads` for the block, then as before. In any thread but the main one it does nothing: a server's
    requests compute with the threads the server chose at its start."""
    before = torch.get_num_threads()
    if threads >= before or threading.current_thread() is not threading.main_thread():
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def for_steps(model, rows: int, device: torch.device):
    """Generation's small steps: a step of a small model on a few rows is microseconds of work per operation, and
    waking a second thread for each costs more than it saves (bench/generate_speed.py): one thread."""
    size = sum(p.numel() for p in model.parameters()) * rows
    return limited(1 if device.type == "cpu" and size < STEP_ALONE_BELOW else torch.get_num_threads())


class StepCheck:
    """A training's steps, timed. First: WARMUP steps untimed, then SAMPLE steps at the chosen threads and SAMPLE at
    half as many; the faster setting stays (the fewer threads when they tie). Then, watching: SLOW_STEPS steps in a
    row SLOWER times slower than usual mean that the machine got busy: half as many threads, timed again.
    `after_step` returns the Spanish line to say when it changes the threads."""

    def __init__(self, choice: Choice):
        self.threads = choice.threads  # what the steps compute with now
        self.plan = [self.threads, self.threads // 2] if self.threads > 1 else []  # settings still to time, in order
        self.times: dict[int, list[float]] = {}
        self.skip = WARMUP  # steps left untimed
        self.usual: float | None = None  # seconds of a usual step, once the timing is done
        self.slow = 0  # slow steps in a row

    def after_step(self, seconds: float) -> str | None:
        if self.skip:
            self.skip -= 1
            return None
        return self.time_setting(seconds) if self.plan else self.watch(seconds)

    def time_setting(self, seconds: float) -> str | None:
        self.times.setdefault(self.plan[0], []).append(seconds)
        if len(self.times[self.plan[0]]) < SAMPLE:
            return None
        self.plan.pop(0)
        if self.plan:  # the next setting; its first step is not timed
            set_threads(self.plan[0])
            self.skip = 1
            return None
        return self.decide()

    def decide(self) -> str | None:
        medians = {n: statistics.median(t) for n, t in self.times.items()}
        best = min(medians, key=lambda n: (medians[n], n))
        before, self.threads, self.usual = self.threads, best, medians[best]
        set_threads(best)
        if best == before:
            return None
        return (
            f"Con {threads_words(best)} los pasos van {number(medians[before] / medians[best], 1)} veces más rápido "
            f"que con {before}: otro programa usa la CPU; sigo así (--threads N para elegir)."
        )

    def watch(self, seconds: float) -> str | None:
        if self.usual is None or self.threads == 1:
            return None
        self.slow = self.slow + 1 if seconds > SLOWER * self.usual else 0
        if self.slow < SLOW_STEPS:
            return None
        self.threads, self.slow = self.threads // 2, 0
        set_threads(self.threads)
        self.plan, self.times, self.skip = [self.threads], {}, 1  # the new usual step
        return (
            f"Los pasos tardan {SLOWER:g} veces más que antes: otro programa usa la CPU; sigo con "
            f"{threads_words(self.threads)} (--threads N para elegir)."
        )
