"""Labelled texts for a classifier: a TSV file of `etiqueta<TAB>texto` lines, or the built-in «¿refranero o Cervantes?».

    refrán	Más vale tarde que nunca.
    Cervantes	En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que vivía un hidalgo.

«¿refranero o Cervantes?» (`--corpus refranero-o-cervantes`) needs no new data: lines of the refranes against as
many fragments of the Quijote (its text cut at every . ! ? ; : and dialogue dash, each fragment capitalised and
ended with a full stop, as a refrán is) chosen with the same lengths (each refrán gets a fragment whose length is
within the same 10 characters). So neither the length nor the punctuation of a text says its label: only the words
and how they go together. Always the same lines: the fragments are drawn with a fixed seed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taller.data.corpora import load_corpus, read_text_file
from taller.errors import TallerError

BUILTIN_TASK = "refranero-o-cervantes"
CLAUSE_END = re.compile(r"[.!?;:—]+")  # where the Quijote is cut into fragments
MIN_TEXTS = 4  # a labelled file needs at least this many lines: some to learn from, some to check
MAX_LABELS = 1000
MAX_LABEL_CHARS = 100  # a label is a name, not a text: 1,000 of them keep state.json (which lists them) small


@dataclass
class Labelled:
    name: str  # what the run's state.json calls the data
    source: str
    names: list[str]  # the labels, sorted
    texts: list[str]
    labels: list[int]  # index into names, one per text

    def split(self, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
        """Indices of the training and validation texts: a share held out at random, with a fixed seed."""
        n_val = max(1, round(len(self.texts) * val_fraction))
        order = np.random.default_rng(seed).permutation(len(self.texts))
        return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def parse_tsv(text: str, where: str) -> list[tuple[str, str]]:
    """`etiqueta<TAB>texto` lines (empty lines skipped) -> [(label, text)], or one line saying which line is wrong."""
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        label, tab, body = line.partition("\t")
        if not tab or not label.strip() or not body.strip():
            raise TallerError(
                f"{where}, línea {number}: se esperaba «etiqueta<TAB>texto» (un tabulador entre la "
                "etiqueta y el texto, ninguno de los dos vacío); corrige esa línea."
            )
        if len(label.strip()) > MAX_LABEL_CHARS:
            raise TallerError(
                f"{where}, línea {number}: la etiqueta tiene {len(label.strip())} caracteres y el máximo es "
                f"{MAX_LABEL_CHARS}; una etiqueta es un nombre corto (¿falta el tabulador tras ella?)."
            )
        pairs.append((label.strip(), body.strip()))
    return pairs


def fragments(text: str, shortest: int = 10, longest: int = 200) -> list[str]:
    """A book cut at its sentence and clause marks: 'y dijo: —Calla, Sancho' -> ['Y dijo.', 'Calla, Sancho.']."""
    parts = (p.strip(" ,") for p in CLAUSE_END.split(" ".join(text.split())))
    return [p[0].upper() + p[1:] + "." for p in parts if shortest <= len(p) <= longest and p[0].isalpha()]


def refranero_o_cervantes(seed: int = 0) -> list[tuple[str, str]]:
    """Each refrán beside a fragment of the Quijote of about its length (within the same 10 characters)."""
    proverbs = [line.strip() for line in load_corpus("refranes").text.split("\n") if line.strip()]
    by_length = defaultdict(list)  # length // 10 -> Quijote fragments of that length
    for s in fragments(load_corpus("quijote").text):
        by_length[len(s) // 10].append(s)
    rng = np.random.default_rng(seed)
    for bucket in by_length.values():
        rng.shuffle(bucket)
    pairs = []
    for proverb in proverbs:
        bucket = by_length.get(len(proverb) // 10)
        if bucket:  # a refrán with no fragment of its length left is left out, so that both labels stay matched
            pairs += [("refrán", proverb), ("Cervantes", bucket.pop())]
    return pairs


def load_labelled(corpus: str) -> Labelled:
    """The labelled texts `--corpus` names: the built-in task, or a TSV file."""
    if corpus == BUILTIN_TASK:
        pairs, name, source = refranero_o_cervantes(), BUILTIN_TASK, "refranes.txt y quijote.txt"
    else:
        path = Path(corpus).expanduser()
        if not path.is_file():
            raise TallerError(
                f"no existe el fichero {path}; un clasificador aprende de un fichero «etiqueta<TAB>texto» "
                f"por línea, o del ejemplo incorporado: --corpus {BUILTIN_TASK}."
            )
        pairs, name, source = parse_tsv(read_text_file(path), str(path)), path.stem, str(path)
    names = sorted({label for label, _ in pairs})
    if len(pairs) < MIN_TEXTS or not 2 <= len(names) <= MAX_LABELS:
        raise TallerError(
            f"{source}: {len(pairs)} textos con {len(names)} etiquetas; un clasificador necesita al menos "
            f"{MIN_TEXTS} textos y entre 2 y {MAX_LABELS} etiquetas distintas."
        )
    index = {label: i for i, label in enumerate(names)}
    return Labelled(name, source, names, [t for _, t in pairs], [index[label] for label, _ in pairs])
