"""`taller compare --task tildes`: who puts the accents back best on the same validation text?

Each model fixes the corpus's validation text with its accents stripped; each word is compared with the original.

    lookup        each word's most frequent form in the training text (no model)
    ngram         the noisy channel (inspect/tildes.py) scored by a character n-gram
    transformer   the noisy channel scored by a GPT (a left-to-right model reading whole sentences)
    bert          the accent tagger: a BERT encoder and one mark per character
    t5            a T5 that writes the text again, «tildes: …» -> the text with its accents
    mix=RUN       the noisy channel scored by a mix of language models (taller train --model mix): given, never
                  trained here
    bert+ngram    the noisy channel of the list's ngram with the list's tagger's log-probabilities added to each
                  form's score (bert+transformer: with its GPT; bert+mix: with its mix): a row of its own, beside
                  both models' rows

A name alone trains that model here for --max-time seconds on the corpus (the tasks from scratch); `NAME=RUN` takes a
run already trained on the same corpus (a tagger pretrained longer, say). Columns: word accuracy and errors, accuracy
on the ambiguous words (data/accents.py: Lookup.ambiguous), on each of the 20 most frequent ambiguous words of the
validation text («que/qué»), and the seconds taken to fix the whole validation text. Writes tildes.md and tildes.csv
(and a run folder per model trained) into the output folder.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from taller.config import Config
from taller.data.accents import Lookup, strip, word_scores, words
from taller.data.corpora import prepare_corpus
from taller.data.split import split_corpus
from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect.tildes import load_fixer, noisy_channel
from taller.models import kind_named, kind_of, task_kind
from taller.runs.folder import check_run_dir, create_run_dir, run_split
from taller.text import markdown_table, number, thousands
from taller.training.loop import train

# a name -> the kind trained for it (None: no model)
MODELS = {
    "lookup": None,
    "ngram": "ngram",
    "transformer": "transformer",
    "bert": task_kind("tildes", "bert"),
    "t5": task_kind("tildes", "t5"),
}
GIVEN = {"mix": "taller train --model mix --set runs=A,B"}  # a name that needs its run (NAME=RUN) -> how to make one
COMBINED = {f"bert+{lm}": ("bert", lm) for lm in ("ngram", "transformer", "mix")}  # a name -> (tagger, language model)
PAIRS = 20  # the most frequent ambiguous words of the validation text, each with its own column of accuracy


@dataclass
class TildesRow:
    model: str
    source: str  # the run folder ("—": the lookup)
    words: int
    errors: int
    accuracy: float
    ambiguous: int
    ambiguous_accuracy: float
    seconds: float  # to fix the whole validation text
    pairs: dict[str, float] = field(default_factory=dict)  # «que/qué» -> accuracy on that word


def parse(models: list[str]) -> list[tuple[str, str | None]]:
    """`name` or `name=RUN`, each checked: (name, run folder or None)."""
    if not models:
        raise TallerError(f"--models está vacío; usa una lista con {', '.join(MODELS)} separados por comas.")
    specs = [(m.partition("=")[0].strip(), m.partition("=")[2].strip() or None) for m in models]
    names = [name for name, _ in specs]
    for name, run in specs:
        if name not in MODELS and name not in GIVEN and name not in COMBINED:
            raise TallerError(
                f"--models: «{name}» no es un modelo de tildes; usa {', '.join([*MODELS, *GIVEN, *COMBINED])} "
                "(o NOMBRE=RUN)."
            )
        if name in GIVEN and not run:
            raise TallerError(f"--models: {name} no se entrena aquí; da su ejecución, {name}=RUN ({GIVEN[name]}).")
        if (name == "lookup" or name in COMBINED) and run:
            raise TallerError(f"--models: {name} no usa ninguna ejecución propia; escribe solo «{name}».")
        missing = [part for part in COMBINED.get(name, ()) if part not in names]
        if missing:
            raise TallerError(f"--models: {name} junta dos filas de la lista; añade también {' y '.join(missing)}.")
    if len(set(names)) != len(names):
        raise TallerError(f"--models repite un modelo ({','.join(models)}); nombra cada uno una vez.")
    return specs


def config_for(name: str, corpus: str, max_time: float, overrides) -> Config:
    kind = MODELS[name]
    cfg = Config.preset(kind_named(kind).timed_preset)
    cfg.data.corpus, cfg.train.max_time, cfg.train.samples = corpus, max_time, 0
    cfg.set_kind(kind)
    cfg.apply_overrides(list(overrides), skip_other_kinds=True)
    return cfg.validate()


def pair_names(split, lookup: Lookup) -> dict[str, str]:
    """The PAIRS most frequent ambiguous words of the validation text: stripped word -> «form/form»."""
    counts = Counter(w for w in (strip(split.val[a:b]) for a, b in words(split.val)) if lookup.ambiguous(w))
    return {w: "/".join(lookup.candidates(w)[:2]) for w, _ in counts.most_common(PAIRS)}


def score(name: str, source: str, fixer, split, lookup: Lookup, pairs: dict[str, str]) -> TildesRow:
    start = time.perf_counter()
    fixed = fixer(split.val)
    seconds = time.perf_counter() - start
    s = word_scores(fixed, split.val, lookup)
    right, seen = Counter(), Counter()
    for a, b in words(split.val):
        bare = strip(split.val[a:b])
        if bare in pairs:
            seen[bare] += 1
            right[bare] += fixed[a:b] == split.val[a:b]
    return TildesRow(
        name,
        source,
        s["words"],
        s["errors"],
        s["accuracy"],
        s["ambiguous"],
        s["ambiguous_accuracy"],
        seconds,
        {pairs[w]: right[w] / seen[w] for w in pairs},
    )


def compare_tildes(
    corpus: str,
    models: list[str],
    max_time: float,
    out: str | Path,
    *,
    overrides=(),
    progress: bool = False,
    log=print,
    threads: int = 0,
) -> list[TildesRow]:
    """Each model (trained here, or a run given) fixes the corpus's validation text; one row each."""
    specs = parse(models)
    configs = {
        name: config_for(name, corpus, max_time, overrides) for name, run in specs if run is None and MODELS.get(name)
    }
    out = Path(out)
    check_run_dir(out, resume=False)
    base = Config()
    base.data.corpus = corpus
    base.apply_overrides(list(overrides), skip_other_kinds=True)  # --set split=tail speaks to the text as well
    split = split_corpus(prepare_corpus(base.data), base.data)
    given = {name: load_fixer(run) for name, run in specs if run}  # checked before anything is trained
    for name, (run, _) in given.items():
        if run_split(run.config, "comparar tildes").val != split.val:
            raise TallerError(
                f"--models {name}={run.dir}: se entrenó con otro texto o partición; la comparación "
                f"necesita ejecuciones de {corpus} con su partición de siempre."
            )
    for name in (n for n, _ in specs if n in COMBINED and all(part in given for part in COMBINED[n])):
        combined(given, name, None)  # the two runs can be joined: checked before anything is written
    create_run_dir(out)
    lookup = Lookup(split.train)
    pairs = pair_names(split, lookup)
    rows = []
    for name, run_dir in specs:
        if MODELS.get(name) and run_dir is None:
            log(f"\n== {name}: {max_time:g} s como máximo ==")
            train(configs[name], out / name, progress=progress, log=log, threads=threads)
            given[name] = load_fixer(out / name)
    for name, _ in specs:
        if name == "lookup":
            rows.append(score(name, "—", lambda text: lookup.fix(strip(text)), split, lookup, pairs))
            continue
        log(f"Pongo las tildes a la validación con {name}…")
        source, fixer = combined(given, name, lookup) if name in COMBINED else (str(given[name][0].dir), given[name][1])
        rows.append(score(name, source, fixer, split, lookup, pairs))
    write_tildes(rows, out, corpus)
    return rows


def combined(given: dict, name: str, lookup: Lookup | None):
    """bert+LM: the noisy channel of the list's language model with its tagger's scores added (inspect/tildes.py)."""
    (tagger, _), (lm, _) = (given[part] for part in COMBINED[name])
    tags = kind_of(tagger.config)
    if not tags.fixes_accents or tags.encoder_decoder or kind_of(lm.config).fixes_accents:
        raise TallerError(
            f"--models {name}: bert ha de ser un etiquetador de tildes BERT y {COMBINED[name][1]}, un modelo de "
            "lenguaje; da a cada uno su ejecución (bert=RUN, ngram=RUN)."
        )
    return f"{tagger.dir} + {lm.dir}", lambda text: noisy_channel(lm, lookup, text, tagger=tagger)


HEADER = ["modelo", "palabras bien", "errores", "ambiguas bien", "segundos"]


def cells(row: TildesRow) -> list[str]:
    return [
        row.model,
        f"{number(100 * row.accuracy)} %",
        thousands(row.errors),
        f"{number(100 * row.ambiguous_accuracy, 1)} %",
        number(row.seconds, 1),
    ]


def format_tildes(rows: list[TildesRow]) -> str:
    """The main table, then one line per ambiguous word with each model's accuracy on it."""
    r0 = rows[0]
    head = [f"{thousands(r0.words)} palabras de validación, {thousands(r0.ambiguous)} ambiguas"]
    table = [HEADER] + [cells(r) for r in rows]
    table += [[""] * len(HEADER), ["palabra ambigua"] + [r.model for r in rows]]
    table += [[pair] + [f"{number(100 * r.pairs[pair], 0)} %" for r in rows] for pair in r0.pairs]
    width = max(len(line[0]) for line in table)
    lines = ["  ".join([line[0].ljust(width)] + [c.rjust(13) for c in line[1:]]).rstrip() for line in table]
    return "\n".join(head + lines)


def write_tildes(rows: list[TildesRow], out: Path, corpus: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "modelo",
            "ejecucion",
            "palabras",
            "errores",
            "acierto",
            "ambiguas",
            "acierto_ambiguas",
            "segundos",
            *rows[0].pairs,
        ]
    )
    writer.writerows(
        [
            [
                r.model,
                r.source,
                r.words,
                r.errors,
                f"{r.accuracy:.5f}",
                r.ambiguous,
                f"{r.ambiguous_accuracy:.5f}",
                f"{r.seconds:.1f}",
                *(f"{v:.4f}" for v in r.pairs.values()),
            ]
            for r in rows
        ]
    )
    atomic_write(out / "tildes.csv", buffer.getvalue().encode("utf-8"))
    pairs = [[pair, *(f"{number(100 * r.pairs[pair], 0)} %" for r in rows)] for pair in rows[0].pairs]
    md = [
        f"# Tildes en {corpus}: la validación sin tildes, puesta de nuevo",
        "",
        *markdown_table(HEADER, map(cells, rows)),
    ]
    md += ["", *markdown_table(["palabra ambigua", *(r.model for r in rows)], pairs)]
    atomic_write(out / "tildes.md", ("\n".join(md) + "\n").encode("utf-8"))
