"""The explorer server under load: 10,000 requests on loopback from this (second) process — normal ones and hostile
ones (among them chunked bodies over the limit and wrong Host headers) — with p50/p99 latency, answers by status
code, and the server's peak memory; then one chunked body of --big-mb MB, with the server's memory before and after.

    python bench/serve_load.py [--runs runs/] [--requests 10000] [--threads 8] [--big-mb 300]     → one JSON line

Without --runs it first trains a small run on the refranes (TALLER_DATA) for a few seconds.
"""

import argparse
import http.client
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from machine import cpu_info

HOSTILE_PROMPT = "No hay " * 15_000  # 105,000 characters
PIECE = 64 * 1024  # bytes of each piece of a chunked body
WRONG_HOSTS = ["evil.example", "localhost.evil.example:8000", "127.0.0.1.nip.io", "[::2]", ""]


def pieces(size: int):
    """A chunked body of `size` bytes (spaces), sent piece by piece as it is generated."""
    for _ in range(size // PIECE):
        yield b" " * PIECE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def request_mix(run: str, rng: random.Random):
    """(method, path, body, headers) of one request: 65% normal, 35% hostile. A body ("chunked", N) is sent in pieces
    with no Content-Length: the server only learns its size as it reads it."""
    r = rng.random()
    if r >= 0.90:
        return hostile_transfer(run, r, rng)
    method, path, body = plain_request(run, r, rng)
    return method, path, body, {"Content-Type": "application/json"} if body else {}


def hostile_transfer(run: str, r: float, rng: random.Random):
    """The last 10% of the mix: wrong Host headers (3%), small chunked bodies (2%), chunked bodies of 2 MB (5%)."""
    if r < 0.93:
        return (
            "POST",
            "/api/predict",
            json.dumps({"run": run, "text": "No"}),
            {"Host": rng.choice(WRONG_HOSTS), "Content-Type": "application/json"},
        )
    if r < 0.95:  # a list of pieces is sent chunked: a good request the server reads as it comes
        text = json.dumps({"run": run, "text": rng.choice(["No hay ", "Más vale "])}).encode()
        return "POST", "/api/predict", [text[:10], text[10:]], {"Content-Type": "application/json"}
    return "POST", "/api/predict", ("chunked", 2 * 1024 * 1024), {"Content-Type": "application/json"}


def plain_request(run: str, r: float, rng: random.Random):
    """(method, path, body) of the first 90% of the mix: 65 points normal, 25 hostile."""
    prompt = rng.choice(["No hay ", "Más vale ", "A quien madruga, ", "El que ", ""])
    if r < 0.45:
        return "POST", "/api/predict", json.dumps({"run": run, "text": prompt})
    if r < 0.53:
        return "POST", "/api/attention", json.dumps({"run": run, "text": prompt + "mal"})
    if r < 0.61:
        return "POST", "/api/sample", json.dumps({"run": run, "text": prompt, "temperature": 0.8})
    if r < 0.63:  # whole-line generations, several at once across threads
        return "POST", "/api/sample", json.dumps({"run": run, "text": prompt, "temperature": 1.0, "mode": "line"})
    if r < 0.65:
        return "GET", "/api/runs", None
    if r < 0.71:
        return "POST", "/api/predict", json.dumps({"run": run, "text": HOSTILE_PROMPT})
    if r < 0.76:
        return "POST", "/api/predict", '{"run": "' + run + '", "text": '  # malformed JSON
    if r < 0.80:
        return (
            "POST",
            "/api/predict",
            json.dumps({"run": rng.choice(["../" + run, "..", "/etc/passwd", "a/../b"]), "text": "x"}),
        )
    if r < 0.84:
        return "POST", "/api/predict", json.dumps({"run": "no-existe", "text": "x"})
    if r < 0.87:
        return "POST", "/api/sample", json.dumps({"run": run, "text": "x", "temperature": "caliente"})
    return "GET", rng.choice(["/static/../app.py", "/../../etc/passwd", "/api/nada"]), None


def answer(conn: http.client.HTTPConnection, method: str, path: str, body, headers: dict) -> int | str:
    """The status of one request sent on `conn`, or the name of the error that broke the connection (closed then:
    http.client opens it again on the next request)."""
    if isinstance(body, tuple):  # ("chunked", size): no Content-Length, Transfer-Encoding: chunked
        body = pieces(body[1])
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        return type(e).__name__


def worker(port: int, jobs: list, results: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for method, path, body, headers in jobs:
        start = time.perf_counter()
        status = answer(conn, method, path, body, headers)
        results.append((status, time.perf_counter() - start))
    conn.close()


def big_chunked(pid: int, port: int, mb: int) -> dict:
    """One chunked POST of `mb` MB to /api/predict: its status, the seconds to send it and read the answer, and the
    server's memory before and after."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    before = memory_kb(pid, "VmRSS")
    start = time.perf_counter()
    status = answer(conn, "POST", "/api/predict", ("chunked", mb * 1024 * 1024), {"Content-Type": "application/json"})
    conn.close()
    return {
        "big_chunked_mb": mb,
        "big_chunked_status": status,
        "big_chunked_s": round(time.perf_counter() - start, 1),
        "big_rss_mb_before": round(before / 1024, 1),
        "big_rss_mb_after": round(memory_kb(pid, "VmRSS") / 1024, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", help="folder of run folders (default: train a small one)")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--big-mb", type=int, default=300, help="the chunked body sent alone at the end (MB)")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="taller-load-")
    runs = Path(a.runs) if a.runs else Path(tmp)
    if not a.runs:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "taller",
                "train",
                "--corpus",
                "refranes",
                "--steps",
                "150",
                "--quiet",
                "--set",
                "plot_every=0",
                "--set",
                "samples=1",
                "--out",
                str(runs / "refranes"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    run = sorted(d.name for d in runs.iterdir() if (d / "state.json").exists())[0]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "taller", "serve", str(runs), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):  # until the port answers (at most a minute)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            server.poll() if server.returncode is None else sys.exit("el servidor no arrancó")
            time.sleep(0.1)
    rng = random.Random(0)
    jobs = [request_mix(run, rng) for _ in range(a.requests)]
    results: list = []
    rss_samples = []
    threads = [threading.Thread(target=worker, args=(port, jobs[i :: a.threads], results)) for i in range(a.threads)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss_samples.append(memory_kb(server.pid, "VmRSS"))
        threads[0].join(0.5)
    elapsed = time.perf_counter() - started
    big = big_chunked(server.pid, port, a.big_mb) if server.poll() is None else {}
    alive = server.poll() is None
    peak_kb = memory_kb(server.pid, "VmHWM") if alive else 0
    server.terminate()
    server.wait(10)
    latencies = sorted(t for _, t in results)
    half = len(rss_samples) // 2
    print(
        json.dumps(
            {
                **cpu_info(),
                "bench": "serve_load",
                "requests": len(results),
                "threads": a.threads,
                "seconds": round(elapsed, 1),
                "requests_per_s": round(len(results) / elapsed, 1),
                "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
                "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
                "by_status": dict(sorted(Counter(str(s) for s, _ in results).items())),
                "server_alive_after": alive,
                "server_peak_rss_mb": round(peak_kb / 1024, 1),
                "rss_mb_first_half_max": round(max(rss_samples[:half] or [0]) / 1024, 1),
                "rss_mb_second_half_max": round(max(rss_samples[half:] or [0]) / 1024, 1),
                **big,
            }
        )
    )


if __name__ == "__main__":
    main()
