"""What the explorer answers for the runs that read both sides instead of writing: a BERT or T5 filling blanks, a
classifier answering a label.

    /api/fill       {run, text, candidates}  the blanks filled the surest first, each step with its alternatives
                                              (`taller fill`); with candidates ("auto" or "a,b,c"), each word in the
                                              one blank and its probability among them (`--candidates`)
    /api/classify   {run, text}              each label's probability (`taller classify`)
"""

from __future__ import annotations

import threading
from collections import Counter

import torch

from taller.apps.web.refusals import ApiError
from taller.apps.web.replies import MAX_TEXT, TextRequest
from taller.inspect.classify import classify
from taller.inspect.fill import BLANK, fill, rank_candidates
from taller.inspect.word_blanks import auto_candidates, blank_length, rank_words, vocabulary
from taller.runs.folder import Run
from taller.text import show_token, thousands

SHOWN = 10  # candidates a reply lists, the most probable first
MAX_CANDIDATES = 50  # words a request may list itself ("auto" takes the training text's)
VOCABULARIES_KEPT = 4  # runs whose training words stay counted (the oldest is forgotten first)
_vocabularies: dict[tuple[str, str], Counter] = {}
_vocabularies_lock = threading.Lock()


class FillRequest(TextRequest):
    candidates: str = ""  # "": fill the blanks · "auto": the training words of the blank's length · "a,b,c"


def checked_length(text: str, example: str) -> str:
    if len(text) > MAX_TEXT:
        raise ApiError(
            413, f"el texto tiene {thousands(len(text))} caracteres y el máximo es {thousands(MAX_TEXT)}; acórtalo."
        )
    if not text.strip():
        raise ApiError(400, f"el texto está vacío; escribe una frase, p. ej. «{example}».")
    return text


def fill_reply(run: Run, req: FillRequest) -> dict:
    """/api/fill: the filled text and its steps; with candidates, their ranking as well."""
    text = checked_length(req.text, "Más vale ___ que nunca.")
    reply = {"text": text}
    if req.candidates.strip():
        reply["candidates"] = ranked(run, text, req.candidates.strip())
        reply["filled"] = BLANK.sub(reply["candidates"][0]["word"], text, count=1)
        return reply
    filled = fill(run, text)
    reply["filled"] = filled.text
    reply["steps"] = [
        {
            "token": show_token(s.token),
            "probability": s.probability,
            "top": [[show_token(c), p] for c, p in s.top],
            "text": s.text,
        }
        for s in filled.steps
    ]
    return reply


def ranked(run: Run, text: str, candidates: str) -> list[dict]:
    """The candidates, the most probable first (at most SHOWN), as `taller fill --candidates` ranks them."""
    if candidates == "auto":
        words = auto_candidates(run, blank_length(text), counts=training_words(run))
        scored = rank_words(run, text, words)
    else:
        words = candidates.split(",")
        if len(words) > MAX_CANDIDATES:
            raise ApiError(413, f"{len(words)} candidatos son demasiados; da como mucho {MAX_CANDIDATES}, o «auto».")
        scored = rank_candidates(run, text, words)
    best = sorted(scored, key=lambda c: -c.probability)[:SHOWN]
    return [{"word": c.word, "probability": c.probability} for c in best]


def training_words(run: Run) -> Counter:
    """The run's training words, counted once per run folder and data settings: without it every «auto» request would
    read and split the whole corpus again."""
    key = (str(run.dir), repr(run.config.data))
    with _vocabularies_lock:
        if key in _vocabularies:
            return _vocabularies[key]
    counts = vocabulary(run.config)  # outside the lock: two first requests may both count, never wait on each other
    with _vocabularies_lock:
        while len(_vocabularies) >= VOCABULARIES_KEPT:
            _vocabularies.pop(next(iter(_vocabularies)))
        _vocabularies[key] = counts
    return counts


def classify_reply(run: Run, text: str) -> dict:
    """/api/classify: every label with its probability, the most probable first."""
    with torch.no_grad():
        answers = classify(run, checked_length(text, "Quien mucho abarca, poco aprieta."))
    return {"text": text, "answers": [{"label": label, "probability": p} for label, p in answers]}
