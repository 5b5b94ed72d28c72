"""Configuration: [model] (declared by each kind beside its model), [data] and [train]; TOML presets, `--set key=value`
overrides, validation.

A run's full configuration is saved as `config.toml` in its folder, so every run can be repeated.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from taller.errors import TallerError
from taller.files import MB, atomic_write, read_bounded
from taller.models import BY_PASSES, KINDS, ModelConfig, kind_named, need
from taller.models.kind import by_passes, guessed_tokens_per_s
from taller.text import number, short, thousands

CONFIG_LIMIT = 1 * MB  # a configuration is a few hundred bytes
MAX_VOCAB = 2_000_000  # tokens: every Unicode character (1.1 million) and the 200 000 words of a word tokenizer fit


@dataclass
class DataConfig:
    corpus: str = "refranes"  # a corpus name or a path to a UTF-8 text file
    split: str = "auto"  # auto | lines (random whole lines for val) | tail (the last part for val)
    #                      | after (val: the val_fraction × max_chars characters that follow the first max_chars)
    val_fraction: float = 0.1
    split_seed: int = 1234  # fixed rule for choosing validation lines
    start_marker: str = ""  # the text starts where this first appears ("" = at the beginning)
    end_marker: str = (
        ""  # ...and ends where this first appears (as the lesson's find(): absent = all but the last character)
    )
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
    optimizer: str = "adamw"  # adamw | muon (Muon for the hidden matrices; AdamW for embeddings, head, norms, biases)
    muon_lr_ratio: float = 1.0  # Muon's learning rate as a multiple of lr (both follow the same schedule)
    schedule: str = "cosine"  # after warm-up: cosine (lr down to min_lr) | trapezoid (flat at lr, then a line down)
    cooldown: float = 0.5  # trapezoid: the last fraction of the run (steps or seconds) spent going down to min_lr
    epochs: int = 10  # an epoch is as many windows as the training text has tokens
    max_time: float = 0.0  # seconds of training; > 0 replaces `epochs` and the schedule follows the clock
    max_steps: int = 0  # > 0 stops after this many steps (quick checks); the schedule still follows epochs/time
    eval_chars: int = 60_000  # characters of the val split scored at each epoch (all of it at the end)
    log_every: int = 25  # steps between train-loss entries in metrics.jsonl
    plot_every: int = 1  # epochs between epoch_NNN.png images (0 = none)
    samples: int = 5  # samples written to samples.txt at the end
    prompt: str = ""  # prompt for the final samples ("" = start of a line)
    sample_chars: int = 200  # at most this many characters per final sample
    temperature: float = 1.0  # of the final samples
    sampler: str = "random"  # random (windows anywhere) | shuffled (every window once per epoch, in random order)
    stride: int = 1  # shuffled: characters between the starts of consecutive windows
    compile: bool = False  # torch.compile the model
    mix_slice: float = 0.05  # the last share of the training text a network never learns from (at most 100,000
    #                          tokens): a mix fits its table there (taller/training/mixing.py); 0: learn from all of it
    keep_best: bool = True  # the run's model: the weights that scored best on validation (false: the last ones)
    ema: float = (
        BY_PASSES  # decay of the average of the weights that is scored and kept (training/average.py); 0: none;
    )
    #                       -1: chosen from the text's size (AVERAGE_BY_PASSES)
    health_every: int = 100  # steps between checkups of the network's health (health.jsonl, health.png; 0 = none)
    report: bool = True  # report.html at the end (false: none; `taller report RUN` writes it whenever asked)


def average_for(train: TrainConfig, passes: float) -> str | None:
    """train.ema = -1: picked for a training that reads its text `passes` times (REGULARISE_BY_PASSES in
    models/kind.py); returns the Spanish words for it, or None."""
    if train.ema != BY_PASSES:
        return None
    train.ema = by_passes(passes)[1]
    return f"media de los pesos {short(train.ema)}" if train.ema else "sin media de los pesos"


BEFORE_THEY_EXISTED = {"mix_slice": 0.0, "ema": 0.0}  # [train] keys whose default changes what a run does
MODEL_BEFORE_THEY_EXISTED = {"masking": "chars", "word_loss": 0.0}  # and [model] keys: what a run saved before
# them did (a BERT hid characters; an accent tagger learnt each letter's mark only)


TOKENIZER_KINDS = ("char", "bpe", "word")
DEVICES = ("auto", "cpu", "cuda", "mps")
OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "trapezoid")
SECTIONS = {"data": DataConfig, "train": TrainConfig}  # and [model]: the kind's own section (taller/models/)
MEMORY_LIMIT = 2_000_000_000  # parameters: about 32 GB with AdamW's two moments in float32 — more than a laptop has
MEMORY_SHARE = 0.5  # of the memory the machine has free, what one training may take: the rest is for the text, PyTorch
# itself, the allocator's slack and whatever else the student has open (a browser). A model that needs more is refused.
GB = 1e9
SEED_LIMIT = 2**63  # a seed is a signed 64-bit integer for torch


def default_model() -> ModelConfig:
    return KINDS["transformer"].config()


@dataclass
class Config:
    """A whole run: [model] (the kind's own section), [data] (which text, which tokens) and [train] (the recipe)."""

    model: ModelConfig = field(default_factory=default_model)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        self.chosen: set[str] = set()  # [model] keys given a value by set() (a preset, a file, --set); not saved

    # --- building -------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, where: str = "la configuración", saved: bool = False) -> Config:
        """A configuration from TOML tables. `saved`: a run folder's config.toml, whose [model] may hold the keys of
        other kinds (taller 0.1 wrote every kind's keys in every run): those are skipped, not refused."""
        for section, values in d.items():
            if section != "model" and section not in SECTIONS:
                raise TallerError(
                    f"{where}: sección desconocida [{section}]; las válidas son model, {', '.join(SECTIONS)}."
                )
            if not isinstance(values, dict):
                raise TallerError(f"{where}: [{section}] debe ser una tabla de claves.")
        cfg = cls()
        if saved:  # a run saved before these keys existed trained without them: resuming it must go on the same way
            for key, value in BEFORE_THEY_EXISTED.items():
                setattr(cfg.train, key, value)
        model = d.get("model", {})
        cfg.set("model.kind", model.get("kind", cfg.model.kind), where=where)  # the kind first: it decides the keys
        own = {f.name for f in dataclasses.fields(cfg.model)}
        for key, value in MODEL_BEFORE_THEY_EXISTED.items() if saved else ():
            if key in own:
                setattr(cfg.model, key, value)
        for section, values in d.items():
            for key, value in values.items():
                if section == "model" and (key == "kind" or (saved and key not in own and key in other_kinds_keys())):
                    continue
                cfg.set(f"{section}.{key}", value, where=where)
        return cfg

    @classmethod
    def load(cls, path: str | Path, saved: bool = False) -> Config:
        """A configuration file; `saved`: a run folder's config.toml (which also says the vocabulary's size)."""
        path = Path(path)
        advice = (
            f"la carpeta {path.parent} está dañada: vuelve a entrenar"
            if saved
            else "indica un fichero TOML con [model], [data] y [train]"
        )
        try:
            d = tomllib.loads(read_bounded(path, CONFIG_LIMIT, advice).decode("utf-8"))
        except FileNotFoundError:
            raise TallerError(f"no existe el fichero de configuración {path}.") from None
        except (ValueError, RecursionError) as e:  # TOMLDecodeError, bad UTF-8, an int over 4300 digits, deep nesting
            raise toml_error(path, e) from None
        cfg = cls.from_dict(d, where=str(path), saved=saved)
        if saved and cfg.model.vocab_size > MAX_VOCAB:  # before validate() blames the model's size on d_model
            raise TallerError(
                f"{path}: model.vocab_size={str(cfg.model.vocab_size)[:24]} es imposible (ningún tokenizador "
                f"de taller pasa de {thousands(MAX_VOCAB)} tokens; tokenizer.json o vocab.json dicen cuántos "
                "hay de verdad): el fichero está manipulado o mezcla ejecuciones distintas; vuelve a entrenar."
            )
        return cfg

    @classmethod
    def preset(cls, name: str) -> Config:
        if name not in list_presets():
            raise TallerError(f"preset desconocido '{name}'; los disponibles son: {', '.join(list_presets())}.")
        text = resources.files("taller.configs").joinpath(f"{name}.toml").read_text(encoding="utf-8")
        return cls.from_dict(tomllib.loads(text), where=f"preset {name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        atomic_write(path, tomli_w.dumps(self.to_dict()).encode("utf-8"))

    # --- overrides ------------------------------------------------------------------------------------------
    def set(self, key: str, value, where: str = "--set") -> None:
        """Set `section.key` (or a bare `key` that only one section has) to `value`, converting its type."""
        section, name = self.find_key(key, where)
        if (section, name) == ("model", "kind"):
            return self.set_kind(_coerce(value, str, "model.kind", where))
        obj = getattr(self, section)
        current = getattr(obj, name)
        setattr(obj, name, _coerce(value, type(current), f"{section}.{name}", where))
        if section == "model":
            self.chosen.add(name)

    def set_kind(self, name: str) -> None:
        """Another kind of model: its own [model] section, keeping the values of the keys both kinds have, except a
        value nobody chose that is only the old kind's default where the new kind has another (a BERT classifier's
        encoder_lr of 1 is not a T5's: the T5 keeps its own 0.1)."""
        if name not in KINDS:  # left for validate() to explain, with the list of kinds
            self.model.kind = name
            return
        new, old_defaults = KINDS[name].config(), type(self.model)()
        for f in dataclasses.fields(new):
            if f.name == "kind" or f.name not in _fields(type(self.model)):
                continue
            value = getattr(self.model, f.name)
            untouched = f.name not in self.chosen and value == getattr(old_defaults, f.name)
            if not (untouched and value != getattr(new, f.name)):
                setattr(new, f.name, value)
        self.model = new

    def apply_overrides(self, pairs: list[str], skip_other_kinds: bool = False) -> None:
        """`--set key=value` pairs; with `skip_other_kinds`, keys that only other kinds' [model] sections have are
        skipped (one --set for several models, as in `taller compare`)."""
        for pair in pairs:
            if "=" not in pair:
                raise TallerError(f"--set espera clave=valor (por ejemplo --set d_model=256), no '{pair}'.")
            key, value = (s.strip() for s in pair.split("=", 1))
            name = key.removeprefix("model.")
            if skip_other_kinds and name in other_kinds_keys() and name not in _fields(type(self.model)):
                continue
            self.set(key, value)

    def find_key(self, key: str, where: str) -> tuple[str, str]:
        """Which section a key belongs to: `model.d_model`, or a bare `d_model` that only one section has."""
        sections = {"model": type(self.model), **SECTIONS}
        if "." in key:
            section, name = key.split(".", 1)
            if section in sections and name in _fields(sections[section]):
                return section, name
        else:
            section, name = None, key
            owners = [s for s, c in sections.items() if key in _fields(c)]
            if len(owners) == 1:
                return owners[0], key
        if section in (None, "model") and name in other_kinds_keys():
            owners = ", ".join(k.name for k in KINDS.values() if name in _fields(k.config))
            raise TallerError(
                f"{where}: {name!r} es una clave de otro modelo ({owners}), no de {self.model.kind}; "
                f"elige ese modelo con --model o quita la clave."
            )
        known = ", ".join(f"{s}.{n}" for s, c in sections.items() for n in _fields(c))
        raise TallerError(f"{where}: clave desconocida {key!r}. Claves válidas: {known}.")

    def fit_to_text(self, train_tokens: int) -> str | None:
        """What is chosen from how many times the training will read its `train_tokens` (dropout, the average of the
        weights): the Spanish line that says what and why, or None when both were given."""
        passes, why = self.expected_passes(train_tokens)
        chosen = [self.model.fit_to_text(passes), average_for(self.train, passes)]
        if not any(chosen):
            return None
        return (
            f"{'; '.join(c for c in chosen if c)} (unas {number(passes, 1)} veces: {why}; "
            "--set dropout=X y --set ema=X los fijan)"
        )

    def expected_passes(self, train_tokens: int) -> tuple[float, str]:
        """How many times the budget will read the training text, and the Spanish words for how that was estimated:
        --epochs is that many; --max-time, the seconds × a speed guessed from the model's size (models/kind.py)."""
        t = self.train
        if t.max_time <= 0:
            return float(t.epochs), f"{t.epochs} épocas"
        speed = guessed_tokens_per_s(self.model)
        said = f"{number(t.max_time, 0)} s a unos {thousands(round(speed, -2))} tokens/s según el tamaño del modelo"
        return t.max_time * speed / max(1, train_tokens), said + ", hasta medirlos"

    # --- validation -----------------------------------------------------------------------------------------
    def validate(self) -> Config:
        """Every rule of every section, before anything is built or written; one line for the first one broken."""
        kind = kind_named(self.model.kind)
        need(isinstance(self.model, kind.config), f"[model] no es la sección de {kind.a_title}.")
        self.model.check(self.data)
        check_data(self.data)
        check_train(self.train)
        params = self.model.estimate_parameters()  # a model that would not fit in memory is refused before it is built
        need(
            params <= MEMORY_LIMIT,
            f"el modelo tendría unos {number(params / 1e9, 1)} mil millones de parámetros; "
            "reduce d_model, d_ff o n_layers.",
        )
        return self

    # --- memory ---------------------------------------------------------------------------------------------
    def memory_needed(self) -> dict[str, float]:
        """Bytes one training process needs, in float32: the weights, their gradients, AdamW's two moments and the
        activations a step keeps for its backward pass (each kind estimates its own, beside its model)."""
        model = self.model
        if not model.vocab_size:  # not known before the tokenizer is built: the vocabulary asked for, or 256
            guess = self.data.tokenizer_vocab if self.data.tokenizer != "char" else 256
            model = dataclasses.replace(model, vocab_size=guess)
        params = model.estimate_parameters()
        return {
            "parámetros": 4.0 * params,
            "gradientes": 4.0 * params,
            "optimizador": 8.0 * params,
            "activaciones": 4.0 * model.estimate_activations(self.train.batch_size),
        }

    def check_memory(self, available: float | None, processes: int = 1) -> None:
        """Refuse, in one line with the numbers and the flag to change, a training that would not fit in the memory
        the machine has free (`available` bytes, None: unknown) when `processes` trainings share it."""
        parts = self.memory_needed()
        needed = processes * sum(parts.values())
        if available is None or needed <= MEMORY_SHARE * available:
            return
        shown = ", ".join(f"{name} {number(value * processes / GB, 1)}" for name, value in parts.items())
        raise TallerError(
            f"este entrenamiento necesita unos {number(needed / GB, 1)} GB de memoria ({shown}) y el equipo "
            f"tiene {number(available / GB, 1)} GB libres (taller usa como mucho el {number(100 * MEMORY_SHARE, 0)} "
            f"%); {self.memory_advice(parts, MEMORY_SHARE * available / processes)}."
        )

    def memory_advice(self, parts: dict[str, float], budget: float) -> str:
        """What to change so that one process fits in `budget` bytes: the batch if activations weigh most, else
        the model's size."""
        t, m = self.train, self.model
        rest = sum(parts.values()) - parts["activaciones"]
        if parts["activaciones"] >= rest:
            fits = int(t.batch_size * (budget - rest) / parts["activaciones"])
            if fits >= 1:
                return f"usa --set batch_size={fits} (ahora {t.batch_size}) o menos"
            context = f" y --set block_size=… (ahora {m.training_window})" if m.training_window else ""
            return f"usa --set batch_size=1{context}, o un modelo más pequeño"
        keys = [f"{k} (ahora {getattr(m, k)})" for k in ("d_model", "d_ff", "n_layers", "d_embed") if hasattr(m, k)]
        return f"usa un modelo más pequeño: baja con --set {', '.join(keys)}"


def check_data(d: DataConfig) -> None:
    need(d.tokenizer in TOKENIZER_KINDS, f"data.tokenizer='{d.tokenizer}' no existe; usa {', '.join(TOKENIZER_KINDS)}.")
    need(
        d.tokenizer != "bpe" or 256 <= d.tokenizer_vocab <= 200_000,
        f"data.tokenizer_vocab={d.tokenizer_vocab}: "
        "un BPE de bytes empieza con 256 tokens (uno por byte); usa entre 256 y 200000, por ejemplo 512.",
    )
    need(
        d.tokenizer != "word" or 2 <= d.tokenizer_vocab <= 200_000,
        f"data.tokenizer_vocab={d.tokenizer_vocab}: usa entre 2 y 200000 palabras, por ejemplo 2000.",
    )
    need(d.split in ("auto", "lines", "tail", "after"), f"data.split='{d.split}': usa auto, lines, tail o after.")
    need(d.max_chars >= 0, f"data.max_chars={d.max_chars} no puede ser negativo (0 = todo el texto).")
    need(
        d.split != "after" or d.max_chars > 0,
        "data.split='after' necesita data.max_chars > 0 "
        "(la validación son los caracteres que siguen a los primeros max_chars).",
    )
    need(0.0 < d.val_fraction < 0.5, f"data.val_fraction={d.val_fraction} debe estar entre 0 y 0.5.")


def check_train(t: TrainConfig) -> None:
    need(t.device in DEVICES, f"train.device='{t.device}': usa {', '.join(DEVICES)}.")
    need(0 <= t.seed < SEED_LIMIT, f"train.seed={t.seed} debe estar entre 0 y 2**63-1.")
    need(t.dtype in ("auto", "float32", "bfloat16"), f"train.dtype='{t.dtype}': usa auto, float32 o bfloat16.")
    need(1 <= t.batch_size <= 65536, f"train.batch_size={t.batch_size} debe estar entre 1 y 65536.")
    need(
        0.0 < t.lr < 10.0 and math.isfinite(t.lr),
        f"train.lr={t.lr:g} debe ser mayor que 0 y menor que 10 (por ejemplo 3e-3).",
    )
    need(0.0 <= t.min_lr <= t.lr, f"train.min_lr={t.min_lr} debe estar entre 0 y train.lr={t.lr}.")
    need(t.warmup_steps >= 0, f"train.warmup_steps={t.warmup_steps} no puede ser negativo.")
    need(t.weight_decay >= 0.0, f"train.weight_decay={t.weight_decay} no puede ser negativo.")
    need(0.0 <= t.beta1 < 1.0 and 0.0 <= t.beta2 < 1.0, "train.beta1 y train.beta2 deben estar en [0, 1).")
    need(t.optimizer in OPTIMIZERS, f"train.optimizer='{t.optimizer}': usa {' o '.join(OPTIMIZERS)}.")
    need(
        0.0 < t.muon_lr_ratio <= 100.0, f"train.muon_lr_ratio={t.muon_lr_ratio} debe estar en (0, 100] (por ejemplo 1)."
    )
    need(t.schedule in SCHEDULES, f"train.schedule='{t.schedule}': usa {' o '.join(SCHEDULES)}.")
    need(
        0.0 < t.cooldown <= 1.0,
        f"train.cooldown={t.cooldown} debe estar en (0, 1]: la parte final del "
        "entrenamiento en que el learning rate baja (por ejemplo 0.5).",
    )
    need(t.grad_clip >= 0.0, f"train.grad_clip={t.grad_clip} no puede ser negativo (0 = sin recorte).")
    need(
        t.epochs >= 1,
        f"train.epochs={t.epochs} debe ser al menos 1 (con train.max_time > 0 manda el reloj y "
        "train.max_steps corta antes).",
    )
    need(t.max_time >= 0 and math.isfinite(t.max_time), f"train.max_time={t.max_time} no puede ser negativo.")
    need(t.max_steps >= 0, f"train.max_steps={t.max_steps} no puede ser negativo.")
    need(t.eval_chars >= 1, f"train.eval_chars={t.eval_chars} debe ser al menos 1.")
    need(
        t.ema == BY_PASSES or 0 <= t.ema < 1,
        f"train.ema={t.ema} debe estar entre 0 y 1 (0: sin media; -1: según cuántas veces se leerá el texto).",
    )
    need(0 <= t.mix_slice < 0.5, f"train.mix_slice={t.mix_slice} debe estar entre 0 y 0.5 (0: no apartar nada).")
    need(t.log_every >= 1, f"train.log_every={t.log_every} debe ser al menos 1.")
    need(t.plot_every >= 0, f"train.plot_every={t.plot_every} no puede ser negativo.")
    need(0 <= t.samples <= 1000, f"train.samples={t.samples} debe estar entre 0 y 1000.")
    need(1 <= t.sample_chars <= 100_000, f"train.sample_chars={t.sample_chars} debe estar entre 1 y 100000.")
    need(t.temperature > 0, f"train.temperature={t.temperature} debe ser positiva (por ejemplo 0.7).")
    need(t.sampler in ("random", "shuffled"), f"train.sampler='{t.sampler}': usa random o shuffled.")
    need(t.stride >= 1, f"train.stride={t.stride} debe ser al menos 1.")
    need(
        t.health_every >= 0, f"train.health_every={t.health_every} no puede ser negativo (0 = sin revisiones de salud)."
    )


def toml_error(path: Path, e: Exception) -> TallerError:
    """What is wrong with a file that tomllib could not read, in Spanish (tomllib says where, in English)."""
    if isinstance(e, UnicodeDecodeError):
        return TallerError(f"{path} no es texto UTF-8 (byte {e.start}); guárdalo como UTF-8.")
    where = re.search(r"line (\d+), column (\d+)", str(e))
    at = f" (línea {where[1]}, columna {where[2]})" if where else ""
    return TallerError(f"{path} no es TOML válido{at}; revisa la sintaxis.")


def list_presets() -> list[str]:
    files = resources.files("taller.configs").iterdir()
    return sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml"))


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def other_kinds_keys() -> set[str]:
    """Keys of some kind's [model] section (a key of another kind is explained, not just called unknown)."""
    return {name for kind in KINDS.values() for name in _fields(kind.config)}


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
