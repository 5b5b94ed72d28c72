"""taller — build a small language model from nothing, watch it learn, and look inside it.

import taller
corpus = taller.load_corpus("refranes")
cfg = taller.preset("base", corpus="refranes", max_time=60)
run = taller.train(cfg, "runs/mi-modelo")
for s in run.generate("No hay ", n=3, seed=0):
    print(s.text)
"""

import importlib
from typing import TYPE_CHECKING

from taller._version import __version__
from taller.errors import TallerError

if TYPE_CHECKING:  # for readers and type checkers only: at run time Config is loaded on first use (below)
    from taller.config import Config

# The public names, each loaded from its module on first use (PEP 562): `import taller` stays light, so that the
# command line (taller/__main__.py) can catch a Ctrl-C that arrives while PyTorch is still loading.
LAZY = {
    "Config": "taller.config",
    "load_corpus": "taller.data.corpora",
    "build_model": "taller.models",
    "Run": "taller.runs.folder",
    "load_run": "taller.runs.folder",
    "CharTokenizer": "taller.data.tokenizers",
    "train": "taller.training.loop",
}


def __getattr__(name: str):
    if name not in LAZY:
        raise AttributeError(f"module 'taller' has no attribute {name!r}")
    value = getattr(importlib.import_module(LAZY[name]), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))


def preset(name: str = "base", **overrides) -> "Config":
    """A preset configuration with `key=value` overrides (e.g. corpus="quijote", max_time=60, d_model=256)."""
    cfg = __getattr__("Config").preset(name)
    for key, value in overrides.items():
        cfg.set(key, value, where=f"{key}=")
    return cfg


__all__ = [
    "__version__",
    "Config",
    "Run",
    "TallerError",
    "CharTokenizer",
    "build_model",
    "load_corpus",
    "load_run",
    "preset",
    "train",
]
