"""The two-sided probe on the book's own words: pairs of sentences that differ only after the blank.

    taller probe runs/gpt runs/bert --example quijote     the pairs in taller/data/probe_pairs.tsv
    taller probe runs/bert --pairs mis_parejas.tsv         a file of your own, written the same way

Each line: before<TAB>ending 1<TAB>answer 1<TAB>ending 2<TAB>answer 2 (lines starting with # are comments):

    «Sancho pidió ___, porque se moría de sed.»     → agua
    «Sancho pidió ___, porque se caía de sueño.»    → cama

Each (pair, ending) is one question: the run chooses between the two answers and is right if it prefers that
ending's. A BERT compares two answers of different lengths by their log-probability per letter: told the blank's
length, it has no probability for the length itself. A left-to-right model reads only what comes before the blank
(probe.py): it gives the same answer for both endings and is right exactly once per pair — 50 %, whatever it knows.
A model that reads both sides (BERT, T5: fill.py's candidates) can do better; how much better is what this measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taller.data.corpora import read_text_file
from taller.errors import TallerError
from taller.inspect.fill import rank_candidates
from taller.inspect.probe import probe
from taller.models import kind_of
from taller.text import number

PAIRS_FILE = Path(__file__).resolve().parent.parent / "data" / "probe_pairs.tsv"
PAIRS_EXAMPLE = "quijote"  # `taller probe --example quijote`
FIELDS = "antes del hueco, final 1, respuesta 1, final 2, respuesta 2"


@dataclass
class Pair:
    before: str  # the text before the blank
    endings: tuple[str, str]  # what follows the blank, each with its own answer
    answers: tuple[str, str]

    def text(self, k: int) -> str:
        return f"{self.before} ___{self.endings[k]}"


def read_pairs(path: Path | str) -> list[Pair]:
    """The pairs of a file; a line that is not five fields separated by tabs is refused with its number."""
    pairs = []
    for n, line in enumerate(read_text_file(Path(path)).split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 5 or not all(fields[i].strip() for i in (0, 2, 4)) or fields[2] == fields[4]:
            raise TallerError(
                f"{path}, línea {n}: cada pareja son 5 campos separados por tabuladores ({FIELDS}), "
                "con dos respuestas distintas; corrige esa línea."
            )
        pairs.append(Pair(fields[0].strip(), (fields[1], fields[3]), (fields[2].strip(), fields[4].strip())))
    if not pairs:
        raise TallerError(f"{path} no tiene ninguna pareja; escribe una por línea ({FIELDS}).")
    return pairs


def preferred(run, pair: Pair) -> tuple[str, str]:
    """The answer the run prefers with each ending."""
    kind = kind_of(run.config)
    if kind.fills:  # a T5 writes the answer and its end: whole probabilities. A BERT is told the blank's length (a
        #   [MASK] per letter) and cannot say how likely each length is: its answers, by log-probability per letter
        score = (lambda c: c.log_prob) if kind.encoder_decoder else (lambda c: c.log_prob / c.chars)
        return tuple(
            max(rank_candidates(run, pair.text(k), list(pair.answers), "replace"), key=score).word for k in (0, 1)
        )
    best = max(probe(run, pair.before, list(pair.answers)).candidates, key=lambda c: c.probability).word
    return best, best  # what comes after the blank is never read


def pairs_probe(runs: list, pairs: list[Pair]) -> str:
    """A mark per run and question (✓ the run preferred that ending's answer), then each run's share right."""
    chosen = [[preferred(run, pair) for pair in pairs] for run in runs]  # [run][pair] -> (answer 1, answer 2)
    width = max(len(p.text(k)) for p in pairs for k in (0, 1))
    out = [
        f"{len(pairs)} parejas que sólo se distinguen después del hueco ({2 * len(pairs)} preguntas); "
        "columnas: " + ", ".join(f"[{i}] {run.dir}" for i, run in enumerate(runs, start=1))
    ]
    for j, pair in enumerate(pairs):
        for k in (0, 1):
            marks = "  ".join(" ✓ " if chosen[i][j][k] == pair.answers[k] else " ✗ " for i in range(len(runs)))
            out.append(f"  {pair.text(k):<{width}}  {pair.answers[k]:<10} {marks}")
    out.append("")
    for i, run in enumerate(runs, start=1):
        right = sum(c[k] == p.answers[k] for c, p in zip(chosen[i - 1], pairs) for k in (0, 1))
        kind = kind_of(run.config)
        how = "lee a los dos lados del hueco" if kind.fills else "lee sólo lo anterior al hueco: 50 % por construcción"
        out.append(
            f"[{i}] {run.dir} ({kind.title}, {how}): {right} de {2 * len(pairs)} = "
            f"{number(100 * right / (2 * len(pairs)), 1)} %"
        )
    return "\n".join(out)
