"""`taller export`: a trained model taken out of taller.

    html   one page that runs the model in any browser, from disk (html_page.py, static/)
    onnx   the logits model for onnxruntime and other tools, with its tokenizer as JSON beside it (onnx_model.py)

What a kind can be exported to is its Kind record's `exports`; the rest are refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from taller.apps.export.html_page import check_tokenizer, render_page
from taller.apps.export.onnx_model import OPSET, onnx_bytes
from taller.config import Config
from taller.errors import TallerError
from taller.files import atomic_write, atomic_write_all, megabytes
from taller.models import KINDS, kind_of
from taller.runs.folder import check_output, load_run
from taller.text import spanish_list

FORMATS = {"html": "una página HTML", "onnx": "ONNX"}


def tokenizer_path(out: Path) -> Path:
    """Where the ONNX model's tokenizer goes: modelo.onnx → modelo.tokenizer.json."""
    return out.with_name(out.stem + ".tokenizer.json")


def check_kind(run_dir: Path, fmt: str) -> None:
    """Refuse, before the weights are read, a run whose kind does not declare this format."""
    if not (run_dir / "config.toml").is_file():
        return  # load_run says what is missing
    kind = kind_of(Config.load(run_dir / "config.toml", saved=True))
    if fmt not in kind.exports:
        able = spanish_list([k.title for k in KINDS.values() if fmt in k.exports])
        raise TallerError(
            f"{run_dir} es un modelo de tipo {kind.title}, que no se puede exportar a {FORMATS[fmt]}; "
            f"se pueden exportar {able}."
        )


def export_run(run_dir: str | Path, fmt: str, out: Path, force: bool = False) -> str:
    """Write the run as `fmt` into `out` (never over a file without `force`); returns what was written, in Spanish."""
    if fmt not in FORMATS:
        raise TallerError(f"--format {fmt}: usa {' u '.join(FORMATS)}.")
    outputs = [out, tokenizer_path(out)] if fmt == "onnx" else [out]
    for path in outputs:
        check_output(path, force, "-o")
    run_dir = Path(run_dir)
    check_kind(run_dir, fmt)
    run = load_run(run_dir)
    if fmt == "html":
        check_tokenizer(run)
        atomic_write(out, render_page(run, kind_of(run.config).title).encode("utf-8"))
        return (
            f"Página en {out} ({megabytes(out.stat().st_size)}): ábrela con cualquier navegador, sin red ni "
            "servidor, o compártela como un fichero más."
        )
    # both or neither: a full disk at the tokenizer leaves no .onnx without it
    atomic_write_all([(out, onnx_bytes(run.model)), (outputs[1], run.tokenizer.to_json().encode("utf-8"))])
    limit = f" con T ≤ {run.model.block_size}" if run.model.block_size else ""
    return (
        f"Modelo ONNX (opset {OPSET}) en {out} ({megabytes(out.stat().st_size)}) y su tokenizador en "
        f"{outputs[1]}: entrada «ids» (1, T) de enteros{limit}, salida «logits» (1, T, V)."
    )
