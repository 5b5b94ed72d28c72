"""Filling blanks with a model that reads both sides (BERT): `taller fill` and the two-sided probe.

    taller fill RUN --text "Más vale ___ que nunca"
        Each `_` is one hidden character (in a word or BPE run, a run of `_` is one hidden token). The model reads
        the text with [MASK] at every blank; the blank it is surest about is filled first, and the text is read
        again with that answer in place — one blank at a time, each step shown.

    taller fill RUN --text "Mañana llevo el coche al ___ porque hace un ruido raro" --candidates taller,desguace
        Each candidate word is put in the blank and scored by its pseudo-log-likelihood (Salazar et al. 2020): the
        sum over its characters of ln P(that character | everything else), hiding one character at a time; a BERT
        that learnt on whole hidden words (model.masking = words, spans) hides the whole candidate at once, as it
        learnt. Shown normalised over the candidates (they sum to 1), as the left-to-right probe does (probe.py).
        `--candidates auto`: the training text's words of the blank's length (inspect/word_blanks.py).

    A T5 run (encoder and decoder): each run of `_` is one span of any length, replaced by a sentinel <X0>, <X1> …;
    the decoder writes «<X0> … <X1> …» and each span goes back into its blank. A candidate's score is the
    log-probability of the answer «<X0> candidate <end>».

A text longer than the model's window is read in the window around the blanks (block_size tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from taller.data.corpora import clean_like
from taller.data.tokenizers import check_known
from taller.errors import TallerError
from taller.evaluate import LN2
from taller.inspect.probe import EXAMPLES, Candidate, check_candidates, probe
from taller.models import kind_of
from taller.models.modes import evaluating
from taller.text import number, show_token

BLANK = re.compile(r"_+")
TOP = 5  # alternatives shown per step
RIGHT_CONTEXTS = {  # the lesson's example, with two different endings after the blank
    "coche": (" porque hace un ruido raro.", " porque ya no tiene arreglo."),
}


@dataclass
class FillStep:
    position: int  # the token's place in the text read (0 = first)
    token: str  # the answer chosen
    probability: float
    top: list[tuple[str, float]]  # the most probable answers at that step
    text: str  # the text after this step (blanks still open shown as _)


@dataclass
class Filled:
    text: str  # the text with every blank filled
    steps: list[FillStep]


def encode_with_blanks(run, text: str) -> tuple[list[int], list[int]]:
    """The text's ids with [MASK] at each blank, and the blanks' positions. Characters: each `_` is a blank; tokens:
    each run of `_` is one."""
    tok, m = run.tokenizer, run.config.model
    text = clean_like(text, run.config.data)
    if "_" not in text:
        raise TallerError('--text no tiene ningún hueco: marca lo que falta con _ (p. ej. "Más vale ___ que nunca").')
    check_known(tok, BLANK.sub("", text))  # never dropped silently: the blanks would be filled for another text
    ids, blanks = [], []
    pieces = BLANK.split(text)
    holes = BLANK.findall(text)
    for k, piece in enumerate(pieces):
        ids += tok.encode(piece, unknown="replace") if piece else []
        if k < len(holes):
            n = len(holes[k]) if tok.kind == "char" else 1
            blanks += list(range(len(ids), len(ids) + n))
            ids += [m.mask_id] * n
    return ids, blanks


def window(ids: list[int], lo: int, hi: int, block: int) -> int:
    """Where a window of `block` tokens starts so that positions lo … hi are inside it, centred on them."""
    if hi - lo + 1 > block:
        raise TallerError(
            f"los huecos abarcan {hi - lo + 1} tokens y el modelo lee {block} a la vez; "
            "acércalos o rellénalos por partes."
        )
    start = (lo + hi + 1) // 2 - block // 2
    return max(0, min(start, len(ids) - block))


def pieces_of(run) -> list[str]:
    return list(run.tokenizer.pieces) + ["_"]  # [MASK] shows as a blank


@torch.no_grad()
def fill(run, text: str) -> Filled:
    """Fill every blank of `text`: BERT the surest first, one per step; T5 writing the spans one token at a time."""
    if kind_of(run.config).encoder_decoder:
        return fill_spans(run, text)
    ids, blanks = encode_with_blanks(run, text)
    m, pieces = run.config.model, pieces_of(run)
    start = window(ids, min(blanks), max(blanks), m.block_size)
    x = torch.tensor(ids[start : start + m.block_size])  # (T,) what the model reads
    open_ = [b - start for b in blanks]
    with evaluating(run.model):
        steps = []
        while open_:
            probs = torch.softmax(run.model(x[None])[0, :, : m.vocab_size].float(), dim=-1)  # (T, V): never [MASK]
            rows = probs[open_]  # (open, V)
            best_p, best_id = rows.max(dim=-1)  # (open,) each blank's surest answer
            k = int(best_p.argmax())
            pos = open_.pop(k)
            x[pos] = best_id[k]
            top_p, top_id = probs[pos].topk(min(TOP, m.vocab_size))
            steps.append(
                FillStep(
                    pos + start,
                    pieces[int(best_id[k])],
                    float(best_p[k]),
                    [(pieces[int(i)], float(p)) for p, i in zip(top_p, top_id)],
                    "".join(pieces[int(i)] for i in ids[:start])
                    + "".join(pieces[int(i)] for i in x)
                    + "".join(pieces[int(i)] for i in ids[start + len(x) :]),
                )
            )
        return Filled(steps[-1].text, steps)


def encode_with_sentinels(run, text: str) -> tuple[list[int], list[str], list[str]]:
    """T5: the text's ids with a sentinel for each run of `_` (cut to the window around them), and the text's pieces
    between the blanks."""
    tok, m = run.tokenizer, run.config.model
    text = clean_like(text, run.config.data)
    pieces, holes = BLANK.split(text), BLANK.findall(text)
    check_known(tok, "".join(pieces))
    if not holes:
        raise TallerError('--text no tiene ningún hueco: marca lo que falta con _ (p. ej. "Más vale ___ que nunca").')
    if len(holes) > m.n_sentinels:
        raise TallerError(
            f"el texto tiene {len(holes)} huecos y el modelo conoce {m.n_sentinels} centinelas; usa menos huecos."
        )
    ids, where = [], []
    for k, piece in enumerate(pieces):
        ids += tok.encode(piece, unknown="replace") if piece else []
        if k < len(holes):
            where.append(len(ids))
            ids.append(m.sentinel(k))
    start = window(ids, where[0], where[-1], m.block_size)
    return ids[start : start + m.block_size], pieces, holes


def fill_spans(run, text: str) -> Filled:
    """T5: the decoder writes «<X0> span <X1> span … <end>»; each span goes back into its blank."""
    src, pieces, holes = encode_with_sentinels(run, text)
    m, names = run.config.model, pieces_of(run)
    with evaluating(run.model):
        spans, current, steps = [[] for _ in holes], None, []
        for position, (token, p) in enumerate(run.model.answer(torch.tensor([src]))):
            if m.sentinel(0) <= token < m.sentinel(len(holes)):
                current = token - m.sentinel(0)
                shown = f"<X{current}>"
            elif token < m.vocab_size and current is not None:
                spans[current].append(token)
                shown = names[token]
            else:
                continue  # a sentinel of no blank, or words before the first sentinel: not part of any span
            filled = "".join(
                piece
                + (
                    run.tokenizer.decode(spans[k])
                    if k < len(holes) and spans[k]
                    else (holes[k] if k < len(holes) else "")
                )
                for k, piece in enumerate(pieces)
            )
            steps.append(FillStep(position, shown, p, [(shown, p)], filled))
        if not steps:
            raise TallerError("el modelo no ha escrito ninguna respuesta para los huecos; entrénalo más tiempo.")
        return Filled(steps[-1].text, steps)


def fill_table(filled: Filled) -> str:
    lines = [
        f"{'Paso':>4}  {'Posición':>8}  {'Elegido':<8} {'Prob.':>6}  alternativas",
    ]
    for k, s in enumerate(filled.steps, start=1):
        alternatives = "  ".join(f"{show_token(c)} {number(p, 3)}" for c, p in s.top)
        lines.append(f"{k:>4}  {s.position:>8}  {show_token(s.token):<8} {s.probability:>6.3f}  {alternatives}")
        lines.append(f"{'':>4}  → {s.text}")
    return "\n".join(lines)


@torch.no_grad()
def pseudo_log_likelihood(model, ids: list[int], positions: list[int], mask_id: int, vocab_size: int) -> float:
    """Σ over `positions` of ln P(ids[p] | ids with only p hidden): one copy of the text per position, one pass."""
    x = torch.tensor(ids).repeat(len(positions), 1)  # (P, T)
    rows = torch.arange(len(positions))
    targets = x[rows, positions].clone()  # (P,)
    x[rows, positions] = mask_id
    log_probs = torch.log_softmax(model(x)[rows, positions, :vocab_size].float(), dim=-1)  # (P, V)
    return float(log_probs[rows, targets].sum())


@torch.no_grad()
def hidden_word_log_likelihood(model, ids: list[int], positions: list[int], mask_id: int, vocab_size: int) -> float:
    """Σ over `positions` of ln P(ids[p] | ids with all of them hidden): how a BERT that learnt on whole hidden words
    (model.masking = words, spans) scores a word, in one pass."""
    x = torch.tensor(ids)[None].clone()  # (1, T)
    x[0, positions] = mask_id
    log_probs = torch.log_softmax(model(x)[0, positions, :vocab_size].float(), dim=-1)  # (P, V)
    return float(log_probs[torch.arange(len(positions)), torch.tensor(ids)[positions]].sum())


@torch.no_grad()
def answer_log_prob(model, src: list[int], answer: list[int], start_id: int) -> float:
    """ln P(answer | src) of an encoder-decoder, token by token with the true answer so far (one pass)."""
    dec_in = torch.tensor([[start_id, *answer[:-1]]])  # (1, L)
    log_probs = torch.log_softmax(model(torch.tensor([src]), dec_in)[0].float(), dim=-1)  # (L, n_ids)
    return float(log_probs[torch.arange(len(answer)), torch.tensor(answer)].sum())


def rank_candidates(run, text: str, candidates: list[str], unknown: str = "error") -> list[Candidate]:
    """Each candidate in the text's one blank, scored by pseudo-log-likelihood; probabilities over the candidates."""
    candidates = [c.strip() for c in candidates if c.strip()]
    if len(candidates) < 2:
        raise TallerError("--candidates necesita al menos dos palabras, p. ej. --candidates taller,desguace.")
    check_candidates(candidates)
    if len(BLANK.findall(text)) != 1:
        raise TallerError(
            "con --candidates el texto necesita exactamente un hueco (una serie de _), donde va cada candidato."
        )
    tok, m = run.tokenizer, run.config.model
    left, right = (clean_like(t, run.config.data) for t in BLANK.split(text))
    if unknown == "error":  # the built-in examples (two_sided_probe) are read with replacements, as probe does
        check_known(tok, left + right + "".join(clean_like(word, run.config.data) for word in candidates))
    with evaluating(run.model):
        scored = []
        for word in candidates:
            before = tok.encode(left, unknown="replace") if left else []
            inside = tok.encode(clean_like(word, run.config.data), unknown="replace")
            if not inside:
                raise TallerError(f"el candidato '{word}' no tiene ningún carácter que el modelo conozca.")
            ids = before + inside + (tok.encode(right, unknown="replace") if right else [])
            lo, hi = len(before), len(before) + len(inside) - 1
            start = window(ids, lo, hi, m.block_size)
            ids = ids[start : start + m.block_size]
            if kind_of(run.config).encoder_decoder:  # T5: ln P(«<X0> word <end>» | the text with <X0> in the blank)
                src = ids[: lo - start] + [m.sentinel(0)] + ids[hi - start + 1 :]
                score = answer_log_prob(run.model, src, [m.sentinel(0), *inside, m.end_id], m.start_id)
            else:
                positions = list(range(lo - start, hi - start + 1))
                by = pseudo_log_likelihood if m.masking == "chars" else hidden_word_log_likelihood
                score = by(run.model, ids, positions, m.mask_id, m.vocab_size)
            scored.append(Candidate(word, score, len(inside)))
        weights = torch.softmax(torch.tensor([c.log_prob for c in scored], dtype=torch.float64), dim=0)
        for c, w in zip(scored, weights):
            c.probability = float(w)
        return scored


def candidates_table(scored: list[Candidate]) -> str:
    lines = [f"  {'candidato':<16} {'probabilidad':>12} {'bits/carácter':>14} {'bits en total':>14}"]
    for c in sorted(scored, key=lambda c: -c.probability):
        lines.append(f"  {c.word:<16} {c.probability:>12.4f} {c.bits_per_char:>14.3f} {-c.log_prob / LN2:>14.2f}")
    return "\n".join(lines)


# --- the two-sided probe: the same blank, two endings, a left-to-right model beside one that reads both sides ------


def two_sided_probe(runs: list, example: str) -> str:
    """For each run, each candidate's probability with each of the example's two endings after the blank. A
    left-to-right model reads only what comes before: its columns are equal, whatever the ending says."""
    context, candidates = EXAMPLES[example]
    endings = RIGHT_CONTEXTS[example]
    out = [f"Contexto: «{context} ___»", *(f"  final {k}: «___{e}»" for k, e in enumerate(endings, start=1))]
    for run in runs:
        kind = kind_of(run.config)
        if kind.fills:
            columns = [rank_candidates(run, f"{context} ___{e}", candidates, "replace") for e in endings]
            how = "lee a los dos lados del hueco"
        else:
            same = probe(run, context, candidates).candidates
            columns, how = [same, same], "lee sólo lo anterior al hueco: el final no puede cambiar nada"
        out += [
            "",
            f"{run.dir} ({kind.title}: {how})",
            f"  {'candidato':<16}" + "".join(f"{f'con el final {k}':>18}" for k in range(1, len(endings) + 1)),
        ]
        for i, word in enumerate(candidates):
            out.append(f"  {word:<16}" + "".join(f"{col[i].probability:>18.4f}" for col in columns))
        answers = [max(col, key=lambda c: c.probability).word for col in columns]
        moved = "cambia con el final" if len(set(answers)) > 1 else "no cambia con el final"
        out.append(f"  respuesta: {' → '.join(answers)} ({moved})")
    return "\n".join(out)
