"""Configuration: three small dataclasses, TOML presets, `--set key=value` overrides, validation.

A run's full configuration is saved as `config.toml` in its folder, so every run can be repeated.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from .errors import TallerError


@dataclass
class ModelConfig:
    kind: str = "transformer"  # transformer (lstm and ngram come later)
    vocab_size: int = 0  # filled in from the tokenizer
    block_size: int = 64  # context: how many characters the model sees
    d_model: int = 128  # width of the residual stream
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 512  # hidden width of the feed-forward block
    dropout: float = 0.1
    pos_encoding: str = "sinusoidal"  # sinusoidal | learned
    tie_weights: bool = False  # share the embedding and output matrices
    attention: str = "fused"  # fused (scaled_dot_product_attention) | explicit (readable, same numbers)


@dataclass
class DataConfig:
    corpus: str = "refranes"  # a corpus name or a path to a UTF-8 text file
    split: str = "auto"  # auto | lines (random whole lines for val) | tail (the last part for val)
    val_fraction: float = 0.1
    split_seed: int = 1234  # fixed rule for choosing validation lines


@dataclass
class TrainConfig:
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 (autocast)
    batch_size: int = 32
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    epochs: int = 10  # an epoch is as many windows as the training text has characters
    max_time: float = 0.0  # seconds of training; > 0 replaces `epochs` and the schedule follows the clock
    max_steps: int = 0  # > 0 stops after this many steps (quick checks); the schedule still follows epochs/time
    eval_chars: int = 60_000  # characters of the val split scored at each epoch (all of it at the end)
    log_every: int = 25  # steps between train-loss entries in metrics.jsonl
    plot_every: int = 1  # epochs between epoch_NNN.png images (0 = none)
    samples: int = 5  # refranes written to samples.txt at the end
    prompt: str = ""  # prompt for the final samples ("" = start of a line)
    compile: bool = False  # torch.compile the model


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # --- building -------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, where: str = "la configuración") -> Config:
        cfg = cls()
        for section, values in d.items():
            if section not in SECTIONS:
                raise TallerError(f"{where}: sección desconocida [{section}]; las válidas son {', '.join(SECTIONS)}.")
            if not isinstance(values, dict):
                raise TallerError(f"{where}: [{section}] debe ser una tabla de claves.")
            for key, value in values.items():
                cfg.set(f"{section}.{key}", value, where=where)
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> Config:
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TallerError(f"no existe el fichero de configuración {path}.") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise TallerError(f"{path} no es TOML válido ({e}); revisa la sintaxis.") from None
        return cls.from_dict(d, where=str(path))

    @classmethod
    def preset(cls, name: str) -> Config:
        if name not in list_presets():
            raise TallerError(f"preset desconocido '{name}'; los disponibles son: {', '.join(list_presets())}.")
        text = resources.files("taller.configs").joinpath(f"{name}.toml").read_text(encoding="utf-8")
        return cls.from_dict(tomllib.loads(text), where=f"preset {name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        from .checkpoint import atomic_write

        atomic_write(path, tomli_w.dumps(self.to_dict()).encode("utf-8"))

    # --- overrides ------------------------------------------------------------------------------------------
    def set(self, key: str, value, where: str = "--set") -> None:
        """Set `section.key` (or a bare `key` that only one section has) to `value`, converting its type."""
        section, name = _find_key(key, where)
        obj = getattr(self, section)
        current = getattr(obj, name)
        setattr(obj, name, _coerce(value, type(current), f"{section}.{name}", where))

    def apply_overrides(self, pairs: list[str]) -> None:
        for pair in pairs:
            if "=" not in pair:
                raise TallerError(f"--set espera clave=valor (por ejemplo --set d_model=256), no '{pair}'.")
            key, value = pair.split("=", 1)
            self.set(key.strip(), value.strip())

    # --- validation -----------------------------------------------------------------------------------------
    def validate(self) -> Config:
        m, d, t = self.model, self.data, self.train

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise TallerError(f"configuración imposible: {msg}")

        need(m.kind in ("transformer",), f"model.kind='{m.kind}' no existe; usa transformer.")
        need(1 <= m.block_size <= 8192, f"model.block_size={m.block_size} debe estar entre 1 y 8192.")
        need(1 <= m.d_model <= 8192, f"model.d_model={m.d_model} debe estar entre 1 y 8192.")
        need(1 <= m.n_heads <= 256, f"model.n_heads={m.n_heads} debe estar entre 1 y 256.")
        need(m.d_model % m.n_heads == 0,
             f"model.d_model={m.d_model} no es divisible entre model.n_heads={m.n_heads}; "
             f"elige, por ejemplo, n_heads={_divisor_near(m.d_model, m.n_heads)}.")
        need(1 <= m.n_layers <= 256, f"model.n_layers={m.n_layers} debe estar entre 1 y 256.")
        need(1 <= m.d_ff <= 65536, f"model.d_ff={m.d_ff} debe estar entre 1 y 65536.")
        need(0.0 <= m.dropout < 1.0, f"model.dropout={m.dropout} debe estar en [0, 1).")
        need(m.pos_encoding in ("sinusoidal", "learned"), f"model.pos_encoding='{m.pos_encoding}': usa sinusoidal o learned.")
        need(m.attention in ("fused", "explicit"), f"model.attention='{m.attention}': usa fused o explicit.")
        need(d.split in ("auto", "lines", "tail"), f"data.split='{d.split}': usa auto, lines o tail.")
        need(0.0 < d.val_fraction < 0.5, f"data.val_fraction={d.val_fraction} debe estar entre 0 y 0.5.")
        need(t.device in ("auto", "cpu", "cuda", "mps"), f"train.device='{t.device}': usa auto, cpu, cuda o mps.")
        need(t.dtype in ("auto", "float32", "bfloat16"), f"train.dtype='{t.dtype}': usa auto, float32 o bfloat16.")
        need(1 <= t.batch_size <= 65536, f"train.batch_size={t.batch_size} debe estar entre 1 y 65536.")
        need(0.0 < t.lr < 10.0 and math.isfinite(t.lr), f"train.lr={t.lr} debe ser positivo (por ejemplo 3e-3).")
        need(0.0 <= t.min_lr <= t.lr, f"train.min_lr={t.min_lr} debe estar entre 0 y train.lr={t.lr}.")
        need(t.warmup_steps >= 0, f"train.warmup_steps={t.warmup_steps} no puede ser negativo.")
        need(t.weight_decay >= 0.0, f"train.weight_decay={t.weight_decay} no puede ser negativo.")
        need(0.0 <= t.beta1 < 1.0 and 0.0 <= t.beta2 < 1.0, "train.beta1 y train.beta2 deben estar en [0, 1).")
        need(t.grad_clip >= 0.0, f"train.grad_clip={t.grad_clip} no puede ser negativo (0 = sin recorte).")
        need(t.epochs >= 1 or t.max_time > 0 or t.max_steps > 0, "indica train.epochs ≥ 1, train.max_time > 0 o train.max_steps > 0.")
        need(t.max_time >= 0 and math.isfinite(t.max_time), f"train.max_time={t.max_time} no puede ser negativo.")
        need(t.max_steps >= 0, f"train.max_steps={t.max_steps} no puede ser negativo.")
        need(t.eval_chars >= 1, f"train.eval_chars={t.eval_chars} debe ser al menos 1.")
        need(t.log_every >= 1, f"train.log_every={t.log_every} debe ser al menos 1.")
        need(t.plot_every >= 0, f"train.plot_every={t.plot_every} no puede ser negativo.")
        need(0 <= t.samples <= 1000, f"train.samples={t.samples} debe estar entre 0 y 1000.")
        # A model that would not fit in memory is refused before anything is allocated.
        params = estimate_parameters(m)
        need(params <= 2_000_000_000, f"el modelo tendría unos {params / 1e9:.1f} mil millones de parámetros; "
             "reduce d_model, d_ff o n_layers.")
        return self


def estimate_parameters(m: ModelConfig) -> int:
    v = max(m.vocab_size, 256)
    per_layer = 4 * m.d_model * m.d_model + 2 * m.d_model * m.d_ff + 9 * m.d_model + m.d_ff
    return v * m.d_model * 2 + m.block_size * m.d_model + m.n_layers * per_layer


def list_presets() -> list[str]:
    files = resources.files("taller.configs").iterdir()
    return sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml"))


def _find_key(key: str, where: str) -> tuple[str, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTIONS and name in _fields(SECTIONS[section]):
            return section, name
    else:
        owners = [s for s, c in SECTIONS.items() if key in _fields(c)]
        if len(owners) == 1:
            return owners[0], key
    known = ", ".join(f"{s}.{n}" for s, c in SECTIONS.items() for n in _fields(c))
    raise TallerError(f"{where}: clave desconocida '{key}'. Claves válidas: {known}.")


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _coerce(value, typ: type, key: str, where: str):
    """Convert `value` (from TOML or a --set string) to the field's type, or explain why not."""
    try:
        if isinstance(value, str) and typ is not str:
            text = value.strip().lower()
            if typ is bool:
                if text in ("true", "1", "sí", "si", "yes", "on"):
                    return True
                if text in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            value = float(text) if typ is float else int(text)
        if typ is bool and not isinstance(value, bool):
            raise ValueError
        if typ is int and (isinstance(value, bool) or not float(value).is_integer()):
            raise ValueError
        if typ is str and not isinstance(value, str):
            raise ValueError
        if typ is float and isinstance(value, bool):
            raise ValueError
        result = typ(value)
        if typ is float and not math.isfinite(result):
            raise ValueError
        return result
    except (ValueError, TypeError, OverflowError):
        names = {int: "un entero", float: "un número", bool: "true o false", str: "un texto"}
        raise TallerError(f"{where}: {key} debe ser {names[typ]}, no {value!r}.") from None


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))
