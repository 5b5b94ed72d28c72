"""Saving and loading a run folder: safetensors for tensors, JSON/TOML for everything else, never pickle.

Every write is atomic (a temporary file in the same folder, flushed to disk, then renamed over the old one), and a
checkpoint is committed in two phases so that a crash at any instant leaves the last complete one loadable:

  1. the new tensors go to `model.next.safetensors` and `optim.next.safetensors` (and `best.next.safetensors` when
     the weights that score best have changed);
  2. `state.json` is replaced: it names the step and the SHA-256 of the files that belong to it (the commit);
  3. the `.next` files are renamed over `model.safetensors`, `optim.safetensors` (and `best.safetensors`).

On loading, a `.next` file whose digest is the one `state.json` names finishes step 3 (roll forward); one that does
not is a leftover of an unfinished step 1 and is ignored.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from taller.errors import TallerError
from taller.files import (
    SMALL_JSON,
    atomic_write,
    load_json_object,
    open_regular,
    read_bounded,
    reason,
    sha256,
    sha256_file,
)
from taller.text import thousands

FORMAT_VERSION = 1
DAMAGED = "la carpeta de la ejecución está dañada o no es de taller: vuelve a entrenar"
MAX_COUNT = 10**12  # steps or epochs in state.json beyond this are a damaged file, not a long training
MAX_SECONDS = 10**9  # train_time beyond this (about 30 years) too
MAX_HEADER = 16 * 1024 * 1024  # a safetensors header larger than this is refused before it is read
DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
    "F64": torch.float64,
    "BOOL": torch.bool,
}


# --- safetensors, read with suspicion -----------------------------------------------------------------------------


def _header(path: Path) -> tuple[dict, int]:
    """The header and the file's size that it declares (8 + header + data), which must be the file's size."""
    try:
        with open_regular(path, DAMAGED) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("demasiado corto")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise ValueError(f"cabecera imposible ({n} bytes)")
            header = header_json(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("cabecera no es un objeto")
        end = max([check_entry(name, info, size - 8 - n) for name, info in header.items()], default=0)
        if 8 + n + end != size:
            raise ValueError(f"ocupa {size} bytes y su cabecera declara {8 + n + end}")
        return header, size
    except FileNotFoundError:
        raise TallerError(f"falta {path}; la carpeta no tiene un punto de control completo.") from None
    except (ValueError, struct.error) as e:
        raise TallerError(
            f"{path} no es un fichero safetensors válido ({e}); está dañado o no es de taller. "
            "No se ha ejecutado nada de su contenido."
        ) from None


def header_json(data: bytes):
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # the parser's words are English; an int over 4300 digits; deep nesting
        raise ValueError("la cabecera no es JSON") from None


def check_entry(name: str, info, room: int) -> int:
    """Where the data of the header's entry `name` ends (0 for the metadata); ValueError if it is malformed."""
    if name == "__metadata__":
        return 0
    if not (
        isinstance(info, dict)
        and info.get("dtype") in DTYPES
        and isinstance(info.get("shape"), list)
        and isinstance(info.get("data_offsets"), list)
        and len(info["data_offsets"]) == 2
    ):
        raise ValueError(f"entrada '{name[:40]}' mal formada")
    begin, end = info["data_offsets"]
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= room):
        raise ValueError(f"entrada '{name[:40]}' fuera del fichero")
    return end


def load_tensors(path: Path, expected: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a safetensors file; with `expected`, names, shapes and dtypes must match first."""
    header, size = _header(Path(path))
    if expected is not None:
        names = {k for k in header if k != "__metadata__"}
        missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
        if missing or extra:
            raise TallerError(
                f"{path} no corresponde a este modelo (faltan {missing[:3]}, sobran {extra[:3]}); "
                "¿es de otra ejecución?"
            )
        for name, tensor in expected.items():
            info = header[name]
            if list(tensor.shape) != info["shape"] or DTYPES[info["dtype"]] != tensor.dtype:
                raise TallerError(
                    f"{path}: el tensor '{name}' tiene forma {info['shape']} ({info['dtype']}) pero "
                    f"la configuración pide {list(tensor.shape)} ({tensor.dtype}); el fichero no es de esta ejecución."
                )
    data = read_bounded(path, size, DAMAGED)  # the size its header declares: a file that grew meanwhile is refused
    try:
        tensors = st_load(data)
    except Exception as e:  # noqa: BLE001 - the library's own checks, as one message
        raise TallerError(f"{path} está dañado ({e}).") from None
    return tensors, header.get("__metadata__") or {}


# --- optimizer state <-> flat tensors -----------------------------------------------------------------------------


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"state.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": json.dumps(sd["param_groups"])}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


# --- the two-phase checkpoint -------------------------------------------------------------------------------------


def storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors as safetensors stores them: detached, contiguous, on the CPU, and each one its own memory (a tied
    head shares the embedding's matrix: safetensors refuses shared memory, so the second name gets a copy)."""
    seen, out = set(), {}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        out[name] = t.clone() if key in seen else t
        seen.add(key)
    return out


def save_checkpoint(
    run_dir: Path,
    model_tensors: dict[str, torch.Tensor],
    optim_tensors: dict[str, torch.Tensor],
    optim_meta: dict,
    state: dict,
    best: dict[str, torch.Tensor] | None = None,
) -> None:
    """One checkpoint, committed in two phases (see above); `best`: new best weights (best.safetensors), committed
    with it, so that state.json's best_step always names the weights in best.safetensors."""
    run_dir = Path(run_dir)
    files = {}
    parts = [("model", model_tensors, {"format": str(FORMAT_VERSION)}), ("optim", optim_tensors, optim_meta)]
    if best is not None:
        parts.append(("best", best, {"step": str(state["best_step"])}))
    for name, tensors, meta in parts:
        data = st_save(storable(tensors), metadata=meta)
        atomic_write(pending_name(run_dir / f"{name}.safetensors"), data)  # phase 1
        files[f"{name}.safetensors"] = sha256(data)
    state = {**state, "format": FORMAT_VERSION, "files": files}
    atomic_write(
        run_dir / "state.json", json.dumps(state, indent=1, ensure_ascii=False).encode("utf-8")
    )  # phase 2: commit
    for name in files:  # phase 3
        try:
            os.replace(pending_name(run_dir / name), run_dir / name)
        except OSError as e:  # the commit stands: the next reader takes the pending file, a resume finishes it
            raise TallerError(
                f"no pude renombrar {pending_name(run_dir / name)}: {reason(e)}; el punto de control "
                "está guardado (state.json) y `taller train --resume` lo completará."
            ) from None


def read_state(run_dir: Path, repair: bool = False) -> dict:
    """state.json of a run, checked. With `repair` (only the training that holds the folder's lock), a checkpoint a
    crash interrupted is rolled forward on disk; readers never touch the folder (checkpoint_file reads the pending
    file instead), so a reader can't disturb a training that is writing."""
    run_dir = Path(run_dir)
    path = run_dir / "state.json"
    state = load_json_object(
        path, SMALL_JSON, f"{run_dir} no es una ejecución de taller (falta state.json); entrena una con `taller train`."
    )
    version = state.get("format")
    if not isinstance(version, int):
        raise TallerError(f"{path}: falta 'format' (versión del formato) o no es un entero; el fichero está dañado.")
    if version > FORMAT_VERSION:
        raise TallerError(
            f"{run_dir} se escribió con el formato {version} y este taller lee hasta el {FORMAT_VERSION}; "
            "actualiza taller (pip install -U taller)."
        )
    check_progress(path, state)
    for name, digest in state["files"].items():
        if not isinstance(digest, str):
            raise TallerError(f"{path}: la suma de '{name}' no es un texto; el fichero está dañado.")
        if Path(name).name != name or not name.endswith(".safetensors") or name.startswith("."):
            raise TallerError(
                f"{path} nombra un fichero fuera de la carpeta ({name[:40]!r}); el fichero está manipulado: {DAMAGED}."
            )
        if repair:
            roll_forward(run_dir / name, digest)
    return state


def check_progress(path: Path, state: dict) -> None:
    """step, epoch and train_time of a state.json: numbers of the right type, neither negative nor absurd."""
    for key, typ, top in (
        ("step", int, MAX_COUNT),
        ("epoch", int, MAX_COUNT),
        ("train_time", (int, float), MAX_SECONDS),
    ):
        value = state.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise TallerError(f"{path}: el campo '{key}' falta o tiene un tipo incorrecto; el fichero está dañado.")
        if not 0 <= value <= top:  # NaN fails this too
            raise TallerError(
                f"{path}: '{key}' vale {str(value)[:24]}, fuera de lo posible (de 0 a {thousands(top)}); "
                f"el fichero está dañado o manipulado: {DAMAGED}."
            )
    if not isinstance(state.get("files"), dict):
        raise TallerError(f"{path}: el campo 'files' falta o tiene un tipo incorrecto; el fichero está dañado.")


def roll_forward(final: Path, digest: str) -> None:
    """Finish a checkpoint that a crash interrupted between its commit and its renames."""
    pending = pending_name(final)
    try:
        if pending.exists():
            if sha256_file(pending, DAMAGED) == digest:
                os.replace(pending, final)  # the crash came between commit and rename: finish it
            elif final.exists() and sha256_file(final, DAMAGED) == digest:
                pending.unlink()  # an unfinished phase 1 from after this checkpoint
    except OSError:
        pass  # a read-only folder: checkpoint_file() reads the pending file instead


def pending_name(path: Path) -> Path:
    return path.with_name(path.name.replace(".safetensors", ".next.safetensors"))


def checkpoint_file(run_dir: Path, name: str, state: dict) -> Path:
    """The file of the committed checkpoint called `name`, its digest checked against state.json."""
    expected = state["files"].get(name)
    for path in (Path(run_dir) / name, pending_name(Path(run_dir) / name)):
        if path.exists() and (expected is None or sha256_file(path, DAMAGED) == expected):
            return path
    if not (Path(run_dir) / name).exists():
        raise TallerError(f"falta {Path(run_dir) / name}; la ejecución está incompleta.")
    raise TallerError(
        f"{Path(run_dir) / name} no coincide con state.json (suma SHA-256 distinta): está dañado o truncado. "
        "Si tienes best.safetensors, cópialo encima; si no, vuelve a entrenar."
    )


def remove_leftovers(run_dir: Path) -> None:
    """Temporary files of writes that a crash cut short."""
    for leftover in Path(run_dir).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
