"""Many surprise maps at once: 60 concurrent /api/surprise requests of 20,000 characters (the most one request may
score) over a run of every language kind, a mix and a BERT (which must be refused, not fail), a quarter of them
against another run. The server scores at most two maps at a time (apps/web/replies.py); the others wait.

    python bench/surprise_load.py [--requests 60] [--chars 20000] [--steps 60]     → one JSON line

It trains the runs first on the refranes (TALLER_DATA): `--steps` steps of each preset, an 8-gram and a mix of the
Transformer and the 8-gram. The line says the answers by status (no 500 is the target), the slowest answer, and the
server's peak memory (VmHWM, importing torch included; the target is under 1 GB).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

from machine import cpu_info
from serve_load import free_port, memory_kb

from taller.data.corpora import load_corpus

RUNS = {  # folder -> the command line's training arguments
    "transformer": ["--model", "transformer"],
    "lstm": ["--model", "lstm"],
    "rnn": ["--model", "rnn"],
    "bigram": ["--model", "bigram"],
    "ngram": ["--model", "ngram"],
    "bert": ["--model", "bert"],
}


def train_runs(folder: Path, steps: int) -> list[str]:
    """Every run of RUNS, then the mix of the Transformer and the 8-gram: their folder names."""
    for name, args in RUNS.items():
        command = [sys.executable, "-m", "taller", "train", "--corpus", "refranes", "--steps", str(steps), "--quiet"]
        settings = ["--set", "plot_every=0", "--set", "samples=1", "--set", "report=false"]
        subprocess.run([*command, *args, *settings, "--out", str(folder / name)], check=True, stdout=subprocess.DEVNULL)
    mix = f"runs={folder / 'transformer'},{folder / 'ngram'}"
    command = [sys.executable, "-m", "taller", "train", "--model", "mix", "--set", mix, "--quiet"]
    subprocess.run([*command, "--out", str(folder / "mezcla")], check=True, stdout=subprocess.DEVNULL)
    return [*RUNS, "mezcla"]


def start_server(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "taller", "serve", str(folder), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):  # until it answers (at most a minute)
        try:
            HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/api/runs", headers={"Host": "127.0.0.1"})
            return server, port
        except OSError:
            time.sleep(0.1)
    sys.exit("el servidor no arrancó")


def ask(port: int, run: str, against: str, text: str) -> tuple[int, float]:
    """One surprise map: (status, seconds)."""
    started = time.perf_counter()
    connection = HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"run": run, "text": text, "against": against})
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json"}
    connection.request("POST", "/api/surprise", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--chars", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=60)
    a = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="taller-surprise-"))
    runs = train_runs(folder, a.steps)
    text = load_corpus("refranes").text[-a.chars :]  # the end of the refranes: their validation lines and some before
    server, port = start_server(folder)
    jobs = [(runs[i % len(runs)], runs[(i + 1) % len(runs)] if i % 4 == 1 else "") for i in range(a.requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(a.requests) as pool:
        answers = list(pool.map(lambda job: ask(port, *job, text), jobs))
    elapsed = time.perf_counter() - started
    peak = memory_kb(server.pid, "VmHWM")
    alive = server.poll() is None
    server.terminate()
    server.wait(10)
    by_run = {run: dict(Counter(str(s) for (r, _), (s, _) in zip(jobs, answers) if r == run)) for run in runs}
    print(
        json.dumps(
            {
                **cpu_info(),
                "bench": "surprise_load",
                "requests": a.requests,
                "chars": len(text),
                "seconds": round(elapsed, 1),
                "slowest_s": round(max(t for _, t in answers), 1),
                "by_status": dict(Counter(str(s) for s, _ in answers)),
                "by_run": by_run,
                "server_alive_after": alive,
                "server_peak_rss_mb": round(peak / 1024, 1),
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
