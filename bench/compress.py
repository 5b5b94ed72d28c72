"""Real compressed files: each run compresses its own validation text with `taller compress`, the result is
decompressed and compared, and the real size is set beside the bits/char the run claims and beside xz, bzip2,
zlib, 7-Zip's PPMd (order 8) and zpaq -m5 where installed, each given the training text
(size(train + val) − size(train)).

    python bench/compress.py RUN [RUN ...]        → one JSON line per run, then one per compressor
    --cm                                          → each run also with `taller compress --cm` (a char run's network
                                                    inside the CM: «cm + red»), and once the CM alone («cm (solo
                                                    contar)», one row, no network, ideal bits only)

Needs the runs' corpus (TALLER_DATA). Optionally `--adapt sgd:0.03,adam:1e-4`: dynamic evaluation of each run
with those settings (an n-gram counts what it reads instead), one JSON line per setting.
"""

import argparse
import json
import platform
import time

from taller.apps import compress_cm
from taller.apps.compare import compressor_rows
from taller.apps.compress import compress_text, decompress_bytes
from taller.runs.folder import load_run, run_split
from taller.training.adapt import Adaptation, can_adapt, score_run


def machine() -> dict:
    """The CPU and its instruction sets (Linux), and the date."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    flags = next((line for line in lines if line.startswith("flags")), "")
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return {
        "cpu": cpu or platform.processor(),
        "avx512": "avx512f" in flags,
        "amx": "amx_tile" in flags,
        "date": time.strftime("%Y-%m-%d"),
    }


def compress_run(path: str, cm: bool = False) -> dict:
    run = load_run(path)
    val = run_split(run.config, "comprimir la validación").val
    started = time.perf_counter()
    packed = compress_text(run, val, cm=cm)
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    back = decompress_bytes(run, packed.data)
    decompress_s = time.perf_counter() - started
    claimed = run.state["val_bpc"]
    return {
        "bench": "compress",
        "run": path,
        "kind": run.config.model.kind + (" + cm" if cm else ""),
        "chars": packed.chars,
        "bytes": len(packed.data),
        "real_bpc": packed.bits_per_char,
        "claimed_bpc": claimed,
        "ideal_bpc": packed.ideal_bits / packed.chars,
        "real_over_claimed": packed.bits_per_char / claimed - 1,
        "round_trip": back == val,
        "compress_s": compress_s,
        "decompress_s": decompress_s,
        **machine(),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--adapt", default="", help="settings optimizer:lr separated by commas, e.g. sgd:0.03,adam:1e-4")
    p.add_argument("--cm", action="store_true", help="each run inside the CM too, and the CM alone once")
    a = p.parse_args()
    for path in a.runs:
        print(json.dumps(compress_run(path)), flush=True)
        if a.cm:
            print(json.dumps(compress_run(path, cm=True)), flush=True)
        run = load_run(path)
        for setting in filter(None, a.adapt.split(",")):
            if not can_adapt(run):
                break
            optimizer, lr = setting.split(":")
            started = time.perf_counter()
            scores = score_run(run, Adaptation(optimizer, float(lr)))
            print(
                json.dumps(
                    {
                        "bench": "adapt",
                        "run": path,
                        "optimizer": optimizer,
                        "lr": float(lr),
                        "static_bpc": scores.static.bpc,
                        "adapt_bpc": scores.adapted.bpc,
                        "seconds": time.perf_counter() - started,
                        **machine(),
                    }
                ),
                flush=True,
            )
    split = run_split(load_run(a.runs[0]).config, "comparar con los compresores")
    if a.cm:
        started = time.perf_counter()
        data, _, ideal, _ = compress_cm.encode(split.train, split.val, None)
        row = {"bench": "cm alone", "real_bpc": 8 * len(data) / len(split.val), "ideal_bpc": ideal / len(split.val)}
        print(json.dumps(row | {"compress_s": time.perf_counter() - started, **machine()}), flush=True)
    for row in compressor_rows(split):
        print(
            json.dumps(
                {"bench": "compressor", "name": row.model, "bpc": row.val_bpc, "seconds": row.train_time, **machine()}
            ),
            flush=True,
        )
