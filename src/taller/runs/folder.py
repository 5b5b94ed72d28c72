"""A run folder: created once, described by state.json, loaded by every command after `train`.

    runs/NAME/  config.toml  tokenizer.json (or vocab.json)  model.safetensors  optim.safetensors  state.json
                metrics.jsonl  parameters.txt  samples.txt  table.txt  epoch_NNN.png  loss.png  report.html …
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taller._version import __version__
from taller.config import Config
from taller.data.tokenizers import load_tokenizer
from taller.errors import TallerError
from taller.models import build_model, kind_of
from taller.runs.checkpoint import checkpoint_file, load_tensors, read_state, unflatten_optimizer
from taller.sampling import generate


@dataclass
class Run:
    dir: Path
    config: Config
    tokenizer: object  # CharTokenizer, WordTokenizer or BpeTokenizer (the same interface); a skip-gram's WordVocab
    model: torch.nn.Module
    state: dict = field(default_factory=dict)
    interrupted: bool = False

    @property
    def line_corpus(self) -> bool:
        return bool(self.state.get("line_corpus", False))

    def generate(self, prompt: str = "", n: int = 1, **kwargs):
        """Samples that continue `prompt` (see taller.sampling.generate for the options)."""
        kwargs.setdefault("stop", "\n" if self.line_corpus else None)
        return generate(self.model, self.tokenizer, prompt, n, **kwargs)


# --- creating a run folder ----------------------------------------------------------------------------------------


def check_run_dir(out: Path, resume: bool) -> None:
    """Refuse, before anything is written, to start over an existing run or to resume a missing one."""
    if resume and not (out / "state.json").exists():
        raise TallerError(f"--resume: {out} no tiene ninguna ejecución que continuar (falta state.json).")
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TallerError(f"{out} ya existe y no está vacía; usa --resume para continuar esa ejecución "
                          "o elige otra carpeta con --out. No se ha tocado nada.")


def create_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TallerError(f"no puedo crear {out}: {e.strerror}; elige otra carpeta con --out.") from None


def run_state(*, step: int, epoch: int, train_time: float, finished: bool, corpus, split, parameters: int,
              **extra) -> dict:
    """What state.json says of a run, for every kind: where it is, what it read, which taller wrote it."""
    return {"step": step, "epoch": epoch, "train_time": train_time, "finished": finished, "taller": __version__,
            "corpus": corpus.name, "split": split.kind, "line_corpus": corpus.lines, "parameters": parameters, **extra}


# --- loading it ---------------------------------------------------------------------------------------------------


def load_weights(run_dir: Path, model, state: dict) -> None:
    """The committed weights of a run folder into `model` (names, shapes and dtypes checked before reading)."""
    counted = kind_of(model.cfg).counted  # counts vary in size with the text: the model checks them itself
    expected = None if counted else model.state_dict()
    tensors, _ = load_tensors(checkpoint_file(run_dir, "model.safetensors", state), expected=expected)
    model.load_state_dict(tensors)


def load_optimizer(run_dir: Path, state: dict, optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's state into `optimizer`; returns every tensor of optim.safetensors (random generators too)."""
    tensors, meta = load_tensors(checkpoint_file(run_dir, "optim.safetensors", state))
    try:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta))
    except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        raise TallerError(f"{run_dir}/optim.safetensors no corresponde a este modelo ({e}); no se puede continuar.") from None
    return tensors


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a run folder of a language model for generation and inspection (never unpickles anything)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise TallerError(f"no existe la carpeta de ejecución {run_dir}; entrena una con `taller train --out {run_dir}`.")
    state = read_state(run_dir)
    config = Config.load(run_dir / "config.toml", saved=True).validate()
    kind = kind_of(config)
    if not kind.language_model:
        raise kind.refuse(run_dir)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    if tokenizer.vocab_size != config.model.vocab_size:
        raise TallerError(f"tokenizer.json tiene {tokenizer.vocab_size} tokens pero config.toml dice "
                          f"vocab_size={config.model.vocab_size}; la carpeta mezcla ficheros de ejecuciones distintas.")
    model = build_model(config.model)
    load_weights(run_dir, model, state)
    model.to(device).eval()
    return Run(run_dir, config, tokenizer, model, state)
