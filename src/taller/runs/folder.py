"""A run folder, loaded: its configuration, tokenizer, model and state — what every command after `train` reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taller.files import atomic_write

from taller.runs.checkpoint import checkpoint_file, load_tensors, read_state, unflatten_optimizer
from taller.config import Config
from taller.errors import TallerError
from taller.data.tokenizers import CharTokenizer, load_tokenizer


@dataclass
class Run:
    dir: Path
    config: Config
    tokenizer: CharTokenizer  # or WordTokenizer, BpeTokenizer: the same interface
    model: torch.nn.Module
    state: dict = field(default_factory=dict)
    interrupted: bool = False

    @property
    def line_corpus(self) -> bool:
        return bool(self.state.get("line_corpus", False))

    def generate(self, prompt: str = "", n: int = 1, **kwargs):
        """Samples that continue `prompt` (see taller.generate.generate for the options)."""
        from taller.sampling import generate

        kwargs.setdefault("stop", "\n" if self.line_corpus else None)
        return generate(self.model, self.tokenizer, prompt, n, **kwargs)

    def write_samples(self, prompt: str = "", n: int = 5, seed: int | None = None, **kwargs) -> list:
        """samples.txt and table.txt for `n` new samples."""
        from taller.inspect import probability_table

        samples = self.generate(prompt, n, seed=seed, **kwargs)
        atomic_write(self.dir / "samples.txt", "".join(s.text + "\n" for s in samples).encode("utf-8"))
        atomic_write(self.dir / "table.txt", probability_table(samples).encode("utf-8"))
        return samples


def load_weights_into(run_dir: Path, model, optimizer=None, batches=None) -> dict:
    """Restore weights (and, to resume, optimizer and random generators) from a run folder; return its state."""
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    from taller.models import is_count_model

    expected = None if is_count_model(model) else model.state_dict()  # counts vary in size: the model checks them
    tensors, _ = load_tensors(checkpoint_file(run_dir, "model.safetensors", state), expected=expected)
    model.load_state_dict(tensors)
    if optimizer is not None:
        opt_tensors, meta = load_tensors(checkpoint_file(run_dir, "optim.safetensors", state))
        try:
            optimizer.load_state_dict(unflatten_optimizer(opt_tensors, meta))
            torch.set_rng_state(opt_tensors["rng.torch"])
            if batches is not None:
                batches.generator.set_state(opt_tensors["rng.data"])
        except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            raise TallerError(f"{run_dir}/optim.safetensors no corresponde a este modelo ({e}); no se puede continuar.") from None
    return state


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a run folder for generation and inspection (never unpickles anything)."""
    from taller.models import build_model

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise TallerError(f"no existe la carpeta de ejecución {run_dir}; entrena una con `taller train --out {run_dir}`.")
    state = read_state(run_dir)
    config = Config.load(run_dir / "config.toml").validate()
    if config.model.kind == "skipgram":
        raise TallerError(f"{run_dir} es un skip-gram (vectores de palabras), no un modelo de lenguaje: no escribe ni "
                          f"predice texto; pregúntale con `taller embeddings {run_dir} --near palabra`.")
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    if tokenizer.vocab_size != config.model.vocab_size:
        raise TallerError(f"tokenizer.json tiene {tokenizer.vocab_size} tokens pero config.toml dice "
                          f"vocab_size={config.model.vocab_size}; la carpeta mezcla ficheros de ejecuciones distintas.")
    model = build_model(config.model)
    load_weights_into(run_dir, model)
    model.to(device).eval()
    return Run(run_dir, config, tokenizer, model, state)
