"""Files every layer reads and writes: atomic writes (a reader sees the old file or the new one, never half),
bounded reads (only regular files, never more than a stated limit), digests, and the system's errors in Spanish."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from taller.errors import TallerError
from taller.text import thousands

MB = 1024 * 1024
SMALL_JSON = 1 * MB  # state.json, meta.json: a few hundred bytes when taller wrote them
VOCABULARY_LIMIT = 64 * MB  # tokenizer.json, vocab.json: a few MB for a word vocabulary of a large corpus
JSONL_LIMIT = 256 * MB  # metrics.jsonl, evolution.jsonl: a line per logged step or epoch
HASH_CHUNK = 8 * MB  # bytes hashed at a time

# What the system says (e.strerror, in English) for the errors a user meets, in Spanish.
ERRNO_SPANISH = {
    errno.ENOENT: "no existe",
    errno.EACCES: "permiso denegado",
    errno.EPERM: "operación no permitida",
    errno.ENOTDIR: "una parte de la ruta no es una carpeta",
    errno.EISDIR: "es una carpeta",
    errno.EEXIST: "ya existe",
    errno.ENOTEMPTY: "la carpeta no está vacía",
    errno.ENOSPC: "no queda espacio en el disco",
    errno.EDQUOT: "se ha agotado la cuota de disco",
    errno.EROFS: "el sistema de ficheros es de sólo lectura",
    errno.ELOOP: "demasiados enlaces simbólicos (¿un enlace que apunta a sí mismo?)",
    errno.ENAMETOOLONG: "el nombre es demasiado largo",
    errno.EMFILE: "demasiados ficheros abiertos",
    errno.EIO: "error de entrada/salida del disco",
    errno.ENXIO: "no hay ningún dispositivo ni proceso al otro lado",
    errno.EADDRINUSE: "la dirección ya está en uso",
    errno.EADDRNOTAVAIL: "la dirección no existe en esta máquina",
    errno.ECONNREFUSED: "conexión rechazada",
}

# What a path is when it is not a regular file, for the messages.
FILE_KINDS = (
    (stat.S_ISDIR, "una carpeta"),
    (stat.S_ISFIFO, "una tubería (FIFO), que espera a quien escriba en ella"),
    (stat.S_ISCHR, "un dispositivo (como /dev/zero o /dev/urandom), que no se acaba nunca"),
    (stat.S_ISBLK, "un dispositivo de bloques (un disco entero)"),
    (stat.S_ISSOCK, "un socket"),
)


def reason(e: OSError) -> str:
    """Why an operation on a file failed, in Spanish (the system's own words only for a rare error)."""
    return ERRNO_SPANISH.get(e.errno) or e.strerror or str(e)


def megabytes(n: int) -> str:
    return f"{thousands(n / MB)} MB" if n >= MB else f"{thousands(n)} bytes"


def over_limit(size: int, limit: int) -> str:
    """ "ocupa X y el límite … es Y" in words where X and Y never read the same (17,000,000 bytes is not "16 MB" when
    the limit is 16 MB: it is said in bytes, and so is the limit)."""
    shown, most = megabytes(size), megabytes(limit)
    if shown == most:
        shown, most = f"{thousands(size)} bytes", f"{most} ({thousands(limit)} bytes)"
    return f"ocupa {shown} y el límite para este fichero es {most}"


def unreadable(path: Path, e: OSError, advice: str) -> TallerError:
    """The error for a file that exists but could not be opened or read."""
    if e.errno in (errno.EACCES, errno.EPERM):
        advice = f"comprueba sus permisos (p. ej. `chmod u+r {path}`)"
    return TallerError(f"no puedo leer {path}: {reason(e)}; {advice}.")


def refuse_unless_regular(path: Path, mode: int, advice: str) -> None:
    """A TallerError naming what `path` is, unless its mode is a regular file's."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in FILE_KINDS if test(mode)), "otra cosa")
    raise TallerError(f"{path} no es un fichero normal sino {kind}; {advice}.")


def regular_file(path: Path, advice: str) -> os.stat_result:
    """stat of `path` (a symbolic link followed), refusing what is not a regular file. A missing file raises
    FileNotFoundError for the caller to explain; any other failure is a TallerError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise unreadable(path, e, advice) from None
    refuse_unless_regular(path, st.st_mode, advice)
    return st


def open_regular(path: Path, advice: str):
    """`path` opened for binary reading if it is a regular file: checked before opening (a FIFO is never opened, so
    nothing blocks) and again on the open file (in case it was swapped in between)."""
    regular_file(path, advice)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise unreadable(path, e, advice) from None
    f = os.fdopen(fd, "rb")
    try:
        refuse_unless_regular(path, os.fstat(fd).st_mode, advice)
    except BaseException:
        f.close()
        raise
    return f


def read_bounded(path: Path, limit: int, advice: str, beyond: str = "") -> bytes:
    """The bytes of the regular file `path`, at most `limit`: its size is checked before reading, and reading stops
    at the limit even if the file grows meanwhile. `advice` says what to give instead; `beyond` how to go past the
    limit (else `advice`). A missing file raises FileNotFoundError for the caller to explain."""
    path = Path(path)
    with open_regular(path, advice) as f:
        size = os.fstat(f.fileno()).st_size
        if size <= limit:
            try:
                data = f.read(limit + 1)  # one byte more than allowed tells a file that grew meanwhile
            except OSError as e:
                raise unreadable(path, e, advice) from None
            size = len(data)
    if size > limit:
        raise TallerError(f"{path} {over_limit(size, limit)}; {beyond or advice}.")
    return data


def load_json(path: Path, limit: int, advice: str):
    """The JSON value in `path`, read with read_bounded; a file that is not JSON (or holds a number too long to
    convert, or nesting too deep) is a TallerError ending with `advice`."""
    data = read_bounded(path, limit, advice)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, an int over 4300 digits, nesting too deep
        raise TallerError(f"{path} no es JSON válido; {advice}.") from None


def load_json_object(path: Path, limit: int, missing: str) -> dict:
    """A JSON object (a dict) read with load_json; `missing` is the message when the file does not exist."""
    try:
        value = load_json(path, limit, "el fichero está dañado")
    except FileNotFoundError:
        raise TallerError(missing) from None
    if not isinstance(value, dict):
        raise TallerError(f"{path} debe ser un objeto JSON; el fichero está dañado.")
    return value


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the new one, never half of it."""
    atomic_write_all([(Path(path), data)])


def atomic_write_all(outputs: list[tuple[Path, bytes]]) -> None:
    """Write each (path, data) as atomic_write does, all or none: every file is written to a temporary one first, and
    only when all of them are on disk are they renamed (a full disk at the second leaves the first untouched)."""
    temporary: list[str] = []
    path = None  # the one being written: named in the refusal
    try:
        for path, data in outputs:
            temporary.append(written_aside(Path(path), data))
        for tmp, (path, _) in zip(temporary, outputs):
            os.replace(tmp, path)
    except BaseException as e:
        for tmp in temporary:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # renamed already, or never made
        if isinstance(e, OSError):
            raise TallerError(
                f"no pude escribir {path}: {reason(e)}; comprueba "
                "el espacio libre y los permisos. Lo que ya estaba guardado sigue intacto."
            ) from None
        raise


def written_aside(path: Path, data: bytes) -> str:
    """`data` in a new temporary file beside `path`, flushed to disk; returns its name. A failure (removing the
    half-written file) raises the OSError."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, advice: str) -> str:
    """SHA-256 of the regular file `path`, read a chunk at a time up to the size it had when opened (memory stays
    flat however large it is). A missing file raises FileNotFoundError."""
    h = hashlib.sha256()
    with open_regular(Path(path), advice) as f:
        left = os.fstat(f.fileno()).st_size
        while left > 0 and (chunk := f.read(min(HASH_CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def read_jsonl(path: Path, keep) -> list[dict]:
    """The JSON objects of a one-object-per-line file for which `keep(obj)` holds; a line cut short by a crash, or
    one that is not an object, is skipped. A missing file has none."""
    path = Path(path)
    try:
        data = read_bounded(path, JSONL_LIMIT, "la carpeta de la ejecución está dañada")
    except FileNotFoundError:
        return []
    entries = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # a line cut short, or a number too long to convert
            continue
        if isinstance(entry, dict) and keep(entry):
            entries.append(entry)
    return entries
