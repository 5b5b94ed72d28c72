"""The recipe, measured: train each variant for a budget of seconds with each seed, score the whole validation split.

    python bench/ablate.py --corpus quijote --budget 120 --seeds 1 2 [--preset clasico]
                           [--variants clasico,rotary,...] [--variant NAME:key=value,key=value ...]
                                                                                → one JSON line per run

A variant is a set of --set overrides on the preset (the classic GPT by default). The named variants are the switches
of issue 16 one at a time, and `modern`, `modern_muon`: several at once. The schedule follows the clock over the
budget, and evaluation is not counted in it (as in time_to_loss.py).
"""

import argparse
import json
import tempfile
import time

from machine import cpu_info

from taller.config import Config
from taller.training.loop import train

MODERN = [
    "pos_encoding=rotary",
    "norm=rmsnorm",
    "qk_norm=true",
    "activation=relu2",
    "zero_init=true",
    "schedule=trapezoid",
]
VARIANTS = {
    "clasico": [],
    "rotary": ["pos_encoding=rotary"],
    "rmsnorm_qknorm": ["norm=rmsnorm", "qk_norm=true"],
    "relu2": ["activation=relu2"],
    "zero_init": ["zero_init=true"],
    "trapezoid": ["schedule=trapezoid"],
    "tied": ["tie_weights=true"],
    "muon": ["optimizer=muon"],
    "bigram": ["bigram_buckets=4096"],
    "value_embeddings": ["value_embeddings=true"],
    "logit_cap": ["logit_cap=30"],
    "modern": MODERN,
    "modern_bigram": MODERN + ["bigram_buckets=4096"],
    "modern_muon": MODERN + ["optimizer=muon"],
}


def run(preset: str, corpus: str, overrides: list[str], budget: float, seed: int) -> dict:
    """One training of `budget` seconds; its figures."""
    cfg = Config.preset(preset)
    cfg.data.corpus = corpus
    cfg.train.mix_slice = 0.0  # never mixed: the whole training text
    cfg.apply_overrides(overrides)
    cfg.train.max_time, cfg.train.seed = budget, seed
    cfg.train.samples, cfg.train.plot_every = 0, 0  # nothing beyond the loss
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, f"{out}/run", progress=False, log=lambda *_: None)
    s = result.state
    return {
        "train_s": s["train_time"],
        "steps": s["step"],
        "chars_per_s": s["chars_per_s"],
        "parameters": s["parameters"],
        "val_loss_nats": s["val_loss"],
        "val_bpc": s["val_bpc"],
        "wall_s": time.perf_counter() - started,
    }


def chosen_variants(names: str, extra: list[str]) -> dict[str, list[str]]:
    variants = {name: VARIANTS[name] for name in names.split(",") if name} if names else dict(VARIANTS)
    for spec in extra:  # NAME:key=value,key=value
        name, _, pairs = spec.partition(":")
        variants[name] = [p for p in pairs.split(",") if p]
    return variants


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("--budget", type=float, default=120, help="seconds of training per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--preset", default="clasico", help="what every variant changes")
    p.add_argument("--variants", default="", help=f"comma-separated, from: {', '.join(VARIANTS)} (default: all)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...", help="a variant of your own")
    a = p.parse_args()
    machine = cpu_info()
    for seed in a.seeds:  # seed by seed: a cut-short session still has every variant once
        for name, overrides in chosen_variants(a.variants, a.variant).items():
            figures = run(a.preset, a.corpus, overrides, a.budget, seed)
            print(
                json.dumps(
                    {
                        "bench": "ablate",
                        "variant": name,
                        "preset": a.preset,
                        "overrides": overrides,
                        "corpus": a.corpus,
                        "budget_s": a.budget,
                        "seed": seed,
                        **figures,
                        **machine,
                    }
                ),
                flush=True,
            )
