"""A busy machine: `taller train` alone, and beside programs that keep cores busy, with the threads taller fits to
the load (the default) and with every core's thread (what torch does by itself, `--threads CORES`).

    python bench/busy.py [--corpus refranes] [--seconds 40] [--busy 1] [--repeats 1]
        → one JSON line per setting: {"busy": loops beside it, "threads": "auto"|N, "chars_per_s", "steps", …}
          and a last line with the share of its quiet speed that each kept ("kept_auto", "kept_all_cores")

The busy neighbours are plain Python loops (`while True: pass`), one per --busy, started before the training and
stopped after it. chars/s is the training's own (state.json: characters read / seconds of steps).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_info

LOOP = "while True: pass"


def train(corpus: str, seconds: float, threads: str, out: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "taller",
        "train",
        "--corpus",
        corpus,
        "--max-time",
        str(seconds),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "samples=0",
        "--set",
        "plot_every=0",
    ]
    if threads != "auto":
        command += ["--threads", threads]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds * 20 + 300)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    state = json.loads((out / "state.json").read_text())
    said = [line for line in done.stdout.splitlines() if "hilo" in line]
    return {
        "chars_per_s": round(state["chars_per_s"]),
        "steps": state["step"],
        "val_bpc": round(state["val_bpc"], 3),
        "said": said,
    }


def measure(corpus: str, seconds: float, busy: int, threads: str) -> dict:
    loops = [subprocess.Popen([sys.executable, "-c", LOOP]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return {"busy": busy, "threads": threads, **train(corpus, seconds, threads, Path(tmp) / "run")}
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="refranes")
    p.add_argument("--seconds", type=float, default=40)
    p.add_argument("--busy", type=int, default=1, help="busy loops beside the training")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    cores = str(len(os.sched_getaffinity(0)))
    rows = []
    for _ in range(a.repeats):  # alternating, so that the machine's drift falls on every setting alike
        for busy, threads in ((0, "auto"), (a.busy, "auto"), (a.busy, cores), (0, cores)):
            rows.append(measure(a.corpus, a.seconds, busy, threads))
            print(json.dumps({**rows[-1], "cpu": cpu_info()}, ensure_ascii=False), flush=True)

    def median(busy, threads):
        return statistics.median(r["chars_per_s"] for r in rows if r["busy"] == busy and r["threads"] == threads)

    quiet = median(0, "auto")
    print(
        json.dumps(
            {
                "quiet_auto": quiet,
                "quiet_all_cores": median(0, cores),
                "kept_auto": round(median(a.busy, "auto") / quiet, 3),
                "kept_all_cores": round(median(a.busy, cores) / median(0, cores), 3),
                "cpu": cpu_info(),
            }
        )
    )
