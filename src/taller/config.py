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

from taller.errors import TallerError


@dataclass
class ModelConfig:
    kind: str = "transformer"  # transformer | lstm | ngram
    vocab_size: int = 0  # filled in from the tokenizer
    block_size: int = 64  # context: how many characters the model sees (lstm: the training window)
    d_model: int = 128  # width of the residual stream (lstm: the hidden state)
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 512  # hidden width of the feed-forward block
    dropout: float = 0.1
    pos_encoding: str = "sinusoidal"  # sinusoidal | learned
    tie_weights: bool = False  # share the embedding and output matrices
    attention: str = "fused"  # fused (scaled_dot_product_attention) | explicit (readable, same numbers)
    d_embed: int = 0  # lstm: width of the character vectors (0 = d_model)
    order: int = 8  # ngram: n, the characters it counts together (context of n-1); 8 was best on a slice of train
    # skipgram (word vectors; d_model is the vectors' width): see taller/embeddings.py
    window: int = 5  # skipgram: a centre sees up to this many words on each side
    negatives: int = 5  # skipgram: random "wrong" context words per true pair
    min_count: int = 5  # skipgram: words seen fewer times in the training text are left out
    subsample: float = 1e-3  # skipgram: frequent words are thinned out above this share of the text (0 = never)


@dataclass
class DataConfig:
    corpus: str = "refranes"  # a corpus name or a path to a UTF-8 text file
    split: str = "auto"  # auto | lines (random whole lines for val) | tail (the last part for val)
    #                      | after (val: the val_fraction × max_chars characters that follow the first max_chars)
    val_fraction: float = 0.1
    split_seed: int = 1234  # fixed rule for choosing validation lines
    start_marker: str = ""  # the text starts where this first appears ("" = at the beginning)
    end_marker: str = ""  # ...and ends where this first appears (as the lesson's find(): absent = all but the last character)
    lowercase: bool = False
    join_lines: bool = False  # newlines become spaces (one long line)
    max_chars: int = 0  # keep only the first max_chars characters (0 = all)
    tokenizer: str = "char"  # char | bpe (byte-level, learnt from train) | word (frequent words, the rest spelled)
    tokenizer_vocab: int = 512  # bpe and word: tokens in the vocabulary (char: every character of the text)


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
    sample_chars: int = 200  # at most this many characters per final sample
    temperature: float = 1.0  # of the final samples
    sampler: str = "random"  # random (windows anywhere) | shuffled (every window once per epoch, in random order)
    stride: int = 1  # shuffled: characters between the starts of consecutive windows
    compile: bool = False  # torch.compile the model


MODEL_KINDS = ("transformer", "lstm", "ngram", "skipgram")
TOKENIZER_KINDS = ("char", "bpe", "word")
MAX_ORDER = 12

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
        from taller.files import atomic_write

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

        need(m.kind in MODEL_KINDS, f"model.kind='{m.kind}' no existe; usa {', '.join(MODEL_KINDS)}.")
        need(1 <= m.block_size <= 8192, f"model.block_size={m.block_size} debe estar entre 1 y 8192.")
        need(1 <= m.d_model <= 8192, f"model.d_model={m.d_model} debe estar entre 1 y 8192.")
        need(1 <= m.n_heads <= 256, f"model.n_heads={m.n_heads} debe estar entre 1 y 256.")
        need(m.kind != "transformer" or m.d_model % m.n_heads == 0,
             f"model.d_model={m.d_model} no es divisible entre model.n_heads={m.n_heads}; "
             f"elige, por ejemplo, n_heads={_divisor_near(m.d_model, m.n_heads)}.")
        need(1 <= m.n_layers <= 256, f"model.n_layers={m.n_layers} debe estar entre 1 y 256.")
        need(1 <= m.d_ff <= 65536, f"model.d_ff={m.d_ff} debe estar entre 1 y 65536.")
        need(0.0 <= m.dropout < 1.0, f"model.dropout={m.dropout} debe estar en [0, 1).")
        need(m.pos_encoding in ("sinusoidal", "learned"), f"model.pos_encoding='{m.pos_encoding}': usa sinusoidal o learned.")
        need(m.attention in ("fused", "explicit"), f"model.attention='{m.attention}': usa fused o explicit.")
        need(0 <= m.d_embed <= 8192, f"model.d_embed={m.d_embed} debe estar entre 0 (= d_model) y 8192.")
        need(1 <= m.order <= MAX_ORDER, f"model.order={m.order} debe estar entre 1 y {MAX_ORDER}.")
        need(d.tokenizer in TOKENIZER_KINDS, f"data.tokenizer='{d.tokenizer}' no existe; usa {', '.join(TOKENIZER_KINDS)}.")
        need(d.tokenizer != "bpe" or 256 <= d.tokenizer_vocab <= 200_000, f"data.tokenizer_vocab={d.tokenizer_vocab}: "
             "un BPE de bytes empieza con 256 tokens (uno por byte); usa entre 256 y 200000, por ejemplo 512.")
        need(d.tokenizer != "word" or 2 <= d.tokenizer_vocab <= 200_000,
             f"data.tokenizer_vocab={d.tokenizer_vocab}: usa entre 2 y 200000 palabras, por ejemplo 2000.")
        need(m.kind != "ngram" or d.tokenizer == "char", f"el n-grama cuenta caracteres y no admite "
             f"data.tokenizer='{d.tokenizer}'; usa --tokenizer char (o un transformer o lstm con {d.tokenizer}).")
        need(1 <= m.window <= 50, f"model.window={m.window} debe estar entre 1 y 50 palabras.")
        need(1 <= m.negatives <= 100, f"model.negatives={m.negatives} debe estar entre 1 y 100.")
        need(m.min_count >= 1, f"model.min_count={m.min_count} debe ser al menos 1.")
        need(0.0 <= m.subsample < 1.0, f"model.subsample={m.subsample} debe estar en [0, 1) (0 = sin submuestreo).")
        need(m.kind != "skipgram" or d.tokenizer == "char", f"el skip-gram hace su propio vocabulario de palabras y no "
             f"usa data.tokenizer='{d.tokenizer}'; quita --tokenizer (o entrena un transformer o lstm con {d.tokenizer}).")
        need(d.split in ("auto", "lines", "tail", "after"), f"data.split='{d.split}': usa auto, lines, tail o after.")
        need(d.max_chars >= 0, f"data.max_chars={d.max_chars} no puede ser negativo (0 = todo el texto).")
        need(d.split != "after" or d.max_chars > 0, "data.split='after' necesita data.max_chars > 0 "
             "(la validación son los caracteres que siguen a los primeros max_chars).")
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
        need(t.epochs >= 1, f"train.epochs={t.epochs} debe ser al menos 1 (con train.max_time > 0 manda el reloj y "
             "train.max_steps corta antes).")
        need(t.max_time >= 0 and math.isfinite(t.max_time), f"train.max_time={t.max_time} no puede ser negativo.")
        need(t.max_steps >= 0, f"train.max_steps={t.max_steps} no puede ser negativo.")
        need(t.eval_chars >= 1, f"train.eval_chars={t.eval_chars} debe ser al menos 1.")
        need(t.log_every >= 1, f"train.log_every={t.log_every} debe ser al menos 1.")
        need(t.plot_every >= 0, f"train.plot_every={t.plot_every} no puede ser negativo.")
        need(0 <= t.samples <= 1000, f"train.samples={t.samples} debe estar entre 0 y 1000.")
        need(1 <= t.sample_chars <= 100_000, f"train.sample_chars={t.sample_chars} debe estar entre 1 y 100000.")
        need(t.temperature > 0, f"train.temperature={t.temperature} debe ser positiva (por ejemplo 0.7).")
        need(t.sampler in ("random", "shuffled"), f"train.sampler='{t.sampler}': usa random o shuffled.")
        need(t.stride >= 1, f"train.stride={t.stride} debe ser al menos 1.")
        # A model that would not fit in memory is refused before anything is allocated.
        params = estimate_parameters(m)
        need(params <= 2_000_000_000, f"el modelo tendría unos {params / 1e9:.1f} mil millones de parámetros; "
             "reduce d_model, d_ff o n_layers.")
        return self


def estimate_parameters(m: ModelConfig) -> int:
    v = max(m.vocab_size, 256)
    if m.kind == "ngram":
        return 0  # counts, not parameters: their number depends on the text
    if m.kind == "skipgram":
        return 2 * m.vocab_size * m.d_model  # two tables of word vectors
    if m.kind == "lstm":
        e, h = m.d_embed or m.d_model, m.d_model
        return v * e + 4 * h * (e + h + 2) + (m.n_layers - 1) * 4 * h * (2 * h + 2) + h * v + v
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
    raise TallerError(f"{where}: clave desconocida {key!r}. Claves válidas: {known}.")


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
