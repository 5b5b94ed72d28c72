"""Context mixing, counting only (models/cm/): the Quijote's validation coded given its training text, as the
compressors of bench/compress.py are (the 90 % / 10 % tail split).

    python bench/cm.py                     → the real file's bits/char, compress and decompress seconds, round trip
    python bench/cm.py --ablation NAME     → the ideal bits/char with one part removed (no decoding): sse, match,
                                             words, contexts (one row of mixer weights), confidence (no input states),
                                             mixer2 (one mixer), escapes (plain Witten–Bell), stationary (plain
                                             counts), order4 (orders 0 … 4 only)
    python bench/cm.py --network RUN       → the CM with a char-level run's network as one more input of its mixer,
                                             rows read side by side as `taller compress --cm` does (apps/compress_cm)
    --decode                               → with --network: also decode and check the round trip
    --tune                                 → tuning without the validation: the first 95 % of the TRAINING text counted,
                                             the ideal bits/char of the first --chars (default 40,000) of its last 5 %

One JSON line each. Needs TALLER_DATA (quijote.txt).
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from taller.apps import compress_cm
from taller.models.cm.codec import decode, encode
from taller.models.cm.predictor import Settings
from taller.runs.folder import load_run

ABLATIONS = {
    "sse": {"sse": False},
    "match": {"match": False},
    "words": {"words": False},
    "contexts": {"mixer_contexts": False},
    "confidence": {"confidence": False},
    "mixer2": {"mixer2": False},
    "escapes": {"escape_rate": 0.0},
    "stationary": {"limit": 1e18},
    "order4": {"orders": 4},
}


def split() -> tuple[str, str]:
    text = (Path(os.environ["TALLER_DATA"]) / "quijote.txt").read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ablation", choices=sorted(ABLATIONS))
    parser.add_argument("--chars", type=int, default=0, help="only the first CHARS of the validation")
    parser.add_argument("--network", metavar="RUN", help="a char-level run whose network the mixer reads too")
    parser.add_argument("--decode", action="store_true", help="with --network: decode too, check the round trip")
    parser.add_argument("--tune", action="store_true", help="code the training text's last 5 %%, not the validation")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="a Settings field (a number)")
    args = parser.parse_args()
    train, val = split()
    if args.tune:  # never the validation: the training text's own tail
        cut = int(len(train) * 0.95)
        train, val = train[:cut], train[cut:][: args.chars or 40_000]
    val = val[: args.chars] if args.chars else val
    settings = dataclasses.replace(Settings(), **ABLATIONS.get(args.ablation, {}))
    fields = {k: type(getattr(settings, k))(float(v)) for k, v in (a.split("=") for a in args.set)}  # words=0: False
    settings = dataclasses.replace(settings, **fields)
    if args.network:
        print(json.dumps(with_network(train, val, args.network, settings, args.decode)), flush=True)
        return
    started = time.perf_counter()
    data, ideal = encode(train, val, settings)
    row = {"bench": "cm", "tune": args.tune, "without": args.ablation, "set": args.set, "chars": len(val)}
    row["ideal_bpc"] = ideal / len(val)
    row |= {"real_bpc": 8 * len(data) / len(val), "compress_s": time.perf_counter() - started}
    if not args.ablation and not args.tune:
        started = time.perf_counter()
        row["round_trip"] = decode(train, data, len(val), settings) == val
        row["decompress_s"] = time.perf_counter() - started
    row["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(json.dumps(row), flush=True)


def with_network(train: str, val: str, path: str, settings: Settings, check: bool) -> dict:
    run = load_run(path)
    started = time.perf_counter()
    data, rows, ideal, _ = compress_cm.encode(train, val, run, settings)
    row = {"bench": "cm", "network": path, "settings": dataclasses.asdict(settings), "chars": len(val), "rows": rows}
    row |= {"ideal_bpc": ideal / len(val), "real_bpc": 8 * len(data) / len(val)}
    row["compress_s"] = time.perf_counter() - started
    if check:
        started = time.perf_counter()
        row["round_trip"] = compress_cm.decode(train, data, len(val), run, settings=settings) == val
        row["decompress_s"] = time.perf_counter() - started
    return row | {"date": time.strftime("%Y-%m-%d %H:%M")}


if __name__ == "__main__":
    main()
