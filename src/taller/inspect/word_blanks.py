"""One hidden word, told its length: the training text's words of that length as candidates, ranked by any model.

    taller fill RUN --text "En un lugar de la ______ de cuyo nombre no quiero acordarme" --candidates auto

Each candidate w goes into the blank of «left ___ right»; how each family scores it:

    left to right (n-gram, GPT, LSTM …)   ln P(left w right): the whole line, one character after another. Only the
                                          part from the blank on differs between candidates, and the characters
                                          after the blank say whether w fits what follows.
    BERT, whole words hidden              Σ_i ln P(w_i | the text with the whole blank hidden): one reading of the
        (model.masking = words, spans)    text scores every candidate, as the model learnt (a word is hidden whole)
    BERT, characters hidden (chars)       the pseudo-log-likelihood: Σ_i ln P(w_i | everything else, only i hidden)
    T5                                    ln P(«<X0> w <end>» | the text with <X0> in the blank)

Candidates are the words of the run's own training text (never its validation), the most frequent first.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import torch
import torch.nn.functional as F

from taller.data.corpora import clean_like
from taller.errors import TallerError
from taller.evaluate import scoring_window
from taller.inspect.fill import BLANK, encode_with_blanks, window
from taller.inspect.probe import Candidate
from taller.models import kind_of
from taller.models.modes import evaluating
from taller.runs.folder import run_split
from taller.text import number, thousands

WORD = re.compile(r"[^\W\d_]+")  # a word: letters in a row
HIDDEN = re.compile(r"[^\W\d_]{3,}")  # a word worth hiding: 3 letters or more
RANK_WINDOW = 64  # the most characters a left-to-right model reads around each candidate
RIGHT = 16  # characters after the blank that a left-to-right model scores
ROWS = 2048  # sequences read at once


def vocabulary(config) -> Counter:
    """How often each word appears in the run's training text (split by the run's own rule; val never counts)."""
    return Counter(WORD.findall(run_split(config, "buscar candidatos en su vocabulario").train))


def auto_candidates(run, length: int, limit: int = 0, counts: Counter | None = None) -> list[str]:
    """The training text's words of `length` letters, the most frequent first (at most `limit`; 0: all)."""
    if run.tokenizer.kind != "char":
        raise TallerError(
            "--candidates auto pone en el hueco las palabras del entrenamiento que tienen tantas letras "
            "como _ hay, y eso necesita un modelo de caracteres; da tú las palabras: --candidates a,b,c."
        )
    counts = vocabulary(run.config) if counts is None else counts
    words = [w for w, _ in counts.most_common() if len(w) == length]
    if len(words) < 2:
        raise TallerError(
            f"el texto de entrenamiento tiene {len(words)} palabras de {length} letras: no hay "
            "candidatos que ordenar; da tú las palabras: --candidates a,b,c."
        )
    return words[:limit] if limit else words


def blank_length(text: str) -> int:
    holes = BLANK.findall(text)
    if len(holes) != 1:
        raise TallerError(
            "con --candidates el texto necesita exactamente un hueco (una serie de _), donde va cada candidato."
        )
    return len(holes[0])


BERT_SCORES = ("", "pll", "hidden")  # how a BERT scores: as it learnt (its masking), or the one named


@torch.no_grad()
def rank_words(run, text: str, words: list[str], bert_score: str = "") -> list[Candidate]:
    """Each word (all of the blank's length, a character model) in the text's one blank, scored by the run's family
    (see the module's docstring); probabilities normalised over the words. `bert_score` ("pll": one character hidden
    at a time, "hidden": the whole blank hidden; "": as the BERT learnt) lets bench/fill_words.py compare the two."""
    L = blank_length(text)
    left, right = (clean_like(t, run.config.data) for t in BLANK.split(text))
    tok, kind = run.tokenizer, kind_of(run.config)
    ids = torch.tensor([tok.encode(clean_like(w, run.config.data), unknown="replace") for w in words])  # (C, L)
    if ids.shape[1] != L:
        raise TallerError(f"los candidatos deben tener {L} letras, tantas como _ tiene el hueco.")
    with evaluating(run.model):
        if kind.language_model:
            scores = left_to_right(run, tok.encode(left, unknown="replace"), ids, tok.encode(right, unknown="replace"))
        elif kind.encoder_decoder:
            scores = answers(run, text, ids)
        elif (bert_score or ("pll" if run.config.model.masking == "chars" else "hidden")) == "pll":
            scores = pseudo_likelihoods(run, text, ids)
        else:
            scores = whole_word(run, text, ids)
    weights = torch.softmax(scores.double(), dim=0)
    return [Candidate(w, float(s), L, float(p)) for w, s, p in zip(words, scores, weights)]


def left_to_right(run, left: list[int], ids: torch.Tensor, right: list[int]) -> torch.Tensor:
    """ln P(left w right) − ln P(left), for each row w of ids (C, L): the characters from the blank to RIGHT."""
    C, L = ids.shape
    width = min(scoring_window(run.model, run.config.model), RANK_WINDOW)
    right = right[: max(0, min(RIGHT, width - L - 1))]
    left = left[max(0, len(left) - (width - L - len(right))) :] or tok_start(run)
    seq = torch.cat([torch.tensor(left).expand(C, -1), ids, torch.tensor(right, dtype=torch.long).expand(C, -1)], 1)
    x, y = seq[:, :-1], seq[:, len(left) :]  # (C, S-1) read, (C, L + R) scored
    out = []
    for i in range(0, C, max(1, ROWS // 4)):
        logp = F.log_softmax(run.model(x[i : i + ROWS // 4]).float()[:, len(left) - 1 :], dim=-1)  # (c, L + R, V)
        out.append(logp.gather(-1, y[i : i + ROWS // 4, :, None])[..., 0].sum(1))
    return torch.cat(out)


def tok_start(run) -> list[int]:
    return list(run.tokenizer.start_ids())  # a blank at the very start: read after what starts a line


def whole_word(run, text: str, ids: torch.Tensor) -> torch.Tensor:
    """BERT trained on whole words: one reading with the whole blank hidden; Σ_i ln P(w_i | that) per row of ids."""
    seq, blanks = encode_with_blanks(run, text)
    m = run.config.model
    start = window(seq, blanks[0], blanks[-1], m.block_size)
    x = torch.tensor(seq[start : start + m.block_size])[None]  # (1, T)
    logp = F.log_softmax(run.model(x)[0, [b - start for b in blanks], : m.vocab_size].float(), dim=-1)  # (L, V)
    return logp[torch.arange(ids.shape[1]), ids].sum(1)  # (C,)


def pseudo_likelihoods(run, text: str, ids: torch.Tensor) -> torch.Tensor:
    """BERT trained on single characters: each word in the blank, each of its characters hidden in turn."""
    seq, blanks = encode_with_blanks(run, text)
    m = run.config.model
    start = window(seq, blanks[0], blanks[-1], m.block_size)
    base = torch.tensor(seq[start : start + m.block_size])  # (T,)
    C, L = ids.shape
    pos = torch.tensor([b - start for b in blanks])  # (L,)
    x = base.repeat(C, 1)
    x[:, pos] = ids  # (C, T) each candidate in place
    x = x.repeat_interleave(L, 0)  # (C·L, T): copy k of candidate c hides its k-th character
    k = torch.arange(C * L) % L
    x[torch.arange(C * L), pos[k]] = m.mask_id
    out = []
    for i in range(0, C * L, ROWS):
        logp = F.log_softmax(
            run.model(x[i : i + ROWS])[
                torch.arange(len(x[i : i + ROWS])), pos[k[i : i + ROWS]], : m.vocab_size
            ].float(),
            dim=-1,
        )  # (r, V)
        out.append(logp.gather(-1, ids.view(-1)[i : i + ROWS, None])[:, 0])
    return torch.cat(out).view(C, L).sum(1)


def answers(run, text: str, ids: torch.Tensor) -> torch.Tensor:
    """T5: ln P(«<X0> w <end>» | the text with <X0> in the blank), every candidate in one batch of the decoder."""
    m, tok = run.config.model, run.tokenizer
    left, right = (clean_like(t, run.config.data) for t in BLANK.split(text))
    before, after = tok.encode(left, unknown="replace"), tok.encode(right, unknown="replace")
    src = before + [m.sentinel(0)] + after
    start = window(src, len(before), len(before), m.block_size)
    src = torch.tensor(src[start : start + m.block_size])[None]  # (1, S)
    C, L = ids.shape
    answer = torch.cat([torch.full((C, 1), m.sentinel(0)), ids, torch.full((C, 1), m.end_id)], 1)  # (C, L + 2)
    dec_in = torch.cat([torch.full((C, 1), m.start_id), answer[:, :-1]], 1)
    out = []
    for i in range(0, C, ROWS // 8):
        logits = run.model(src.expand(len(dec_in[i : i + ROWS // 8]), -1), dec_in[i : i + ROWS // 8]).float()
        out.append(F.log_softmax(logits, -1).gather(-1, answer[i : i + ROWS // 8, :, None])[..., 0].sum(1))
    return torch.cat(out)


SHOWN = 10  # candidates `--candidates auto` prints


def auto_table(run, text: str) -> str:
    """`taller fill RUN --text … --candidates auto`: the training words of the blank's length, the best first."""
    L = blank_length(text)
    words = auto_candidates(run, L)
    scored = sorted(rank_words(run, text, words), key=lambda c: -c.probability)
    lines = [
        f"Las {thousands(len(words))} palabras de {L} letras del entrenamiento en el hueco de «{text}»; "
        f"las {min(SHOWN, len(words))} más probables:",
        f"  {'candidato':<16} {'probabilidad':>12}",
    ]
    lines += [f"  {c.word:<16} {number(c.probability, 4):>12}" for c in scored[:SHOWN]]
    return "\n".join(lines + [BLANK.sub(scored[0].word, text, count=1)])


# --- held-out blanks: one word hidden in lines of the run's own validation split (bench/fill_words.py, compare) ---


def held_out_blanks(run, n: int, seed: int, fewer: bool = False) -> list[tuple[str, int, int]]:
    """(text, start, end): n lines of the run's validation split, one word of 3+ letters each; the text is the line
    (a corpus of lines) or the line between its neighbours (a book), every character one the run knows. `fewer`: as
    many as there are when val has fewer than n such lines (else a TallerError)."""
    lines = run_split(run.config, "esconder palabras de su validación").val.split("\n")
    known = set(run.tokenizer.pieces)
    rng = random.Random(seed)
    usable = [i for i, line in enumerate(lines) if HIDDEN.search(line) and set(line) <= known]
    if len(usable) < n and not fewer:
        raise TallerError(
            f"la validación tiene {len(usable)} líneas con palabras de 3 letras o más; pide --n {len(usable)}."
        )
    out = []
    for i in sorted(rng.sample(usable, min(n, len(usable)))):
        m = rng.choice(list(HIDDEN.finditer(lines[i])))
        before = "" if run.line_corpus or i == 0 else lines[i - 1] + "\n"
        after = "" if run.line_corpus or i + 1 == len(lines) else "\n" + lines[i + 1]
        if not set(before + after) <= known:
            before = after = ""
        out.append((before + lines[i] + after, len(before) + m.start(), len(before) + m.end()))
    return out


def rank_exact(run, items, limit: int, counts: Counter, bert_score: str = "") -> tuple[float, float]:
    """(exact, covered) over `items` (held_out_blanks): the share of blanks whose best training word of the blank's
    length (the `limit` most frequent; 0: all) is the hidden one, and the share whose word was among the candidates."""
    hits = covered = 0
    for line, a, b in items:
        words = auto_candidates(run, b - a, limit, counts)
        covered += line[a:b] in words
        scored = rank_words(run, line[:a] + "_" * (b - a) + line[b:], words, bert_score)
        hits += max(scored, key=lambda c: c.log_prob).word == line[a:b]
    return hits / max(1, len(items)), covered / max(1, len(items))
