"""taller — build a small language model from nothing, watch it learn, and look inside it.

    import taller
    corpus = taller.load_corpus("refranes")
    cfg = taller.preset("base", corpus="refranes", max_time=60)
    run = taller.train(cfg, "runs/mi-modelo")
    for s in run.generate("No hay ", n=3, seed=0):
        print(s.text)
"""

__version__ = "0.1.0"

from .config import Config  # noqa: E402
from .corpora import load_corpus  # noqa: E402
from .errors import TallerError  # noqa: E402
from .models import build_model  # noqa: E402
from .run import Run, load_run  # noqa: E402
from .tokenizers import CharTokenizer  # noqa: E402
from .train import train  # noqa: E402


def preset(name: str = "base", **overrides) -> Config:
    """A preset configuration with `key=value` overrides (e.g. corpus="quijote", max_time=60, d_model=256)."""
    cfg = Config.preset(name)
    for key, value in overrides.items():
        cfg.set(key, value, where=f"{key}=")
    return cfg


__all__ = ["Config", "Run", "TallerError", "CharTokenizer", "build_model", "load_corpus", "load_run", "preset", "train"]
