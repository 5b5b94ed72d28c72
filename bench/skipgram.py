"""Skip-gram training speed and quality: trains the `skipgram` preset (or a changed copy) and prints one JSON line
with pairs/s, the val loss before and after, and a few of the lesson's questions (neighbours and analogy ranks).

    python bench/skipgram.py [--corpus quijote] [--epochs N | --max-time S] [--set key=value ...]  → one JSON line
"""

import argparse
import json
import tempfile
import time

from machine import cpu_info

from taller.config import Config
from taller.inspect.words import WordVectors
from taller.runs.metrics import read_metrics
from taller.training.loop import train

NEAR = ["sancho", "caballero", "dulcinea", "rocinante"]
ANALOGIES = [("rey", "hombre", "mujer", "reina"), ("caballero", "don", "doña", "reina")]

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-time", type=float, default=None, help="seconds of training instead of epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    a = p.parse_args()
    cfg = Config.preset("skipgram")
    cfg.data.corpus = a.corpus
    cfg.apply_overrides(a.set)
    if a.epochs:
        cfg.train.epochs = a.epochs
    if a.max_time:
        cfg.train.max_time = a.max_time
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = train(cfg, f"{out}/run", progress=False, log=lambda *_: None)
        if getattr(run, "interrupted", False):
            raise SystemExit("skipgram: interrupted; no figure.")
        wall = time.perf_counter() - started
        s, metrics = run.state, read_metrics(run.dir)
        vectors = WordVectors.load(run.dir)
        known = [w for w in NEAR if w in vectors.vocab.index]
        near = {
            w: [(r.word, round(r.similarity, 3)) for r in vectors.ranked(vectors.near_scores(w), [w], 2)] for w in known
        }
        ranks = {}
        for x, y, z, expected in ANALOGIES:
            if all(w in vectors.vocab.index for w in (x, y, z, expected)):
                rank, competing, sim = vectors.rank_of(vectors.analogy_scores(x, y, z), expected, [x, y, z])
                ranks[f"{x}-{y}+{z}"] = {
                    "expected": expected,
                    "rank": rank,
                    "of": competing,
                    "similarity": round(sim, 3),
                }
    print(
        json.dumps(
            {
                **cpu_info(),
                "bench": "skipgram",
                "corpus": a.corpus,
                "overrides": a.set,
                "epochs": s["epoch"],
                "steps": s["step"],
                "vocab": s["vocab_size"],
                "train_words": s["train_words"],
                "train_s": round(s["train_time"], 1),
                "wall_s": round(wall, 1),
                "pairs_per_s": round(s["pairs_per_s"]),
                "val_loss_start": round(metrics[0]["val_loss"], 4),
                "val_loss": round(s["val_loss"], 4),
                "near": near,
                "analogies": ranks,
            },
            ensure_ascii=False,
        )
    )
