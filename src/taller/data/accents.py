"""Accents as a task («tildes»): the text with its accents taken off is the question, the text itself the answer.

    original:   «Él dijo que sí, que está cansado»
    stripped:   «El dijo que si, que esta cansado»      á é í ó ú ü (and capitals) → bare letters; ñ stays

Every character keeps its place, so the answer is one mark per character (MARKS): none, acute (´) or diaeresis (¨).
Only a vowel can carry the acute and only «u» the diaeresis (CAN_CARRY): a model never has to think about any other
letter. The labels are free and exact on any Spanish text, which makes this a token-labelling task (the shape of
named-entity tagging) without a labelled file.

Words here are runs of letters (WORD); the lookup baseline, the noisy channel and the scores all use the same words.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import torch

NONE, ACUTE, DIAERESIS = 0, 1, 2  # the marks a character can get, as label ids
MARKS = ("ninguna", "aguda", "diéresis")  # their Spanish names
MARKED = {
    "á": ("a", ACUTE),
    "é": ("e", ACUTE),
    "í": ("i", ACUTE),
    "ó": ("o", ACUTE),
    "ú": ("u", ACUTE),
    "ü": ("u", DIAERESIS),
    "Á": ("A", ACUTE),
    "É": ("E", ACUTE),
    "Í": ("I", ACUTE),
    "Ó": ("O", ACUTE),
    "Ú": ("U", ACUTE),
    "Ü": ("U", DIAERESIS),
}  # marked letter -> (bare letter, mark)
WITH_MARK = {(bare, mark): ch for ch, (bare, mark) in MARKED.items()}  # (bare letter, mark) -> marked letter
CAN_CARRY = {bare: tuple(sorted({NONE} | {m for (b, m) in WITH_MARK if b == bare})) for bare, _ in MARKED.values()}
STRIP_TABLE = str.maketrans({ch: bare for ch, (bare, _) in MARKED.items()})
WORD = re.compile(r"[^\W\d_]+")  # a word: a run of letters


def strip(text: str) -> str:
    """The text with á é í ó ú ü (and capitals) turned into their bare letters; ñ and everything else kept."""
    return text.translate(STRIP_TABLE)


def marks_of(text: str) -> list[int]:
    """The mark of every character of `text` (NONE, ACUTE, DIAERESIS): what a tagger learns to answer."""
    return [MARKED[ch][1] if ch in MARKED else NONE for ch in text]


def can_carry(ch: str, mark: int) -> bool:
    """Whether the bare character `ch` can carry `mark` (every character can carry NONE)."""
    return mark == NONE or mark in CAN_CARRY.get(ch, ())


def apply_marks(bare: str, marks) -> str:
    """The bare text with each character's mark put on; a mark the character cannot carry leaves it bare.
    The result has the input's length and equals it wherever the mark is NONE."""
    return "".join(WITH_MARK.get((ch, int(m)), ch) if m != NONE else ch for ch, m in zip(bare, marks))


def words(text: str) -> list[tuple[int, int]]:
    """Where the words of `text` are: (start, end) of each run of letters."""
    return [m.span() for m in WORD.finditer(text)]


def window_starts(n: int, T: int) -> list[int]:
    """Where the windows of T characters start that cover a text of n, overlapping by half (T = min(T, n))."""
    starts = list(range(0, max(1, n - T + 1), max(1, T // 2)))
    if starts[-1] + T < n:
        starts.append(n - T)
    return starts


def centred(starts: list[int], answers, n: int):
    """Each window's answers (W, T, …) -> the text's (n, …): each position takes its answer from the window where it
    sits farthest from an edge (where the model read most on both sides)."""
    T = answers.shape[1]
    out = answers.new_zeros((n, *answers.shape[2:]))
    best = torch.full((n,), -1)  # (n,) distance to the nearest edge of the window that answered
    pos = torch.arange(T)
    margin = torch.minimum(pos, T - 1 - pos)  # (T,)
    for s, answer in zip(starts, answers):
        better = margin > best[s : s + T]
        out[s : s + T][better] = answer[better]
        best[s : s + T][better] = margin[better]
    return out


class Lookup:
    """The forms each stripped word takes in a training text, counted: the lookup baseline and the noisy channel's
    candidates. `fix` writes each word's most frequent training form (a word never seen stays as it is)."""

    def __init__(self, text: str):
        self.forms: dict[str, Counter] = defaultdict(Counter)  # stripped word -> Counter of its written forms
        for word in WORD.findall(text):
            self.forms[strip(word)][word] += 1
        self.best = {bare: forms.most_common(1)[0][0] for bare, forms in self.forms.items()}

    def candidates(self, bare: str) -> list[str]:
        """The training forms of a stripped word, the most frequent first ([bare] if never seen)."""
        forms = self.forms.get(bare)
        return [w for w, _ in forms.most_common()] if forms else [bare]

    def ambiguous(self, bare: str, min_count: int = 10, min_share: float = 0.05) -> bool:
        """Two forms or more in training, the second at ≥ min_share of ≥ min_count occurrences."""
        forms = self.forms.get(bare)
        if not forms or len(forms) < 2:
            return False
        total, second = sum(forms.values()), forms.most_common(2)[1][1]
        return total >= min_count and second >= min_share * total

    def fix(self, text: str) -> str:
        """Every word of `text` (stripped or not) written in its most frequent training form."""
        return WORD.sub(lambda m: self.best.get(strip(m.group()), m.group()), text)


FORMS = 3  # the most forms a stripped word takes in the Quijote's training text («el», «él», «Él» are two words)


def form_table(text: str, lookup: Lookup, k: int = FORMS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What a tagger needs to learn the choice its decoder makes (inspect/tildes.py: seen_forms) on `text`: for every
    word whose stripped letters take two forms or more in training, which of its k most frequent forms it is.

        forms (N, k) int8   at each character of such a word, its mark in each form (-1: the word has no such form;
                            -1 everywhere outside such words)
        back  (N,)  int32   at the word's last character, how far back its first one is (-1 elsewhere)
        truth (N,)  int8    at the word's last character, which form the text has (-1 elsewhere, or if it is none)
    """
    N = len(text)
    forms = torch.full((N, k), -1, dtype=torch.int8)
    back = torch.full((N,), -1, dtype=torch.int32)
    truth = torch.full((N,), -1, dtype=torch.int8)
    for a, b in words(text):
        options = lookup.candidates(strip(text[a:b]))[:k]
        if len(options) < 2:
            continue
        for i, form in enumerate(options):
            forms[a:b, i] = torch.tensor(marks_of(form), dtype=torch.int8)
        back[b - 1] = b - 1 - a
        truth[b - 1] = options.index(text[a:b]) if text[a:b] in options else -1
    return forms, back, truth


def word_scores(fixed: str, target: str, lookup: Lookup) -> dict:
    """How a fixed text compares with the original, word by word (the two have the same length and words):
    word accuracy, errors, and the accuracy on the words the training text leaves ambiguous."""
    if len(fixed) != len(target):
        raise ValueError("a fixed text must keep the length of its input")
    spans = words(target)
    right = [fixed[a:b] == target[a:b] for a, b in spans]
    hard = [lookup.ambiguous(strip(target[a:b])) for a, b in spans]
    n_hard = sum(hard)
    return {
        "words": len(spans),
        "errors": len(spans) - sum(right),
        "accuracy": sum(right) / max(1, len(spans)),
        "ambiguous": n_hard,
        "ambiguous_accuracy": sum(r for r, h in zip(right, hard) if h) / max(1, n_hard),
    }
