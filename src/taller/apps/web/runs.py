"""The runs the explorer serves: the run folders found under PATH, what /api/runs says of each, and the bounded cache
of loaded runs.

A request names a run by its folder name, which is looked up among the folders found under PATH (never joined onto a
path), so `../`, absolute paths and symlinks that lead out go nowhere. At most KEEP runs stay loaded: opening one
more lets go of the one used longest ago, so the server's memory does not grow with the number of runs it serves.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path

from taller.apps.web.refusals import QUOTED, SURROGATE, ApiError, without_paths
from taller.config import Config
from taller.errors import TallerError
from taller.models import kind_of
from taller.runs.checkpoint import read_state
from taller.runs.folder import Run

KEEP = 4  # runs kept loaded at once (a run is a model and its tokenizer: a few MB for the lessons' sizes)
LISTED = 10  # runs (or, in replies.py, unknown characters) listed in an error
BROKEN = (ValueError, RecursionError, OSError)  # what a damaged run folder may raise besides TallerError


DEPTH = 3  # folders below PATH searched for runs (compare's runs sit one level down: runs/compare-…/ngram)


def find_runs(root: Path) -> dict[str, Path]:
    """The run folders under `root` (root itself, or folders down to DEPTH levels below it), by their path from root
    (compare-quijote/ngram); none outside root, and none inside a run."""
    root = root.resolve()
    if (root / "state.json").is_file():
        return {root.name: root}
    runs: dict[str, Path] = {}
    search(root, root, DEPTH, runs)
    return runs


def search(root: Path, folder: Path, depth: int, runs: dict[str, Path]) -> None:
    try:
        children = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:  # an unreadable folder serves no runs
        return
    for child in children:
        try:
            real = child.resolve()
        except (OSError, RuntimeError):  # a link that leads to itself: not a run
            continue
        if not (real.is_relative_to(root) and real.is_dir()):
            continue
        if (real / "state.json").is_file():
            runs[child.relative_to(root).as_posix()] = real
        elif depth > 1:
            search(root, child, depth - 1, runs)


def served_runs(path: Path) -> dict[str, Path]:
    """The runs `taller serve PATH` would serve, or a TallerError saying why there are none."""
    if path.exists() and not path.is_dir():
        raise TallerError(
            f"{path} es un archivo, no una carpeta; `taller serve` quiere una carpeta de ejecución o "
            "una carpeta con varias, como runs/."
        )
    if not path.is_dir():
        raise TallerError(f"no existe la carpeta {path}; indica una ejecución o una carpeta con varias, como runs/.")
    runs = find_runs(path)
    if not runs:
        raise TallerError(
            f"{path} no tiene ninguna ejecución (carpetas con state.json); entrena una con `taller demo`."
        )
    return runs


def check_run_name(name: str) -> None:
    """A run is named by its bare folder name: nothing that could be read as a path."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ApiError(400, f"nombre de ejecución no válido: «{name[:QUOTED]}»; usa uno de la lista de /api/runs.")


def unreadable(name: str, e: Exception) -> str:
    """Why the run folder `name` cannot be opened, when the reason is not a TallerError (a state.json number of
    5,000 digits, a file that vanished…)."""
    return (
        f"la ejecución «{name[:QUOTED]}» está dañada y no se puede abrir ({type(e).__name__}); "
        "vuelve a entrenarla o quítala de la carpeta."
    )


class RunCache:
    """The runs under `root`, opened on first request and kept: at most `keep` at once, the one used longest ago let
    go first. A retrained run (newer state.json) is opened again. `loader(path) -> Run` opens a run folder."""

    def __init__(self, root: Path, loader, keep: int = KEEP):
        self.root, self.loader, self.keep = root, loader, keep
        self.loaded: OrderedDict[str, tuple[float, Run]] = OrderedDict()  # name -> (state.json mtime, run), newest last
        self.lock = threading.Lock()  # guards `loaded`

    def get(self, name: str) -> Run:
        check_run_name(name)
        runs = find_runs(self.root)
        if name not in runs:
            known = ", ".join(list(runs)[:LISTED]) or "ninguna"
            raise ApiError(
                404, f"no hay ninguna ejecución «{name[:QUOTED]}» en la carpeta servida; las que hay: {known}."
            )
        with self.lock:  # one load at a time
            try:
                mtime = (runs[name] / "state.json").stat().st_mtime
                if name in self.loaded and self.loaded[name][0] == mtime:
                    self.loaded.move_to_end(name)  # used now: the last to be let go
                else:
                    self.loaded.pop(name, None)
                    while len(self.loaded) >= self.keep:
                        self.loaded.popitem(last=False)  # the one used longest ago
                    self.loaded[name] = (mtime, self.loader(runs[name]))
            except BROKEN as e:  # TallerError goes to its own reply
                raise ApiError(400, unreadable(name, e)) from None
            return self.loaded[name][1]


def run_summary(name: str, path: Path, root: Path) -> dict:
    """One run of /api/runs, read from state.json and config.toml only: listing loads no model. A damaged folder is
    listed with the reason it can't be opened, and never keeps the others from being listed."""
    if SURROGATE.search(name):  # a folder name that is not UTF-8
        return {
            "name": SURROGATE.sub("\ufffd", name),
            "error": "el nombre de esta carpeta no es UTF-8 válido; cámbiale el nombre para abrirla aquí.",
        }
    try:
        state, cfg = read_state(path), Config.load(path / "config.toml", saved=True)
        kind = kind_of(cfg)
    except TallerError as e:
        return {"name": name, "error": without_paths(str(e), root)}
    except BROKEN as e:
        return {"name": name, "error": unreadable(name, e)}
    if not kind.language_model:  # e.g. word vectors: listed, with where to look instead (a tagger: the tildes box,
        return {  # a BERT or T5: the fill box, a classifier: the classify box)
            "name": name,
            "kind": kind.name,
            "error": without_paths(str(kind.refuse(name)), root),
            "tildes": kind.fixes_accents,
            "fills": kind.fills,
            "classifies": kind.classifies,
        }
    return {
        "name": name,
        "kind": cfg.model.kind,
        "corpus": plain(state.get("corpus"), str),
        "parameters": plain(state.get("parameters"), int),
        "val_bpc": plain(state.get("val_bpc"), float),
        "block_size": cfg.model.context,
        "prompt": cfg.train.prompt,
    }  # block_size: None for no limit


def plain(value, typ: type):
    """A value of state.json as /api/runs may send it: of type `typ`, finite and short, or else None (a hand-edited
    state.json may hold 1e400, a string, or an integer of 5,000 digits, which JSON replies cannot carry)."""
    if typ is str:
        return Path(value).name[:QUOTED] if isinstance(value, str) else None  # a corpus file: its name only
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if typ is int:
        return value if isinstance(value, int) and abs(value) < 10**15 else None
    return float(value) if math.isfinite(value) else None
