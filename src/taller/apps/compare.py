"""taller compare: the same text, the same split, the same time budget — who predicts the val text best?

Each model is trained (or, the n-gram, fitted) on the same training text, for at most the same number of seconds,
and scored on the same val text in bits per character. A model is named `kind` or `kind:tokenizer`
(`transformer:bpe`, `lstm:word`): whatever its tokens, its loss is turned into bits per character of the same text.
As reference rows, general-purpose compressors: the standard library's three, and where they are installed 7-Zip's
PPMd and zpaq -m5 (a context mixer, the best of them; a missing one is named with how to install it). A compressor
that has read the training text needs this many extra bits per character to store the val text
(size(train + val) − size(train)), which is also a prediction score; a compressor whose tables grow with its input
(zpaq) is given the same tables for both, or the difference would credit val with what larger tables save on train.
After them, the context mixer of models/cm/, counting alone and with the best character model of the comparison as
one more input (`taller compress --cm`).

Writes compare.csv, compare.md, compare.png, memory.png (how far back each model looks: inspect/memory.py) and
one run folder per model, into the output folder. A BERT or a T5 in the list (they read both sides: no bits per
character of the text) goes into a second table, filling hidden words beside the others (compare_fill.py).
"""

from __future__ import annotations

import bz2
import csv
import io
import lzma
import math
import shutil
import subprocess
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from taller.apps import compress_cm
from taller.apps.compare_fill import fill_markdown, fill_rows, fill_table
from taller.apps.compress import compress_text
from taller.config import TOKENIZER_KINDS, Config
from taller.data.corpora import clean_like, prepare_corpus
from taller.data.prepared import is_prepared
from taller.data.split import split_corpus
from taller.errors import TallerError
from taller.evaluate import LN2
from taller.files import atomic_write
from taller.inspect.memory import memory_curve, memory_plot, validation_ids
from taller.inspect.plots import new_figure, save_figure
from taller.models import KINDS, kind_named, kind_of, language_models
from taller.models.cm.predictor import DEFAULT
from taller.runs.folder import check_run_dir, create_run_dir
from taller.text import markdown_table, thousands
from taller.training.adapt import Adaptation, can_adapt, score_run
from taller.training.loop import train

COMPRESSORS = {  # name -> bytes -> compressed bytes
    "zlib": lambda b: zlib.compress(b, 9),  # a 32 KB window: it barely remembers the training text
    "bz2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),  # xz -9e
}


@dataclass
class Row:
    model: str
    parameters: str  # "618.716", or "1.234.567 cuentas" for an n-gram, "—" for a compressor
    train_time: float  # seconds spent training / fitting / compressing
    chars_per_s: float
    val_loss: float  # nats per character
    val_bpc: float
    sample: str
    chars_per_token: float = 1.0  # characters of val per token: 1 for characters, about 2 for a BPE of 512
    adapt_bpc: float = math.nan  # with --adapt: learning while reading the val text (nan: not measured)
    file_bpc: float = (
        math.nan
    )  # the real size of the val text compressed by the model (`taller compress`), in bits/char


def compare(
    corpus: str,
    models: list[str],
    max_time: float,
    out: str | Path,
    *,
    overrides: list[str] = (),
    prompt: str = "",
    progress: bool = False,
    adapt: bool = False,
    mix: bool = True,
    memory: bool = True,
    cm: bool = True,
    log=print,
    threads: int = 0,
) -> list[Row]:
    """Train each model for `max_time` seconds on `corpus`, score it on val (and, with `adapt`, while learning from
    it), compress val with it; mix the character models; add the compressors and (`cm`) the context mixer; write the
    results. `memory=False`: no memory.png (its curves cost each model 64 × 65 windows of reading)."""
    configs = check_request(corpus, models, max_time, overrides)
    out = Path(out)
    check_run_dir(out, resume=False)
    split = the_split(configs[0])  # the data options are the same for every model; a missing corpus: no folder left
    create_run_dir(out)
    rows, curves, named = [], {}, []
    for name, cfg in zip(models, configs):
        log(f"\n== {name}: {max_time:g} s como máximo ==")
        run = train(cfg, out / name.replace(":", "-"), progress=progress, log=log, threads=threads)
        named.append((name, run))
        if not kind_of(run.config).language_model:  # a BERT, a T5: only in the fill table
            continue
        rows.append(model_row(run, name, prompt, split.val, adapt, log))
        if memory:
            curves[rows[-1].model] = memory_curve(run.model, validation_ids(run), run.tokenizer.vocab_size)
    runs = [run for _, run in named if kind_of(run.config).language_model]
    chars = [run for run in runs if run.tokenizer.kind == "char"]  # the same text and tokens: they can be mixed
    chars = [run for run in chars if run.config.data == chars[0].config.data]
    if mix and len(chars) >= 2:
        log(f"\n== mix: {' + '.join(run.dir.name for run in chars)} ==")
        run = train(mix_config(chars), out / "mix", progress=progress, log=log, threads=threads)
        rows.append(model_row(run, "mix", prompt, split.val, adapt, log))
        if memory:
            curves["mix"] = memory_curve(run.model, validation_ids(run), run.tokenizer.vocab_size)
    if memory and curves:
        memory_plot(curves, out / "memory.png", f"{corpus}: ¿hasta dónde mira atrás cada modelo?")
    filling = []
    if any(kind_of(run.config).fills for _, run in named):
        fills, blanks = fill_rows(named, log)
        log("\n" + fill_table(fills, blanks))
        filling = fill_markdown(fills, blanks)
    rows += compressor_rows(split) + (cm_rows(split, chars, log) if cm else [])
    write_results(rows, out, corpus, max_time, filling)
    return rows


def check_request(corpus: str, models: list[str], max_time: float, overrides) -> list[Config]:
    """Every configuration, checked before anything is trained."""
    specs = [parse_spec(m) for m in models]
    if not models:
        raise TallerError(f"--models está vacío; usa una lista con {', '.join(comparable())} separados por comas.")
    if len(set(models)) != len(models):
        raise TallerError(f"--models repite un modelo ({','.join(models)}); nombra cada uno una vez.")
    if not max_time > 0:
        raise TallerError(f"--max-time={max_time} debe ser positivo (segundos de entrenamiento por modelo).")
    if is_prepared(corpus):
        raise TallerError(
            f"{corpus} es una carpeta: compare mide también los compresores sobre el texto, así que "
            "necesita el fichero de texto (o refranes, quijote), no una carpeta preparada."
        )
    configs = []
    for kind, tokenizer in specs:
        cfg = Config.preset(kind_named(kind).timed_preset)
        cfg.data.corpus, cfg.train.max_time, cfg.train.samples = corpus, max_time, 1
        cfg.set_kind(kind)
        cfg.apply_overrides(list(overrides), skip_other_kinds=True)  # --set d_model=… speaks to the models that have it
        if tokenizer:
            cfg.data.tokenizer = tokenizer
        configs.append(cfg.validate())
    return configs


def mix_config(runs: list) -> Config:
    """The mix of `runs` (trained runs of the same text and tokens): the combining kind's preset."""
    cfg = Config.preset(next(k.preset for k in KINDS.values() if k.combines))
    cfg.model.runs = ",".join(str(run.dir) for run in runs)
    cfg.data, cfg.train.samples, cfg.train.seed = runs[0].config.data, 1, runs[0].config.train.seed
    return cfg


def model_row(run, name: str, prompt: str, val: str, adapt: bool, log) -> Row:
    """A trained run's row: its scores, a sample, and its real compressed size on val."""
    s, kind = run.state, kind_of(run.config)
    size = (
        f"{thousands(s['counts'])} cuentas"
        if "counts" in s  # a count model
        else "—"
        if kind.combines
        else thousands(s["parameters"])
    )  # a mix: its parts' are in their own rows
    label = name if run.tokenizer.kind == "char" else f"{kind.name}:{run.tokenizer.kind}-{run.tokenizer.vocab_size}"
    sample = run.generate(
        clean_like(prompt, run.config.data),
        1,
        max_chars=70,
        seed=0,
        temperature=0.8,
        stop=None,
        unknown="replace",
        top=0,
    )[0].text
    row = Row(
        label,
        size,
        s["train_time"],
        s["chars_per_s"],
        s["val_loss"],
        s["val_bpc"],
        " ".join(sample.split()),
        s.get("val_chars_per_token", 1.0),
    )
    if adapt and can_adapt(run):
        log("Puntúo la validación aprendiendo mientras la leo (--adapt)…")
        row.adapt_bpc = score_run(run, Adaptation()).adapted.bpc
    log("Comprimo la validación con el modelo…")
    try:
        row.file_bpc = compress_text(run, val, "la validación").bits_per_char
    except TallerError as e:  # a word tokenizer that can't write the text back exactly: said, and the cell stays empty
        log(f"Nota: {e}")
    return row


def cm_rows(split, chars: list, log) -> list[Row]:
    """The context mixer's rows (models/cm/): counting alone, and with the best character network as one more input
    of its mixer (`taller compress --cm`): the bits each needs for val after reading train."""
    best = min(chars, key=lambda run: run.state["val_bpc"], default=None)
    settings = replace(DEFAULT, warm=min(DEFAULT.warm, len(split.train) // 10))  # a tiny text: not all read slowly
    rows = []
    for name, run in [("cm (sólo contar)", None)] + ([("cm + red", best)] if best else []):
        log(f"Comprimo la validación con {name}…")
        started = time.perf_counter()
        data, _, ideal, _ = compress_cm.encode(split.train, split.val, run, settings)
        elapsed, bpc, n = time.perf_counter() - started, ideal / len(split.val), len(split.val)
        size = f"red: {run.dir.name}" if run else "—"
        rows.append(Row(name, size, elapsed, n / elapsed, bpc * LN2, bpc, "—", file_bpc=8 * len(data) / n))
    return rows


def compressor_rows(split) -> list[Row]:
    """The compressors' rows: the bits each needs for val after reading train."""
    rows = []
    train_bytes, val_bytes = split.train.encode("utf-8"), (split.train + split.val).encode("utf-8")
    for name, compress in compressors().items():
        started = time.perf_counter()
        extra_bits = 8 * (compress(val_bytes, len(val_bytes)) - compress(train_bytes, len(val_bytes)))
        elapsed = time.perf_counter() - started
        bpc = extra_bits / len(split.val)
        rows.append(
            Row(
                name, "—", elapsed, (2 * len(split.train) + len(split.val)) / elapsed, bpc * LN2, bpc, "—", file_bpc=bpc
            )
        )
    return rows


def compressors() -> dict:
    """name -> (bytes, the size its tables are made for) -> compressed size: the standard library's three (whose
    tables do not depend on the input), and the installed programs of `PROGRAMS`."""
    found = {name: (lambda b, _, f=f: len(f(b))) for name, f in COMPRESSORS.items()}
    found.update({name: size for name, (program, size, _) in PROGRAMS.items() if shutil.which(program)})
    return found


def missing_compressors() -> list[str]:
    """One Spanish line for each reference program that is not installed, with how to install it."""
    return [
        f"{name}: no está instalado ({how}); instálalo para verlo en la tabla."
        for name, (program, _, how) in PROGRAMS.items()
        if not shutil.which(program)
    ]


def archive_size(before: list[str], data: bytes, suffix: str, after: tuple[str, ...] = ()) -> int:
    """Run an archiver on `data` written to a temporary file (`before` ARCHIVE TEXT `after`): the archive's size."""
    with tempfile.TemporaryDirectory() as folder:
        text, archive = Path(folder) / "texto", Path(folder) / f"texto{suffix}"
        text.write_bytes(data)
        subprocess.run([*before, str(archive), str(text), *after], capture_output=True, check=True, timeout=1200)
        return archive.stat().st_size


def ppmd_size(data: bytes, tables_for: int = 0) -> int:
    """7-Zip's PPMd of order 8 (prediction by partial matching: an adaptive context model from 1984, refined), with
    256 MB of memory whatever the input (`tables_for` changes nothing)."""
    return archive_size([shutil.which("7z"), "a", "-bd", "-y", "-t7z", "-m0=PPMd:o=8:mem=256m"], data, ".7z")


# What `zpaq -m5` runs on a block of text (libzpaq 7.15 expands level 5 into this for text, when it finds no
# periodic structure): a word model, ICM–ISSE chains over orders 0 … 6, sparse contexts, a match model, mixers and an
# SSE stage. Written out so that its tables' size can be chosen (below); on the Quijote its archives have exactly the
# sizes -m5 gives, for the training text alone and with its validation.
ZPAQ_TEXT = "0w2c0,1010,255i1c256ci1,1,1,1,1,1,2ac0,2,0,255i1c0,3,0,0,255i1c0,4,0,0,0,255i1mm16ts19t0"


def zpaq_block(size: int) -> int:
    """The exponent B of the block zpaq -m5 makes for `size` bytes (2^B MiB ≥ size + 4 KiB): every table of its
    model is sized by it. The Quijote's training text alone gets B = 1, with its validation B = 2: with -m5 the two
    archives differ by more than the validation's bits (1.560 bits/char instead of 1.713)."""
    return max((size + 4095).bit_length() - 20, 0)


def zpaq_size(data: bytes, tables_for: int = 0) -> int:
    """zpaq -m5's model (context mixing: many context models, a match model and mixers that learn while they read),
    its tables made for `tables_for` bytes (at least the data's); the archive's few header bytes cancel out in
    size(train + val) − size(train)."""
    method = f"x{zpaq_block(max(tables_for, len(data)))},{ZPAQ_TEXT}"
    return archive_size([shutil.which("zpaq"), "a"], data, ".zpaq", after=("-method", method, "-t1"))


# The reference programs compare adds where they are installed: name -> (program, size function, how to install it).
PROGRAMS = {
    "ppmd": ("7z", ppmd_size, "7-Zip: sudo apt install p7zip-full"),
    "zpaq-m5": ("zpaq", zpaq_size, "sudo apt install zpaq"),
}


def comparable() -> list[str]:
    """What --models may name: the language models trained on their own (a mix is added by compare itself), and the
    models that fill blanks (BERT, T5: in the fill table)."""
    return [name for name in language_models() if not kind_named(name).combines] + [
        name for name, kind in KINDS.items() if kind.fills
    ]


def parse_spec(spec: str) -> tuple[str, str]:
    """'transformer' -> ('transformer', ''); 'transformer:bpe' -> ('transformer', 'bpe')."""
    kind, _, tokenizer = spec.partition(":")
    if kind in KINDS and not (KINDS[kind].language_model or KINDS[kind].fills):  # one that does not predict text
        raise TallerError(
            f"--models: {kind} es {KINDS[kind].a_title}, no un modelo de lenguaje: no predice texto, así "
            f"que no se puntúa en bits por carácter; compara {', '.join(comparable())}."
        )
    if kind in language_models() and kind_named(kind).combines:
        raise TallerError(
            f"--models: '{spec}': compare añade la mezcla de los modelos de caracteres por su cuenta; "
            "quítala de la lista."
        )
    if kind not in comparable():
        raise TallerError(
            f"--models: '{spec}' no es un modelo; usa {', '.join(comparable())}, con :bpe o :word si "
            "quieres otros tokens (por ejemplo transformer:bpe), separados por comas."
        )
    if tokenizer not in ("", "char") and kind_named(kind).fills:
        raise TallerError(
            f"--models: '{spec}': la tabla «Rellenar huecos» pone palabras letra a letra en el hueco; "
            f"compara {kind} con caracteres (sin :{tokenizer})."
        )
    if tokenizer and tokenizer not in TOKENIZER_KINDS:
        raise TallerError(
            f"--models: '{spec}': el tokenizador '{tokenizer}' no existe; usa {', '.join(TOKENIZER_KINDS)}."
        )
    return kind, tokenizer


def the_split(cfg: Config):
    corpus = prepare_corpus(cfg.data)
    return split_corpus(corpus, cfg.data)


HEADER = [
    "modelo",
    "parámetros",
    "tiempo (s)",
    "car/s",
    "car/token",
    "val (nats/token)",
    "val bits/car",
    "--adapt bits/car",
    "fichero bits/car",
    "muestra",
]
LEFT = (0, 1, 9)  # the columns aligned to the left


def cells(row: Row) -> list[str]:
    maybe = lambda x: "—" if math.isnan(x) else f"{x:.3f}"  # noqa: E731
    return [
        row.model,
        row.parameters,
        f"{row.train_time:.1f}",
        thousands(row.chars_per_s),
        f"{row.chars_per_token:.2f}" if row.sample != "—" else "—",
        f"{row.val_loss:.4f}",
        f"{row.val_bpc:.3f}",
        maybe(row.adapt_bpc),
        maybe(row.file_bpc),
        row.sample,
    ]


def format_table(rows: list[Row], sample_width: int = 50) -> str:
    table = [HEADER] + [cells(r)[:-1] + [r.sample[:sample_width]] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) if i in LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in table
    ]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def write_results(rows: list[Row], out: Path, corpus: str, max_time: float, filling: list[str] = ()) -> None:
    """compare.csv, compare.md (with `filling`, the fill table's section) and compare.png."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(asdict(rows[0])))
    writer.writerows([list(asdict(r).values()) for r in rows])
    atomic_write(out / "compare.csv", buffer.getvalue().encode("utf-8"))

    md = [f"# Comparación en {corpus} ({max_time:g} s por modelo)", "", *markdown_table(HEADER, map(cells, rows))]
    md += [
        "",
        "Compresores: bits extra para guardar la validación después del texto de entrenamiento.",
        "fichero bits/car: el tamaño real de la validación comprimida con el modelo (`taller compress`, codificación "
        "aritmética); --adapt: el modelo aprende mientras lee la validación (`taller score --adapt`).",
        "mix: la mezcla de los modelos de caracteres, con pesos ajustados en un trozo del texto de entrenamiento.",
        "Modelos de tokens (bpe, word): su pérdida es por token; bits/car la reparte entre los caracteres del mismo "
        "texto de validación, así todas las filas se comparan en la misma escala.",
        *missing_compressors(),
        *filling,
    ]
    atomic_write(out / "compare.md", ("\n".join(md) + "\n").encode("utf-8"))
    compare_plot(rows, out / "compare.png", f"{corpus}: {max_time:g} s por modelo")


def compare_plot(rows: list[Row], path: Path, title: str) -> None:
    fig = new_figure(figsize=(7, 0.5 * len(rows) + 1.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    names = [r.model for r in rows][::-1]
    values = [r.val_bpc for r in rows][::-1]
    colours = ["tab:gray" if r.sample == "—" else "tab:blue" for r in rows][::-1]
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=3, fontsize=9)
    ax.set_xlabel("bits por carácter en validación (menos es mejor)")
    ax.set_title(title)
    ax.set_xlim(0, max(values) * 1.15)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
