"""Named corpora: where a text comes from, how it is cleaned, and what it looks like.

A corpus name resolves, in this order, to:
  1. an explicit path to a UTF-8 text file;
  2. `$TALLER_DATA/<name>.txt`;
  3. the system's copy (Debian's fortunes-es puts the refranes in /usr/share/games/fortunes/es/);
  4. the user cache (`$TALLER_CACHE`, else ~/.cache/taller/<name>.txt);
  5. a real download, cleaned, checked against a known SHA-256 and written to the cache atomically
     (never when TALLER_OFFLINE is set).

Several texts joined by `+` («quijote+refranes», «quijote+mis_textos.txt») are one corpus: each text found as above
and cleaned alone, then one after another; the split (data/split.py) cuts each by its own rule.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from taller.errors import TallerError
from taller.files import MB, atomic_write, read_bounded
from taller.text import show_char, thousands

CORPUS_LIMIT = (
    256 * MB
)  # a corpus read whole into memory (its text, its ids, the int64 windows); larger: `taller prepare`
TEXT_FILE = "indica un fichero de texto UTF-8 (.txt)"
BINARY_CHECK = 64 * 1024  # bytes at the start searched for a NUL byte, which no text file has
DOWNLOAD_TIMEOUT = 60  # seconds to wait for a corpus's server
APT_TIMEOUT = 300  # seconds for `apt-get download fortunes-es`
AR_HEADER = 60  # bytes of the header before each member of an `ar` archive (a .deb)
# Debian's package of the refranes, from its archive over HTTPS where apt-get is not at hand (macOS, Windows, other
# Linux); the SHA-256 is Debian's own (`apt-cache show fortunes-es`), checked before anything is read from it.
DEBIAN_PACKAGE = "https://deb.debian.org/debian/pool/main/f/fortunes-es/fortunes-es_1.36_all.deb"
DEBIAN_PACKAGE_SHA256 = "54636edc1a4384093b68d1666c7e702ce42d1fcc8b5ab402d9646c328dcca899"
DEBIAN_PACKAGE_LIMIT = 4 * MB  # the package is 318 KB


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    description: str
    lines: bool  # one item per line (a proverb): validation takes whole lines
    sha256: str  # of the cleaned UTF-8 text
    system_paths: tuple[str, ...] = ()
    url: str = ""


CORPORA = {
    "refranes": CorpusInfo(
        name="refranes",
        description="4.995 refranes españoles, uno por línea (Debian fortunes-es 1.36, refranes.fortunes)",
        lines=True,
        sha256="fc6e272aaefc2bc71312a971609af27d68f4519d0c2be8b1e562ead4e2db7e19",
        system_paths=("/usr/share/games/fortunes/es/refranes.fortunes",),
    ),
    "quijote": CorpusInfo(
        name="quijote",
        description="Don Quijote de la Mancha, Miguel de Cervantes (Project Gutenberg #2000, sin cabecera ni pie)",
        lines=False,
        sha256="b23f7e93e3641ed041e59ed21da93c0d5610e991c9a2688e034c4345829b76b3",
        url="https://www.gutenberg.org/cache/epub/2000/pg2000.txt",
    ),
}


@dataclass
class Corpus:
    name: str
    text: str
    source: str  # where it was found
    lines: bool  # whether it is a corpus of one item per line
    parts: tuple[Corpus, ...] = ()  # several texts joined with `+`: each of them (their texts, one after another)


# --- cleaning -------------------------------------------------------------------------------------------------


def parse_fortunes(raw: str) -> list[str]:
    """Entries of a fortune file: separated by lines holding only '%'; lines of an entry joined, spaces trimmed."""
    entries, current = [], []
    for line in raw.splitlines():
        if line.strip() == "%":
            if current:
                entries.append(" ".join(" ".join(current).split()))
            current = []
        elif line.strip():
            current.append(line.strip())
    if current:
        entries.append(" ".join(" ".join(current).split()))
    return entries


def strip_gutenberg(raw: str) -> str:
    """The book between Project Gutenberg's '*** START OF' and '*** END OF' lines, BOM removed, Unix newlines."""
    text = raw.lstrip("\ufeff").replace("\r\n", "\n")
    start = text.find("*** START OF")
    if start != -1:
        text = text[text.index("\n", start) + 1 :]
    end = text.find("*** END OF")
    if end != -1:
        text = text[:end]
    return text.strip() + "\n"


# --- resolution -----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("TALLER_CACHE") or Path.home() / ".cache" / "taller")


def read_text_file(path: Path) -> str:
    """Read a user's text file, refusing what is not text with a message that says how to fix it."""
    try:
        data = read_bounded(
            path,
            CORPUS_LIMIT,
            TEXT_FILE,
            beyond=f"para un corpus así prepáralo en disco con `taller prepare --corpus {path} --out CARPETA` "
            "y entrena con --corpus CARPETA",
        )
    except FileNotFoundError:
        raise TallerError(
            f"no existe el fichero {path}; comprueba la ruta o usa un corpus con nombre (taller corpus list)."
        ) from None
    if not data.strip():
        raise TallerError(f"{path} está vacío; el corpus necesita texto con el que aprender.")
    if b"\x00" in data[:BINARY_CHECK]:
        raise TallerError(f"{path} parece un fichero binario, no texto; {TEXT_FILE}.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TallerError(
            f"{path} no es texto UTF-8 (byte {e.start}); conviértelo, p. ej. con "
            f"`iconv -f latin1 -t utf-8 {path.name} > nuevo.txt`."
        ) from None
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def load_corpus(name_or_path: str, *, download: bool = True) -> Corpus:
    """Find a corpus by name or path and return its cleaned text."""
    info = CORPORA.get(name_or_path)
    path = Path(name_or_path).expanduser()
    if info is None:
        if path.suffix or os.sep in name_or_path or path.exists():
            text = read_text_file(path)
            return Corpus(name=path.stem, text=text, source=str(path), lines=looks_like_lines(text))
        raise TallerError(
            f"corpus desconocido '{name_or_path}': usa {', '.join(CORPORA)} o la ruta de un fichero de texto UTF-8."
        )

    download = download and not os.environ.get("TALLER_OFFLINE")
    tried = []
    data_dir = os.environ.get("TALLER_DATA")
    if data_dir:
        candidate = Path(data_dir) / f"{info.name}.txt"
        if candidate.exists():
            return Corpus(info.name, read_text_file(candidate), str(candidate), info.lines)
        tried.append(f"$TALLER_DATA/{info.name}.txt ({candidate})")
    else:
        tried.append(f"$TALLER_DATA/{info.name}.txt (TALLER_DATA no está definida)")
    for sys_path in info.system_paths:
        if Path(sys_path).exists():
            entries = parse_fortunes(read_text_file(Path(sys_path)))
            return Corpus(info.name, "\n".join(entries) + "\n", sys_path, info.lines)
        tried.append(sys_path)
    cached = cache_dir() / f"{info.name}.txt"
    if cached.exists() or cached.is_symlink():
        return Corpus(info.name, read_cached(cached, info), str(cached), info.lines)
    tried.append(str(cached))
    if download:
        try:
            text = _fetch(info)
        except TallerError as e:
            tried.append(f"descarga ({e})")
        else:
            _save_verified(cached, text, info)
            return Corpus(info.name, text, f"descargado en {cached}", info.lines)
    offline = " (TALLER_OFFLINE está definida: no descargo nada)" if os.environ.get("TALLER_OFFLINE") else ""
    raise TallerError(
        f"no encuentro el corpus '{info.name}'{offline}. Probé: {'; '.join(tried)}. "
        f"Soluciones: define TALLER_DATA con la carpeta que tiene {info.name}.txt, "
        f"pasa la ruta del fichero, {where_else(info)}"
        "o conéctate a internet (sin TALLER_OFFLINE) para descargarlo."
    )


# --- options: the part of the text a configuration asks for ------------------------------------------------------


JOIN = "+"  # --corpus quijote+refranes: several texts as one corpus


def corpus_names(name: str) -> list[str]:
    """«quijote+refranes» -> the names of its texts; a single name, or a file whose own name has a +, -> [name]."""
    if JOIN not in name or Path(name).expanduser().exists():
        return [name]
    names = [part.strip() for part in name.split(JOIN)]
    if not all(names):
        raise TallerError(f"--corpus {name}: falta un texto entre los +; escribe p. ej. quijote+refranes.")
    return names


def prepare_corpus(data, download: bool = True) -> Corpus:
    """The corpus named by a DataConfig, cut between its markers, lowercased and with lines joined as it asks; for
    several texts (`a+b`), each prepared alone and then one after another (each ending in a newline).

    (`data.max_chars` is applied by the split, which may take validation from just after it.)
    """
    names = corpus_names(data.corpus)
    if len(names) == 1:
        return prepare_one(data, download)
    if data.start_marker or data.end_marker:
        raise TallerError(
            f"--corpus {data.corpus} junta varios textos y start_marker/end_marker cortarían sólo uno; "
            "quítalos (--set start_marker= --set end_marker=) o recorta cada fichero antes."
        )
    parts = tuple(prepare_one(replace(data, corpus=name), download) for name in names)
    text = "".join(p.text if p.text.endswith("\n") else p.text + "\n" for p in parts)
    return Corpus(JOIN.join(p.name for p in parts), text, " + ".join(p.source for p in parts), False, parts)


def prepare_one(data, download: bool = True) -> Corpus:
    """One text, as prepare_corpus says."""
    corpus = load_corpus(data.corpus, download=download)
    text = corpus.text
    if not (data.start_marker or data.end_marker or data.lowercase or data.join_lines):
        return corpus
    start = 0
    if data.start_marker:
        start = text.find(data.start_marker)
        if start == -1:
            raise TallerError(
                f"el corpus '{corpus.name}' no contiene start_marker={data.start_marker!r}; "
                "corrígelo o déjalo vacío (--set start_marker=) para empezar al principio."
            )
    if data.end_marker:
        # The lesson's text[start:text.find("Fin de la obra")]. When the marker is absent find() gives -1 and the
        # slice drops only the last character (this edition ends with a bare "Fin"): reproduced, not "fixed".
        text = text[start : text.find(data.end_marker)]
    else:
        text = text[start:]
    text = clean_like(text, data)
    if not text.strip():
        raise TallerError(f"entre start_marker y end_marker no queda texto en '{corpus.name}'; revisa los marcadores.")
    return Corpus(corpus.name, text, corpus.source, corpus.lines and not data.join_lines)


def clean_like(text: str, data) -> str:
    """Lowercase and join lines as the DataConfig says: for the training text, and for a prompt or a probe's context."""
    if data.lowercase:
        text = text.lower()
    if data.join_lines:
        text = text.replace("\n", " ")
    return text


MIN_LINES = 20  # a corpus of lines has at least this many…
MAX_LINE = 1000  # …and none longer than this (characters): longer ones are paragraphs of prose


def looks_like_lines(text: str) -> bool:
    """A text of many short, non-empty lines (proverbs, names, tweets) is split by whole lines."""
    lines = text.rstrip("\n").split("\n")
    return len(lines) >= MIN_LINES and all(line.strip() for line in lines) and max(map(len, lines)) <= MAX_LINE


def where_else(info: CorpusInfo) -> str:
    """Other ways to get a named corpus, for the message that says it was not found."""
    if info.system_paths:
        return f"instala el paquete fortunes-es de Debian ({info.system_paths[0]}), "
    return f"descarga {info.url} a mano, "


def _fetch(info: CorpusInfo) -> str:
    if info.name == "refranes":
        return _fetch_refranes()
    try:
        with urllib.request.urlopen(info.url, timeout=DOWNLOAD_TIMEOUT) as r:
            data = r.read(CORPUS_LIMIT + 1)  # bounded, as every read
        if len(data) > CORPUS_LIMIT:
            raise TallerError(f"{info.url} es mayor que {CORPUS_LIMIT // MB} MB")
        raw = data.decode("utf-8")
    except Exception as e:  # noqa: BLE001 - any network failure becomes one message
        raise TallerError(f"no pude descargar {info.url}: {e}") from None
    return strip_gutenberg(raw)


def _fetch_refranes() -> str:
    """Debian's fortunes-es package (apt-get where it exists, else Debian's archive over HTTPS), then
    refranes.fortunes read out of the .deb (an ar archive of tarballs)."""
    problems = []
    for fetch in (_apt_download, _archive_download):
        try:
            deb = fetch()
            break
        except TallerError as e:
            problems.append(str(e))
    else:
        raise TallerError("; ".join(problems))
    raw = extract_from_deb(deb, "refranes.fortunes")
    return "\n".join(parse_fortunes(raw.decode("utf-8"))) + "\n"


def _apt_download() -> bytes:
    """`apt-get download fortunes-es` (apt checks the package's signature and digest itself)."""
    if not shutil.which("apt-get"):
        raise TallerError("apt-get no está disponible")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["apt-get", "download", "fortunes-es"], cwd=tmp, capture_output=True, text=True, timeout=APT_TIMEOUT
        )
        debs = list(Path(tmp).glob("fortunes-es_*.deb"))
        if result.returncode != 0 or not debs:
            raise TallerError(f"apt-get download fortunes-es falló: {result.stderr.strip()[:200]}")
        return read_bounded(debs[0], DEBIAN_PACKAGE_LIMIT, "descarga refranes.txt a mano y usa TALLER_DATA")


def _archive_download(url: str = "", sha256: str = "") -> bytes:
    """The package from Debian's archive, refused unless its SHA-256 is Debian's."""
    url, sha256 = url or DEBIAN_PACKAGE, sha256 or DEBIAN_PACKAGE_SHA256
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as r:
            deb = r.read(DEBIAN_PACKAGE_LIMIT + 1)
    except Exception as e:  # noqa: BLE001 - any network failure becomes one message
        raise TallerError(f"no pude descargar {url}: {e}") from None
    digest = hashlib.sha256(deb).hexdigest()
    if len(deb) > DEBIAN_PACKAGE_LIMIT or digest != sha256:
        raise TallerError(
            f"el paquete descargado de {url} no es el esperado (SHA-256 {digest[:12]}… ≠ {sha256[:12]}…); "
            "no lo uso: descarga refranes.txt a mano y usa TALLER_DATA"
        )
    return deb


def extract_from_deb(deb: bytes, filename: str) -> bytes:
    """A file from a Debian package: an `ar` archive whose data.tar.* holds the installed files."""
    if not deb.startswith(b"!<arch>\n"):
        raise TallerError("el fichero .deb no es un archivo ar")
    pos = 8
    while pos + AR_HEADER <= len(deb):
        header = deb[pos : pos + AR_HEADER]
        name = header[:16].decode().strip().rstrip("/")  # bytes 0-15: the member's name; 48-57: its size
        size = int(header[48:58].decode().strip())
        body = deb[pos + AR_HEADER : pos + AR_HEADER + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith("/" + filename):
                        return tar.extractfile(member).read()
        pos += AR_HEADER + size + (size % 2)  # members start at even offsets
    raise TallerError(f"{filename} no está en el paquete")


def read_cached(path: Path, info: CorpusInfo) -> str:
    """The text of a cached download, if it is still the one that was checked: never through a link (a cache entry
    pointing at /etc/passwd), its SHA-256 checked on every read (a truncated or edited copy is refused)."""
    again = f"bórrala (`rm {path}`) y taller la descargará de nuevo, o usa TALLER_DATA"
    if path.is_symlink():
        raise TallerError(
            f"la copia en caché {path} es un enlace simbólico y taller sólo lee las copias que él mismo "
            f"descargó; {again}."
        )
    try:
        data = read_bounded(path, CORPUS_LIMIT, again)
    except FileNotFoundError:
        raise TallerError(f"la copia en caché {path} desapareció mientras la leía; vuelve a intentarlo.") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256:
        raise TallerError(
            f"la copia en caché {path} no es la que se descargó (SHA-256 {digest[:12]}… ≠ "
            f"{info.sha256[:12]}…): está truncada o modificada; {again}."
        )
    return data.decode("utf-8")


def _save_verified(path: Path, text: str, info: CorpusInfo) -> None:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != info.sha256:
        raise TallerError(
            f"el texto descargado de '{info.name}' no coincide con la suma SHA-256 esperada "
            f"({digest[:12]}… ≠ {info.sha256[:12]}…); la fuente ha cambiado: descárgalo a mano y usa TALLER_DATA."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))


# --- description ----------------------------------------------------------------------------------------------


def describe(corpus: Corpus, top: int = 15, samples: int = 5) -> str:
    """What `taller corpus show` prints: size, vocabulary, the most frequent characters and a few lines."""
    text = corpus.text
    counts = Counter(text)
    lines = [line for line in text.split("\n") if line.strip()]
    out = [
        f"Corpus: {corpus.name}   (fuente: {corpus.source})",
        f"Caracteres: {thousands(len(text))}",
        f"Líneas (no vacías): {thousands(len(lines))}",
        f"Vocabulario: {len(counts)} caracteres distintos",
        "Tipo: "
        + (
            "una entrada por línea (la validación toma líneas enteras)"
            if corpus.lines
            else "texto continuo (la validación es el final)"
        ),
        "",
        "Caracteres más frecuentes:",
    ]
    for ch, n in counts.most_common(top):
        out.append(f"  {show_char(ch):>4}  {thousands(n):>9}  {100 * n / len(text):5.2f} %")
    out += ["", "Algunas líneas:"]
    step = max(1, len(lines) // samples)
    out += [f"  {line[:100]}" for line in lines[::step][:samples]]
    return "\n".join(out)
