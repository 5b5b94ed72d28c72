"""`taller compare` with models that read both sides (BERT, T5): a second table, filling hidden words.

    taller compare --corpus quijote --models ngram,transformer,bert,t5 --max-time 300

BERT and T5 have no bits per character of the text to race with (a BERT pays for 15 % of the characters with both
sides in view), so they are not in the main table. When the list has one of them, every model of the comparison —
the left-to-right ones too — fills the same hidden words: BLANKS lines of the validation split, one word of 3 letters
or more hidden in each, told its length (inspect/word_blanks.py). Each puts every one of the VOCAB most frequent
training words of that length into the blank and keeps the best: the whole line's probability for an n-gram or a GPT,
the hidden word's for a BERT, the answer's for a T5. Beside it, the fillers' own validation figure: the share of the
fixed hidden characters a BERT guesses, of the answer tokens a T5 writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from taller.inspect.word_blanks import held_out_blanks, rank_exact, vocabulary
from taller.models import kind_of
from taller.text import markdown_table, number, thousands

BLANKS = 100  # hidden words, the same for every model
VOCAB = 300  # candidates per blank: the most frequent training words of its length
SEED = 0


@dataclass
class FillRow:
    model: str
    parameters: str
    train_time: float
    hidden_accuracy: float  # a BERT's share of the fixed hidden characters, a T5's of its answer tokens (nan: none)
    word_exact: float  # share of the blanks whose hidden word is ranked first
    covered: float  # share of the blanks whose word is among the VOCAB candidates


def fill_rows(named_runs: list[tuple[str, object]], log=print) -> tuple[list[FillRow], int]:
    """Each character run's row on the same held-out blanks (drawn from the first one's split: all share corpus and
    split), and how many blanks there were. A run of words or BPE tokens has no row: its candidates are tokens."""
    named_runs = [(name, run) for name, run in named_runs if run.tokenizer.kind == "char"]
    first = named_runs[0][1]
    items, counts = held_out_blanks(first, BLANKS, SEED, fewer=True), vocabulary(first.config)
    rows = []
    for name, run in named_runs:
        log(f"Relleno {len(items)} palabras escondidas de la validación con {name}…")
        exact, covered = rank_exact(run, items, VOCAB, counts)
        s, kind = run.state, kind_of(run.config)
        size = f"{thousands(s['counts'])} cuentas" if "counts" in s else thousands(s.get("parameters", 0))
        accuracy = float(s["val_accuracy"]) if kind.fills and "val_accuracy" in s else math.nan
        rows.append(FillRow(name, size, float(s.get("train_time", 0.0)), accuracy, exact, covered))
    return rows, len(items)


HEADER = ["modelo", "parámetros", "tiempo (s)", "acierto en sus huecos", "palabra exacta", "palabra entre candidatos"]


def fill_cells(row: FillRow) -> list[str]:
    percent = lambda x: "—" if math.isnan(x) else f"{number(100 * x, 1)} %"  # noqa: E731
    return [
        row.model,
        row.parameters,
        number(row.train_time, 1),
        percent(row.hidden_accuracy),
        percent(row.word_exact),
        percent(row.covered),
    ]


def fill_table(rows: list[FillRow], blanks: int) -> str:
    """The table for the terminal: aligned columns, and what each one means."""
    table = [HEADER] + [fill_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in table
    ]
    return "\n".join([f"Rellenar huecos: {explained(blanks)}", "", lines[0], "-" * len(lines[0]), *lines[1:]])


def explained(blanks: int) -> str:
    return (
        f"{thousands(blanks)} palabras de 3 letras o más escondidas en líneas de la validación (las mismas para "
        f"todos, sabiendo cuántas letras faltan); cada modelo pone en el hueco las {VOCAB} palabras más frecuentes "
        "del entrenamiento con ese largo y se queda con la mejor. «acierto en sus huecos»: la validación propia de "
        "BERT (caracteres escondidos) y de T5 (tokens de la respuesta)."
    )


def fill_markdown(rows: list[FillRow], blanks: int) -> list[str]:
    """compare.md's section for the fill table."""
    return ["", "## Rellenar huecos", "", explained(blanks), "", *markdown_table(HEADER, map(fill_cells, rows))]
