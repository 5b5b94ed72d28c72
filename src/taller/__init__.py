"""taller — build a small language model from nothing, watch it learn, and look inside it.

    import taller
    corpus = taller.load_corpus("refranes")
    cfg = taller.preset("base", corpus="refranes", max_time=60)
    run = taller.train(cfg, "runs/mi-modelo")
    for s in run.generate("No hay ", n=3, seed=0):
        print(s.text)
"""

from taller._version import __version__
from taller.config import Config
from taller.data.corpora import load_corpus
from taller.errors import TallerError
from taller.models import build_model
from taller.runs.folder import Run, load_run
from taller.data.tokenizers import CharTokenizer
from taller.training.loop import train


def preset(name: str = "base", **overrides) -> Config:
    """A preset configuration with `key=value` overrides (e.g. corpus="quijote", max_time=60, d_model=256)."""
    cfg = Config.preset(name)
    for key, value in overrides.items():
        cfg.set(key, value, where=f"{key}=")
    return cfg


__all__ = ["__version__", "Config", "Run", "TallerError", "CharTokenizer", "build_model", "load_corpus", "load_run", "preset", "train"]
