"""`taller tildes`: put the accents back on a text, with an accent tagger or with any language model.

Two ways, one answer (the text, same length, accents put back):

- a tagger (a kind that `fixes_accents`, BERT's head over every character): one mark per character, read from both
  sides of it (`fix_text`);
- a language model (a GPT, an n-gram, a mix …): the noisy channel. Each word may be written in any form its
  stripped letters took in the run's training text (data/accents.py: Lookup); a beam over the sentence keeps the
  sequence of forms the model finds most probable, scoring each choice on the word and on the characters after it
  (`noisy_channel`), so «esta» is decided by «cansado» as well as by what came before.

Which letters changed is shown under the text (`marked`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taller.data.accents import (
    ACUTE,
    WITH_MARK,
    Lookup,
    apply_marks,
    can_carry,
    centred,
    marks_of,
    strip,
    window_starts,
    words,
)
from taller.errors import TallerError
from taller.evaluate import scoring_window
from taller.files import MB, atomic_write, megabytes, read_bounded
from taller.models import kind_of
from taller.models.bert import N_MARKS
from taller.models.modes import evaluating
from taller.models.t5 import TILDES_PREFIX
from taller.runs.folder import Run, check_output, load_run, run_split

TEXT_LIMIT = 8 * MB  # bytes of text `taller tildes --file` reads (a Quijote is 2 MB)
NOISY_CONTEXT = 64  # characters before a choice the language model reads
NOISY_AHEAD = 32  # characters after a word that its choice is scored on
NOISY_BEAM = 8  # sequences of choices kept


def allowed_marks(tokenizer) -> torch.Tensor:
    """(V, N_MARKS) bool: which marks each token of a character tokenizer can carry."""
    return torch.tensor([[can_carry(ch, m) for m in range(N_MARKS)] for ch in tokenizer.pieces])


def mark_ids(tokenizer) -> torch.Tensor:
    """(V, N_MARKS): the id of each character of a tokenizer with each mark on (none: itself), -1 where there is no
    such character (a consonant with an acute, or one the tokenizer lacks): what a T5 may write for a bare letter."""
    pieces = tokenizer.pieces
    return torch.tensor(
        [[tokenizer.index.get(WITH_MARK.get((ch, m), "") if m else ch, -1) for m in range(N_MARKS)] for ch in pieces]
    )


def char_ids(tokenizer, text: str) -> torch.Tensor:
    """One id per character (N,), whatever the text: an unknown character becomes its replacement (tokenizers.py) or,
    if it has none, the first token, so that every character keeps its place."""
    known = "".join(c if c in tokenizer.index else (tokenizer.replacement(c) or tokenizer.pieces[0]) for c in text)
    return torch.tensor(tokenizer.encode(known), dtype=torch.long)


def fix_text(model, tokenizer, text: str, lookup: Lookup | None = None) -> str:
    """The text with its accents put back by a tagger: stripped, marked per character, same length as the input.
    With `lookup`, a word seen in training is written in one of its training forms (`seen_forms`)."""
    bare = strip(text)
    if not bare:
        return bare
    logp = model.mark_log_probs(char_ids(tokenizer, bare), allowed_marks(tokenizer))  # (N, N_MARKS)
    marks = logp.argmax(-1).tolist()
    if lookup is not None:
        seen_forms(marks, logp.numpy(), bare, lookup)
    return apply_marks(bare, marks)


def seen_forms(marks: list[int], logp, bare: str, lookup: Lookup) -> None:
    """Each word of `bare` that the training text has (as it is or in small letters) takes, in `marks`, the marks of
    the training form the tagger finds most probable (the sum of its characters' log-probabilities, logp (N,
    N_MARKS)); a word never seen takes the tagger's own marks, one acute at most (`one_acute`), so it can still get
    an accent it never saw."""
    for a, b in words(bare):
        forms = lookup.forms.get(bare[a:b]) or lookup.forms.get(bare[a:b].lower())
        if not forms:
            marks[a:b] = one_acute(logp[a:b])
            continue
        options = [marks_of(form) for form in forms]
        rows = logp[a:b]
        marks[a:b] = (
            max(options, key=lambda m: sum(rows[i, k] for i, k in enumerate(m))) if len(options) > 1 else options[0]
        )


def one_acute(rows, always: bool = False) -> list[int]:
    """A word's likeliest marks (rows (L, N_MARKS) of log-probabilities) with one acute at most, as Spanish writes
    them: each letter's best mark but the acute, and the acute on the letter where it gains most over that, if it
    gains anywhere (`always`: even if it loses, wherever a letter can carry one)."""
    other = rows.copy()
    other[:, ACUTE] = -np.inf
    out = other.argmax(-1).tolist()
    gain = rows[:, ACUTE] - other.max(-1)  # (L,): -inf where no acute is possible
    best = int(gain.argmax())
    if gain[best] > 0 or (always and gain[best] > -np.inf):
        out[best] = ACUTE
    return out


def word_options(bare: str, lookup: Lookup | None) -> dict[int, tuple[int, list[list[int]]]]:
    """Every position inside a word the training text has: (where the word starts, the marks of its training forms)."""
    options = {}
    for a, b in words(bare) if lookup is not None else ():
        forms = lookup.forms.get(bare[a:b]) or lookup.forms.get(bare[a:b].lower())
        if forms:
            patterns = [marks_of(form) for form in forms]
            options.update((p, (a, patterns)) for p in range(a, b))
    return options


def on_the_way(options, chosen: list[int], start: int, p: int) -> set[int] | None:
    """The marks position p may take so that its word can still become one of its training forms, given the marks
    chosen from `start` (the window's first position) on; None: any mark (a word never seen)."""
    if p not in options:
        return None
    a, patterns = options[p]
    lo = max(a, start)
    done = chosen[lo - start : p - start]
    return {m[p - a] for m in patterns if m[lo - a : p - a] == done}


@torch.no_grad()
def write_marks(
    model, prefix: torch.Tensor, x: torch.Tensor, variants: torch.Tensor, options: dict, starts: list[int]
) -> torch.Tensor:
    """A T5 writes windows of stripped text (B, T) again, greedy, one character at a time: each the input's letter
    with one of the marks it can carry (`variants` (V, N_MARKS)) and, inside a word seen in training, one that keeps
    the word on the way to a training form. -> the marks written (B, T)."""
    B, T = x.shape
    memory = model.encode(torch.cat([prefix.expand(B, -1), x], dim=1))  # (B, P + T, C)
    written = torch.full((B, 1), model.cfg.start_id)
    out = [[] for _ in range(B)]
    mine = variants[x]  # (B, T, N_MARKS)
    for t in range(T):
        scores = model.decode(written, memory)[:, -1].float().gather(-1, mine[:, t].clamp(min=0))  # (B, N_MARKS)
        ok = mine[:, t] >= 0
        for b in range(B):
            way = on_the_way(options, out[b], starts[b], starts[b] + t)
            if way is not None and any(ok[b, m] for m in way):
                ok[b] &= torch.tensor([m in way for m in range(N_MARKS)])
        marks = scores.masked_fill(~ok, float("-inf")).argmax(-1)  # (B,)
        for b in range(B):
            out[b].append(int(marks[b]))
        written = torch.cat([written, mine[:, t].gather(-1, marks[:, None])], dim=1)
    return torch.tensor(out)


def write_text(model, tokenizer, text: str, lookup: Lookup | None = None) -> str:
    """The text with its accents put back by a T5 that writes it («tildes: …» -> the text): windows of the stripped
    text overlapping by half, each position written by the window where it sits farthest from an edge."""
    bare = strip(text)
    if not bare:
        return bare
    ids, variants = char_ids(tokenizer, bare), mark_ids(tokenizer)
    prefix, options = char_ids(tokenizer, TILDES_PREFIX)[None, :], word_options(bare, lookup)
    N, T = len(ids), min(model.cfg.text_window, len(ids))
    starts = window_starts(N, T)
    device = next(model.parameters()).device
    with evaluating(model):
        rows = [
            write_marks(
                model,
                prefix.to(device),
                torch.stack([ids[s : s + T] for s in starts[i : i + 64]]).to(device),
                variants.to(device),
                options,
                starts[i : i + 64],
            ).cpu()
            for i in range(0, len(starts), 64)
        ]
    return apply_marks(bare, centred(starts, torch.cat(rows), N).tolist())


def put_accents(model, tokenizer, text: str, lookup: Lookup | None, writes: bool) -> str:
    """A tagger's marks (`fix_text`) or, when `writes` (a T5), the text written again (`write_text`)."""
    return (write_text if writes else fix_text)(model, tokenizer, text, lookup)


@torch.no_grad()
def segment_logp(model, tokenizer, rows: list[str], seg: int, window: int) -> torch.Tensor:
    """Rows of text of one length -> (R,) the log-probability of each row's last `seg` characters given the rest
    (at most NOISY_CONTEXT characters of it; a newline first when there is none). A segment longer than the model's
    window is scored on its last characters."""
    seg = max(1, min(seg, window - 2))
    ctx = max(1, min(NOISY_CONTEXT, window - seg - 1))
    rows = [r[-(ctx + seg) :] for r in rows]
    if len(rows[0]) == seg:
        rows = [tokenizer.pieces[tokenizer.start_ids()[0]] + r for r in rows]
    ids = torch.stack([char_ids(tokenizer, r) for r in rows])  # (R, L)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    logp = F.log_softmax(model(ids[:, :-1].to(device)).float().cpu(), dim=-1)  # (R, L-1, V)
    got = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (R, L-1): each next character's log-probability
    return got[:, -seg:].sum(-1)


def noisy_channel(run: Run, lookup: Lookup, text: str, beam: int = NOISY_BEAM, tagger: Run | None = None) -> str:
    """The stripped text with each word in the form (seen in training) that makes the sentence most probable to the
    run's language model. With a `tagger`, each form's score also adds the tagger's log-probability of its marks
    (`tagger_view`), and the words start from the tagger's choices instead of the lookup's."""
    model, tokenizer = run.model, run.tokenizer
    bare = strip(text)
    base, prior = tagger_view(tagger, lookup, bare) if tagger is not None else (lookup.fix(bare), {})
    choices = [(a, b, list(prior[a]) if a in prior else channel_forms(bare[a:b], lookup)) for a, b in words(bare)]
    choices = [c for c in choices if len(c[2]) > 1]
    if not choices:
        return base
    window = scoring_window(model, run.config.model)
    beams = [(0.0, base[: choices[0][0]])]  # (log-probability, text so far); every text has the same length
    for i, (a, b, forms) in enumerate(choices):
        after = base[b : choices[i + 1][0] if i + 1 < len(choices) else len(bare)]
        pairs = [(score, done, form) for score, done in beams for form in forms]
        rows = [done + form + after[:NOISY_AHEAD] for _, done, form in pairs]
        logp = segment_logp(model, tokenizer, rows, b - a + min(len(after), NOISY_AHEAD), window)
        mine = prior.get(a, {})
        grown = sorted(
            (
                (score + float(lp) + mine.get(form, 0.0), done + form + after)
                for (score, done, form), lp in zip(pairs, logp)
            ),
            key=lambda sb: -sb[0],
        )
        beams = grown[:beam]
    return beams[0][1]


def channel_forms(bare: str, lookup: Lookup, guess: str = "") -> list[str]:
    """The forms the noisy channel weighs for one stripped word: its training forms; for a capital word only seen in
    small letters («Que» at a question's start), those forms with their capital; for a word never seen, the word as
    it is and `guess` (a tagger's: the word with an acute where the tagger likes one best), so the language model and
    the tagger judge the accent together."""
    forms = lookup.candidates(bare) if bare in lookup.forms else []
    if not forms and bare[:1].isupper() and bare.lower() in lookup.forms:
        forms = [form[:1].upper() + form[1:] for form in lookup.candidates(bare.lower())]
    return forms or list(dict.fromkeys(w for w in (bare, guess) if w))


def tagger_view(tagger: Run, lookup: Lookup, bare: str) -> tuple[str, dict[int, dict[str, float]]]:
    """A tagger's reading of a stripped text: the text with its marks (as `fix_text` writes it) and, for each word
    with several training forms (by where it starts), each form's log-probability by the tagger (its marks' sum)."""
    logp = tagger.model.mark_log_probs(char_ids(tagger.tokenizer, bare), allowed_marks(tagger.tokenizer)).numpy()
    marks = logp.argmax(-1).tolist()  # logp (N, N_MARKS)
    seen_forms(marks, logp, bare, lookup)
    fixed, prior = apply_marks(bare, marks), {}
    for a, b in words(bare):
        forms = channel_forms(bare[a:b], lookup, apply_marks(bare[a:b], one_acute(logp[a:b], always=True)))
        if len(forms) > 1:
            prior[a] = {f: float(sum(logp[a + i, m] for i, m in enumerate(marks_of(f)))) for f in forms}
    return fixed, prior


def accent_fixer(run: Run):
    """What puts the accents back with this run: text -> text (a tagger's marks, or the noisy channel)."""
    kind = kind_of(run.config)
    if kind.fixes_accents:
        lookup = Lookup(run_split(run.config, "poner tildes").train)
        return lambda text: put_accents(run.model, run.tokenizer, text, lookup, kind.encoder_decoder)
    if run.tokenizer.kind != "char":
        raise TallerError(
            f"{run.dir} usa tokens {run.tokenizer.kind}; poner tildes con un modelo de lenguaje compara "
            "palabras letra a letra y necesita uno de caracteres (--tokenizer char)."
        )
    lookup = Lookup(run_split(run.config, "poner tildes con un modelo de lenguaje").train)
    return lambda text: noisy_channel(run, lookup, text)


def load_fixer(path: str | Path):
    """The run at `path` and its fixer: an accent tagger or any language model of characters."""
    run = load_run(path, can=("fixes_accents", "language_model"))
    return run, accent_fixer(run)


def marked(before: str, after: str) -> str:
    """The fixed text, each line followed by a line with ^ under the letters that changed (if any did)."""
    out, start = [], 0
    for line in after.split("\n"):
        old = before[start : start + len(line)]
        carets = "".join("^" if a != b else " " for a, b in zip(line, old)).rstrip()
        out += [line, carets] if carets else [line]
        start += len(line) + 1
    return "\n".join(out)


def read_text(path: Path) -> str:
    """A UTF-8 text file, bounded; an empty, binary or oversized file is refused in one line."""
    advice = "indica un fichero de texto UTF-8"
    try:
        data = read_bounded(
            path, TEXT_LIMIT, advice, f"taller tildes lee ficheros de hasta {megabytes(TEXT_LIMIT)}; pártelo en trozos"
        )
    except FileNotFoundError:
        raise TallerError(f"--file {path}: no existe; {advice}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise TallerError(f"--file {path}: no es texto UTF-8 (¿un fichero binario?); {advice}.")
    return text


def check_text(text: str, where: str) -> str:
    if not text.strip():
        raise TallerError(f"{where}: el texto está vacío; escribe algo sin tildes, p. ej. «el dijo que si».")
    return text


def check_target(source: Path, target: Path, force: bool) -> None:
    """-o: a new file (or --force), never the input, never a run's file."""
    if target.exists() and source.exists() and os.path.samefile(source, target):
        raise TallerError(f"-o {target}: es el fichero de entrada; escribe el resultado en otro fichero.")
    check_output(target, force, "-o")


def tildes(
    run_path: str | Path,
    text: str | None = None,
    source: Path | None = None,
    target: Path | None = None,
    force: bool = False,
) -> str:
    """`taller tildes`: the text (--text) fixed, with the changed letters marked; or the file `source` fixed into
    `target` (what was done, in one line). Everything the user can get wrong is refused before anything is written."""
    if (text is None) == (source is None) or (source is None) != (target is None):
        raise TallerError("taller tildes: usa --text «…» o bien --file ENTRADA -o SALIDA.")
    if source is not None:
        check_target(source, target, force)
        before = check_text(read_text(source), f"--file {source}")
    else:
        before = check_text(text, "--text")
    _, fixer = load_fixer(run_path)
    after = fixer(before)
    if target is None:
        return marked(before, after)
    atomic_write(target, after.encode("utf-8"))
    changed = sum(a != b for a, b in zip(before, after))
    return f"{changed} letras cambiadas; texto con tildes en {target}"
