"""A run folder: created once, described by state.json, loaded by every command after `train`.

runs/NAME/  config.toml  tokenizer.json (or vocab.json)  model.safetensors  optim.safetensors  state.json
            metrics.jsonl  parameters.txt  samples.txt  table.txt  epoch_NNN.png  loss.png  report.html …
            .lock: held by the one training that writes the folder (an OS lock: a killed process leaves none)
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from taller._version import __version__
from taller.config import Config
from taller.data.corpora import prepare_corpus
from taller.data.prepared import is_prepared
from taller.data.split import Split, split_corpus
from taller.data.tokenizers import load_tokenizer
from taller.errors import TallerError
from taller.files import reason, refuse_unless_regular, sha256_file
from taller.models import build_model, kind_of
from taller.runs.checkpoint import DAMAGED, checkpoint_file, load_tensors, read_state, unflatten_optimizer
from taller.sampling import generate

try:
    import fcntl
except ImportError:  # Windows: no flock; a second training on one folder is not refused there
    fcntl = None

LOCK_FILE = ".lock"
# What a fresh start writes before its first checkpoint (state.json): a folder holding only these was stopped in
# its first seconds (or by a full disk at that checkpoint, after an epoch's picture), and a new fresh start may take
# it over.
FIRST_FILES = (
    "config.toml",
    "tokenizer.json",
    "vocab.json",
    "parameters.txt",
    "epoch_000.safetensors",
    "epoch_*.png",
    "loss.png",
    "health.png",
    "evolution.jsonl",
    "metrics.jsonl",
    "health.jsonl",
    "*.next.safetensors",
    ".*.tmp",
    LOCK_FILE,
)
# Every file taller writes in a run folder: no output flag writes onto one of them, not even with --force.
RUN_FILES = FIRST_FILES + (
    "state.json",
    "model.safetensors",
    "optim.safetensors",
    "best.safetensors",
    "samples.txt",
    "table.txt",
    "epoch_*",
    "*.png",
    "report.html",
    "surprise*.html",
    "confusion.json",
)


@dataclass
class Run:
    dir: Path
    config: Config
    tokenizer: object  # CharTokenizer, WordTokenizer or BpeTokenizer (the same interface); a skip-gram's WordVocab
    model: torch.nn.Module
    state: dict = field(default_factory=dict)
    interrupted: int = 0  # the signal that stopped its training early (SIGINT: Ctrl-C, SIGTERM), 0 if none
    parts: list = field(default_factory=list)  # a mix's runs (Run), loaded from their own folders

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
    if out.exists() and not out.is_dir():
        raise TallerError(f"{out} es un fichero, no una carpeta; elige una carpeta con --out. No se ha tocado nada.")
    RunLock.check_free(out)
    check_contents(out, resume)


def check_contents(out: Path, resume: bool) -> None:
    """What the folder holds allows a fresh start (nothing, or an unfinished start) or a resume (a checkpoint)."""
    if resume and not (out / "state.json").exists():
        if out.is_dir() and any(out.iterdir()) and unfinished_start(out):
            raise TallerError(
                f"--resume: {out} se detuvo antes de su primer punto de control (no tiene state.json): "
                "no hay nada que continuar; entrena de cero con la misma orden sin --resume "
                "(taller reemplaza los ficheros de ese comienzo)."
            )
        raise TallerError(f"--resume: {out} no tiene ninguna ejecución que continuar (falta state.json).")
    if not resume and out.exists() and any(out.iterdir()) and not unfinished_start(out):
        if (out / "state.json").exists():
            raise TallerError(
                f"{out} ya tiene una ejecución; usa --resume para continuarla "
                "o elige otra carpeta con --out. No se ha tocado nada."
            )
        raise TallerError(f"{out} ya existe y no está vacía; elige otra carpeta con --out. No se ha tocado nada.")


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def unfinished_start(out: Path) -> bool:
    """A folder that holds no checkpoint and only what a fresh start writes first: a training stopped in its first
    seconds (Ctrl-C, kill -9), which a new fresh start may take over."""
    first_files_only = all(p.is_file() and matches(p.name, FIRST_FILES) for p in out.iterdir())
    locked_by_taller = (out / LOCK_FILE).is_file() and not (out / LOCK_FILE).is_symlink()  # written first, by taller
    return not (out / "state.json").exists() and locked_by_taller and first_files_only


def clear_unfinished_start(out: Path) -> list[str]:
    """The files of an unfinished start (the lock aside), removed; returns their names."""
    if not unfinished_start(out):
        return []
    names = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    for name in names:
        (out / name).unlink(missing_ok=True)
    return names


def create_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TallerError(f"no puedo crear {out}: {reason(e)}; elige otra carpeta con --out.") from None


class RunLock:
    """The OS lock (flock) on a run folder's .lock file, held by the one process that writes the folder. The OS
    drops it when the process ends, however it ends: a killed training leaves no stale lock. Readers never take it."""

    def __init__(self, out: Path):
        self.out, self.fd = out, None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        path = self.out / LOCK_FILE
        try:  # never through a link: the pid written below must not land in a file the lock points to
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                os.close(fd)
                raise OSError(errno.EPERM, "not a plain file")
        except OSError as e:
            raise TallerError(
                f"no puedo usar {path} como cerrojo de la carpeta ({reason(e)}; debe ser un fichero "
                "normal de taller, no un enlace); bórralo o elige otra carpeta con --out."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TallerError(f"no puedo bloquear {path}: {reason(e)}.") from None
            raise in_use(self.out, holder) from None
        try:  # who holds it: named in the refusal of a second writer (on a full disk, unnamed)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass
        self.fd = fd
        return self

    @staticmethod
    def check_free(out: Path) -> None:
        """Refuse at once if a training holds the folder's lock now (nothing is created, nothing is locked)."""
        if fcntl is None or not (out / LOCK_FILE).is_file():
            return
        try:
            fd = os.open(out / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise in_use(out, os.read(fd, 32).decode("ascii", "replace").strip()) from None
        finally:
            os.close(fd)  # (a shared lock taken for a moment is dropped with it)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays (removing it would race with a new writer)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def in_use(out: Path, holder: str) -> TallerError:
    who = f"el proceso {holder}" if holder.isdigit() else "otro proceso"
    return TallerError(
        f"{out} está en uso: otro entrenamiento ({who}) la está escribiendo; espera a que termine o "
        "elige otra carpeta con --out. No se ha tocado nada."
    )


def lock_run_dir(out: Path, resume: bool) -> RunLock:
    """The folder, created if new and locked for this process; checked again under the lock (another training may
    have written it meanwhile)."""
    if not resume:
        create_run_dir(out)
    lock = RunLock(out).acquire()
    try:
        check_contents(out, resume)
    except BaseException:
        lock.release()
        raise
    return lock


def is_run_dir(folder: Path) -> bool:
    """Whether `folder` looks like a run folder (finished, or stopped before its first checkpoint)."""
    vocabulary = (folder / "tokenizer.json").exists() or (folder / "vocab.json").exists()
    started = (folder / "config.toml").exists() and vocabulary
    return (folder / "state.json").exists() or (folder / LOCK_FILE).exists() or started


def check_output(path: Path, force: bool, flag: str) -> None:
    """A file the user named as an output (`--table FILE`): never an existing file without --force, never a file of
    a run folder (weights, state, config … not even with --force), never a folder."""
    try:
        target = path.resolve()  # a link into a run folder is judged by where it leads
    except (OSError, RuntimeError):
        raise TallerError(
            f"{flag} {path}: demasiados enlaces simbólicos (¿un enlace que apunta a sí mismo?); indica un fichero."
        ) from None
    if is_run_dir(target.parent) and matches(target.name, RUN_FILES):
        raise TallerError(
            f"{flag} {path}: es un fichero de la ejecución {target.parent} y no se sobrescribe nunca; "
            "elige otro nombre."
        )
    if path.is_dir():
        raise TallerError(f"{flag} {path}: es una carpeta; indica un fichero.")
    try:  # a device or a FIFO is never replaced, not even with --force (as root, -o /dev/null would break the system)
        refuse_unless_regular(
            path,
            os.stat(path).st_mode,
            f"{flag} sólo escribe un fichero nuevo o reemplaza uno normal: elige otro nombre",
        )
    except FileNotFoundError:
        pass  # absent (or a link to nothing): a new file
    except OSError as e:
        raise TallerError(f"{flag} {path}: {reason(e)}; elige otro nombre.") from None
    if (path.exists() or path.is_symlink()) and not force:
        raise TallerError(f"{flag} {path}: el fichero ya existe; añade --force para reemplazarlo o elige otro nombre.")


def run_state(
    *, step: int, epoch: int, train_time: float, finished: bool, corpus, split, parameters: int, **extra
) -> dict:
    """What state.json says of a run, for every kind: where it is, what it read, which taller wrote it."""
    return {
        "step": step,
        "epoch": epoch,
        "train_time": train_time,
        "finished": finished,
        "taller": __version__,
        "corpus": corpus.name,
        "split": split.kind,
        "line_corpus": corpus.lines,
        "parameters": parameters,
        **extra,
    }


# --- loading it ---------------------------------------------------------------------------------------------------


def load_weights(run_dir: Path, model, state: dict) -> None:
    """The committed weights of a run folder into `model` (names, shapes and dtypes checked before reading)."""
    counted = kind_of(model.cfg).counted  # counts vary in size with the text: the model checks them itself
    expected = None if counted else model.state_dict()
    path = checkpoint_file(run_dir, "model.safetensors", state)
    tensors, _ = load_tensors(path, expected=expected)
    for name, tensor in tensors.items():  # a NaN or an infinity would reach the coder, the sampler, the server
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TallerError(
                f"{path}: el tensor '{name[:60]}' tiene valores NaN o infinitos; el fichero está dañado "
                "o manipulado: vuelve a entrenar la ejecución o cópiala de nuevo."
            )
    try:
        model.load_state_dict(tensors)  # a model checks what only it knows (counts, a mix's table)
    except TallerError as e:
        raise TallerError(f"{path}: {e}") from None


def optimizer_mismatch(run_dir: Path, e: Exception) -> TallerError:
    return TallerError(f"{run_dir}/optim.safetensors no corresponde a este modelo ({e}); no se puede continuar.")


def load_optimizer(run_dir: Path, state: dict, optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's state into `optimizer`; returns every tensor of optim.safetensors (random generators too)."""
    tensors, meta = load_tensors(checkpoint_file(run_dir, "optim.safetensors", state))
    try:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta))
    except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        raise optimizer_mismatch(run_dir, e) from None
    return tensors


CANNOT = {  # what a run says when a command asks it for what its kind cannot do, and what to use instead
    "fills": "{run} es {title} que lee de izquierda a derecha: no ve lo que hay después de un hueco, así que no "
    "lo rellena; entrena un BERT (`taller train --model bert --corpus …`) o usa `taller probe {run}`.",
    "classifies": "{run} es {title}, no un clasificador; afina un BERT para clasificar con `taller train --model "
    "bert --task clasificar --init RUN_BERT --corpus etiquetado.tsv`.",
}


def load_run(
    path: str | Path,
    device: str = "cpu",
    can: str | tuple[str, ...] = "language_model",
    part_of: Path | None = None,
    inside: Path | None = None,
) -> Run:
    """Open a run folder for generation and inspection (never unpickles anything). `can`: what the command needs of
    its kind (a capability of models.Kind: language_model, fills, classifies; a tuple: any of them); a run whose kind
    cannot is refused in one line. A mix's parts are opened too (`part_of`: the mix that asks for this one).
    `inside`: a folder that the run, and every part of a mix, must lie in (taller serve's), links resolved."""
    run_dir = Path(path)
    if inside is not None:
        check_inside(run_dir, Path(inside), part_of)
    if not run_dir.is_dir():
        if part_of is not None:
            raise TallerError(
                f"la mezcla {part_of} usa la ejecución {run_dir}, que ya no existe; vuelve a ajustar la "
                "mezcla con `taller train --model mix --set runs=…`."
            )
        raise TallerError(
            f"no existe la carpeta de ejecución {run_dir}; entrena una con `taller train --out {run_dir}`."
        )
    state = read_state(run_dir)
    config = Config.load(run_dir / "config.toml", saved=True).validate()
    kind = kind_of(config)
    needs = (can,) if isinstance(can, str) else can
    if not any(getattr(kind, need) for need in needs):
        if kind.refusal:
            raise kind.refuse(run_dir)
        raise TallerError(CANNOT[needs[0]].format(run=run_dir, title=kind.a_title))
    if kind.combines and part_of is not None:
        raise TallerError(f"la mezcla {part_of} incluye otra mezcla ({run_dir}); mezcla las ejecuciones originales.")
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    if tokenizer.vocab_size != config.model.vocab_size:
        raise TallerError(
            f"tokenizer.json tiene {tokenizer.vocab_size} tokens pero config.toml dice "
            f"vocab_size={config.model.vocab_size}; la carpeta mezcla ficheros de ejecuciones distintas."
        )
    model = build_model(config.model)
    parts = load_parts(run_dir, config, state, device, inside) if kind.combines else []
    if parts:
        model.attach([p.model for p in parts])
    load_weights(run_dir, model, state)
    model.to(device).eval()
    return Run(run_dir, config, tokenizer, model, state, parts=parts)


def check_inside(run_dir: Path, inside: Path, part_of: Path | None) -> None:
    """Refuse a run (a mix's part) that lies outside `inside`, before anything is asked of the path: the refusal is
    the same whether it exists or not, and names no path outside."""
    try:
        within = run_dir.resolve().is_relative_to(inside.resolve())
    except (OSError, RuntimeError):  # a link that leads to itself
        within = False
    if not within:
        who = f"la mezcla {part_of} usa una ejecución" if part_of is not None else "la ejecución pedida está"
        raise TallerError(
            f"{who} fuera de la carpeta servida, y aquí sólo se abre lo que está dentro de ella; "
            "mueve sus ejecuciones a la carpeta o sirve la carpeta que las contiene."
        )


def load_parts(run_dir: Path, config: Config, state: dict, device: str, inside: Path | None = None) -> list[Run]:
    """A mix's runs, each exactly as it was when the mix was fitted (its identity is in the mix's state.json)."""
    recorded = state.get("parts")
    names = config.model.parts()
    if not isinstance(recorded, list) or len(recorded) != len(names):
        raise TallerError(f"{run_dir}/state.json no dice qué ejecuciones mezcla; {DAMAGED}.")
    parts = []
    for name, record in zip(names, recorded):
        part = load_run(run_dir / name, device, part_of=run_dir, inside=inside)
        if not isinstance(record, dict) or record.get("identity") != run_identity(part):
            raise TallerError(
                f"la ejecución {part.dir} ha cambiado desde que se ajustó la mezcla {run_dir}; vuelve a "
                "ajustar la mezcla con `taller train --model mix --set runs=…`."
            )
        parts.append(part)
    return parts


def run_identity(run: Run) -> str:
    """What makes a run's predictions, as one digest: its tokenizer, its committed weights and, for a mix, its parts'
    (a compressed file names the run that wrote it; state.json holds the weights' SHA-256, checked on loading)."""
    h = hashlib.sha256()
    h.update(sha256_file(run.dir / "tokenizer.json", DAMAGED).encode("ascii"))
    h.update(str(read_state(run.dir)["files"].get("model.safetensors", "")).encode("utf-8"))  # as committed on disk
    for part in run.parts:
        h.update(run_identity(part).encode("ascii"))
    return h.hexdigest()


# --- its text -------------------------------------------------------------------------------------------------------


def run_split(config: Config, what: str) -> Split:
    """The run's train/val split, read again from its corpus by its own rule (`what` it is needed for, for the
    refusal of a prepared folder, whose text is never loaded whole)."""
    data = config.data
    if is_prepared(data.corpus):
        raise TallerError(
            f"{what} necesita el texto y esta ejecución se entrenó con una carpeta preparada; no la leo entera."
        )
    return split_corpus(prepare_corpus(data), data)


def validation_tokens(run: Run, what: str = "puntuar la validación") -> tuple[np.ndarray, np.ndarray]:
    """The run's validation text as its tokens, and the characters each token completes."""
    return run.tokenizer.token_chars(run_split(run.config, what).val)
