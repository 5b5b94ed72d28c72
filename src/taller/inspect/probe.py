"""The context probe: which word does the model expect next, and does the long context change its mind?

Each candidate is scored as a whole word: the log-probability of its characters one after another, plus that of
a word boundary after it (any character that is not a letter or digit: space, comma, full stop…). Shown
normalised over the candidates (they sum to 1) and as bits per character, so that long and short words compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from taller.data.corpora import clean_like
from taller.errors import TallerError
from taller.evaluate import LN2
from taller.models.modes import evaluating
from taller.text import number, thousands

EXAMPLES = {
    "coche": (
        "Estoy harto de que mi coche no pare de tener averías. Ya he visto el modelo de coche que me quiero "
        "comprar. Mañana voy a llevar el coche al",
        ["taller", "desguace", "concesionario"],
    ),
}


@dataclass
class Candidate:
    word: str
    log_prob: float  # ln P(word, then a boundary | context), nats
    chars: int  # characters scored: the word's and the boundary
    probability: float = 0.0  # normalised over the candidates

    @property
    def bits_per_char(self) -> float:
        return -self.log_prob / LN2 / self.chars


@dataclass
class ProbeResult:
    context: str  # as the model read it (lowercased, etc., as its training text)
    candidates: list[Candidate]
    replaced: list[str]  # characters the model does not know, replaced before reading


def last_sentence(text: str) -> str:
    """'… comprar. Mañana voy a llevar el coche al' -> 'Mañana voy a llevar el coche al'."""
    return re.split(r"(?<=[.!?…;:])\s+", text.strip())[-1]


@torch.no_grad()
def next_token_log_probs(model, ids: list[int], start: int) -> torch.Tensor:
    """ln P(next token) after ids[:p] for p = start … len(ids): (len(ids) - start + 1, V).

    One pass over the whole text when the model can read it all; otherwise each row reads its last block_size
    tokens, as the model did in training. (The probe itself reads characters: its tokens are characters.)
    """
    x = torch.tensor(ids, device=next(model.parameters(), torch.zeros(0)).device)
    block = model.block_size
    if block is None or len(ids) <= block:
        logits = model(x[None])[0, start - 1 :]  # (len - start + 1, V)
    else:
        logits = torch.stack([model(x[None, max(0, p - block) : p])[0, -1] for p in range(start, len(ids) + 1)])
    return F.log_softmax(logits.float(), dim=-1)


MAX_CANDIDATES = 200  # candidates scored in one call: a few seconds on 2 cores for the lessons' models
CANDIDATE_CHARS = 64  # characters of one candidate at most (a word or a short phrase)


def check_candidates(candidates: list[str]) -> None:
    """At most MAX_CANDIDATES candidates of at most CANDIDATE_CHARS characters: one line with the limit and the way to
    score more, before any model runs."""
    if len(candidates) > MAX_CANDIDATES:
        raise TallerError(
            f"--candidates trae {thousands(len(candidates))} candidatos y el límite es {MAX_CANDIDATES} "
            f"por llamada (cada uno es una pasada del modelo); puntúalos en tandas de {MAX_CANDIDATES}, "
            "una llamada por tanda."
        )
    longest = max(candidates, key=len, default="")
    if len(longest) > CANDIDATE_CHARS:
        raise TallerError(
            f"el candidato «{longest[:20]}…» tiene {thousands(len(longest))} caracteres y el límite es "
            f"{CANDIDATE_CHARS} (los candidatos son palabras o frases cortas); acórtalo. La sorpresa de "
            "un texto largo la mide `taller explain RUN --surprise FICHERO`."
        )


def probe(run, context: str, candidates: list[str]) -> ProbeResult:
    """Score each candidate word after `context` with the run's model."""
    candidates = [c.strip() for c in candidates]
    if len(candidates) < 2 or not all(candidates):
        raise TallerError("--candidates necesita al menos dos palabras no vacías, p. ej. --candidates taller desguace.")
    check_candidates(candidates)
    data, tok = run.config.data, run.tokenizer
    if tok.kind != "char":
        raise TallerError(
            f"sondear puntúa los candidatos carácter a carácter y esta ejecución usa tokens {tok.kind}; "
            "usa una ejecución de caracteres (taller train --tokenizer char)."
        )
    text = clean_like(context, data)  # the context as the training text was prepared (lowercase, …)
    if not text.strip():
        raise TallerError("--context está vacío: escribe el comienzo de una frase para que el modelo la continúe.")
    if not text[-1].isspace():
        text += " "  # the candidates are new words
    words = [clean_like(c, data) for c in candidates]
    replaced = tok.unknown(text + "".join(words))
    ctx_ids = tok.encode(text, unknown="replace")
    boundary = [i for i, ch in enumerate(tok.chars) if not ch.isalnum()]
    with evaluating(run.model):
        scored = []
        for word, shown in zip(words, candidates):
            ids = tok.encode(word, unknown="replace")
            if not ids:
                raise TallerError(f"el candidato '{shown}' no tiene ningún carácter que el modelo conozca.")
            lp = next_token_log_probs(run.model, ctx_ids + ids, len(ctx_ids))  # (len(word) + 1, V)
            total = float(lp[torch.arange(len(ids)), torch.tensor(ids)].sum())
            if boundary:  # then the word ends
                total += float(torch.logsumexp(lp[-1, boundary], dim=0))
            scored.append(Candidate(shown, total, len(ids) + (1 if boundary else 0)))
        weights = torch.softmax(torch.tensor([c.log_prob for c in scored], dtype=torch.float64), dim=0)
        for c, w in zip(scored, weights):
            c.probability = float(w)
        return ProbeResult(text, scored, replaced)


def probe_table(result: ProbeResult, title: str) -> str:
    lines = [
        f"{title}: «{result.context.strip()}»",
        f"  {'candidato':<16} {'probabilidad':>12} {'bits/carácter':>14} {'bits en total':>14}",
    ]
    for c in result.candidates:
        shown = f"{number(c.probability, 4)}" if c.probability >= 1e-4 else f"{c.probability:.1e}"
        lines.append(f"  {c.word:<16} {shown:>12} {c.bits_per_char:>14.3f} {-c.log_prob / LN2:>14.2f}")
    if result.replaced:
        lines.append(f"  (el modelo no conoce {' '.join(repr(ch) for ch in result.replaced)}: los he sustituido)")
    return "\n".join(lines)
