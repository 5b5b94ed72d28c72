"""What the explorer answers: each endpoint's request (a pydantic model), the checks its fields pass, and the JSON it
returns.

    /api/predict    the 10 likeliest next tokens and the rest: the model's probabilities and, when temperature,
                    top-k or top-p reshape them, the probabilities the sampling draws with
    /api/attention  per layer and head, the (T, T) attention
    /api/sample     one sampled token, or up to `stop` (mode line; the end of the line by default)
    /api/surprise   the bits paid for each character (a surprise map), and with `against` (another run) the difference
    /api/tildes     the text with its accents put back by an accent tagger or T5 (`taller tildes`), and which letters

A request that fails a check raises ApiError (a 4xx with one Spanish line); one the library refuses, TallerError.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from taller.apps.web.refusals import SURROGATE, ApiError
from taller.apps.web.runs import LISTED, RunCache
from taller.inspect.inside import NO_ATTENTION, has_attention
from taller.inspect.surprise import known_text, reply, surprise, validation_text
from taller.inspect.tildes import accent_fixer
from taller.runs.folder import Run
from taller.sampling import is_plain, next_token_logits, sampling_probs
from taller.text import show_token, thousands

MAX_TEXT = 2000  # characters of prompt a request may send
MAX_STEPS = 300  # characters "generar" may write in one request
MAX_SURPRISE = 20_000  # characters a surprise map may score in one request
SCORER = ThreadPoolExecutor(2, thread_name_prefix="sorpresa")  # surprise maps are scored in these two threads only:
#   the others wait their turn, holding nothing big, so a burst of requests costs two maps' memory; and the big
#   tensors are always allocated by the same two threads (each thread of the server's pool would keep its own
#   malloc arena of freed memory: 60 requests at once took the server from 0,4 to 1,1 GB)
SURPRISE_DEFAULT = 2000  # characters of the validation text scored when no text is sent
TOP = 10  # bars shown; the rest are summed
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 5  # the temperatures the API accepts (the page's slider: 0.1 to 2)
MAX_STOP = 100  # characters of a stop text
WEIGHT_DIGITS = 4  # decimals of each attention weight sent: plenty for a colour, and a shorter reply


class TextRequest(BaseModel):
    run: str
    text: str = ""


class ShapedRequest(TextRequest):
    temperature: float = 1.0  # how the sampling reshapes the model's probabilities (sampling.filter_logits)
    top_k: int = 0
    top_p: float = 1.0


class SampleRequest(ShapedRequest):
    mode: str = "char"  # char: one character · line: up to `stop`
    stop: str = "\n"  # mode line: where to end; "": only the length limit


class SurpriseRequest(TextRequest):
    against: str = ""  # another run to compare with, character by character ("" = none)


# --- checking a request ---------------------------------------------------------------------------------------------


def checked_request(req: TextRequest) -> TextRequest:
    """`req`, if each of its texts is one UTF-8 can carry: JSON can smuggle in half a UTF-16 pair ("\\ud800")."""
    for field, value in req:
        if isinstance(value, str) and SURROGATE.search(value):
            raise ApiError(
                400,
                f"el campo «{field}» lleva un carácter que no es texto (media pareja UTF-16 suelta, "
                "como \\ud800); envía texto normal.",
            )
    return req


def checked_text(run: Run, text: str) -> str:
    """`text`, if it is short enough and every character of it is in the run's vocabulary."""
    if len(text) > MAX_TEXT:
        raise ApiError(
            413, f"el texto tiene {thousands(len(text))} caracteres y el máximo es {thousands(MAX_TEXT)}; acórtalo."
        )
    unknown = run.tokenizer.unknown(text)
    if unknown:
        shown = " ".join(f"«{c}»" for c in unknown[:LISTED])
        raise ApiError(400, f"el modelo nunca vio estos caracteres: {shown}; bórralos o cámbialos.")
    return text


def checked_sampling(req: ShapedRequest) -> ShapedRequest:
    """`req`, if its temperature, top-k and top-p are ones the sampling accepts."""
    if not MIN_TEMPERATURE <= req.temperature <= MAX_TEMPERATURE:
        raise ApiError(400, f"la temperatura {req.temperature} está fuera de [0,05, 5]; usa el deslizador.")
    if req.top_k < 0:
        raise ApiError(400, f"top_k={req.top_k} no puede ser negativo; 0 deja todos los tokens.")
    if not 0 < req.top_p <= 1:
        raise ApiError(400, f"top_p={req.top_p} debe estar en (0, 1]; 1 deja todos los tokens.")
    return req


def sample_steps(req: SampleRequest, text: str) -> int:
    """How many tokens "generar" may write after `text`: 1 in mode char, up to MAX_STEPS in mode line."""
    checked_sampling(req)
    if len(req.stop) > MAX_STOP:
        raise ApiError(413, f"el texto de parada tiene {len(req.stop)} caracteres y el máximo es {MAX_STOP}; acórtalo.")
    if req.mode not in ("char", "line"):
        raise ApiError(
            400, f"modo «{req.mode[:20]}» desconocido; usa «char» (un carácter) o «line» (hasta el final de la línea)."
        )
    steps = min(MAX_STEPS, MAX_TEXT - len(text)) if req.mode == "line" else 1
    if steps < 1:
        raise ApiError(413, f"el texto ya tiene {thousands(len(text))} caracteres, el máximo; bórralo un poco.")
    return steps


# --- what each endpoint answers -------------------------------------------------------------------------------------


def predict_reply(run: Run, req: ShapedRequest) -> dict:
    """/api/predict: the TOP most likely next tokens as bars, and what the rest of the vocabulary adds up to; when
    temperature, top-k or top-p reshape the distribution, each bar's `sampled` probability (and `rest_sampled`)."""
    logits = next_token_logits(run.model, run.tokenizer, checked_text(run, req.text))  # (V,)
    probs = logits.softmax(dim=-1)
    top = torch.topk(probs, min(TOP, len(probs)))
    pieces = run.tokenizer.pieces  # id -> text: a character, a word or a BPE token
    bars = [
        {"char": pieces[i], "shown": show_token(pieces[i]), "prob": float(p)} for p, i in zip(top.values, top.indices)
    ]
    reply = {
        "text": req.text,
        "bars": bars,
        "rest": max(0.0, float(probs.sum()) - sum(b["prob"] for b in bars)),
        "rest_count": len(probs) - len(bars),
    }
    if not is_plain(req.temperature, req.top_k, req.top_p):  # the same tokens, in the distribution drawn from
        drawn = sampling_probs(logits[None], req.temperature, req.top_k, req.top_p)[0]  # (V,)
        for bar, i in zip(bars, top.indices):
            bar["sampled"] = float(drawn[i])
        reply["rest_sampled"] = max(0.0, float(drawn.sum()) - sum(b["sampled"] for b in bars))
    return reply


def attention_reply(run: Run, text: str) -> dict:
    """/api/attention: per layer and head, the (T, T) attention over the last block_size tokens of `text`."""
    text = checked_text(run, text)
    if not has_attention(run):
        return {"text": text, "note": NO_ATTENTION}
    ids = run.tokenizer.encode(text)[-run.model.block_size :]  # what the model sees: the last block_size
    if not ids:
        return {"text": text, "note": "Escribe algo para ver a dónde mira cada cabeza."}
    with torch.no_grad():  # attention_maps returns the maps and leaves the model as it was: no lock
        maps = run.model.attention_maps(torch.tensor([ids], device=next(run.model.parameters()).device))
    return {
        "text": text,
        "chars": [show_token(run.tokenizer.pieces[i]) for i in ids],
        "layers": [
            [[[round(float(w), WEIGHT_DIGITS) for w in row] for row in head] for head in m[0].cpu()] for m in maps
        ],
    }


def sample_reply(run: Run, req: SampleRequest) -> dict:
    """/api/sample: `text` and what the model writes after it (one token, or up to the end of the line)."""
    text = checked_text(run, req.text)
    steps = sample_steps(req, text)
    stop = req.stop if req.mode == "line" else None
    out = run.generate(
        text, 1, max_chars=steps, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, stop=stop, top=0
    )[0]
    return {"text": out.text, "added": out.generated}


def surprise_request_reply(runs: RunCache, req: SurpriseRequest) -> JSONResponse:
    """/api/surprise: the bits the run pays for each character of `text` (empty: the beginning of its validation
    text); with `against`, the other run's bits on the same text and the difference. Unknown characters are refused
    (those of the validation text, replaced). The work is done in SCORER's threads, from taking the runs out of the
    cache to encoding the reply: a waiting request holds no model (the cache may let go of its run meanwhile) and no
    reply."""
    if len(req.text) > MAX_SURPRISE:
        raise ApiError(
            413,
            f"el texto tiene {thousands(len(req.text))} caracteres y el mapa de sorpresa mide como "
            f"mucho {thousands(MAX_SURPRISE)}; acórtalo.",
        )
    return SCORER.submit(surprise_map, runs, req).result()


def surprise_map(runs: RunCache, req: SurpriseRequest) -> JSONResponse:
    run = runs.get(req.run)
    other = runs.get(req.against) if req.against else None
    text = req.text or validation_text(run)[:SURPRISE_DEFAULT]
    text = known_text(text, [run] + ([other] if other is not None else []), "error" if req.text else "replace")
    a, b = surprise(run, text), surprise(other, text) if other is not None else None
    source = "tu texto" if req.text else f"los primeros {thousands(len(text))} caracteres del texto de validación"
    return JSONResponse({**reply(a, b), "source": source})


FIXERS: dict[int, tuple[Run, object]] = {}  # id(run) -> (the run, its fixer): its training text's forms read once
FIXERS_LOCK = threading.Lock()  # requests are answered in a pool of threads


def tildes_reply(run: Run, text: str) -> dict:
    """/api/tildes: the text (at most MAX_TEXT characters) with its accents put back, and where letters changed."""
    if len(text) > MAX_TEXT:
        raise ApiError(
            413, f"el texto tiene {thousands(len(text))} caracteres y el máximo es {thousands(MAX_TEXT)}; acórtalo."
        )
    if not text.strip():
        raise ApiError(400, "el texto está vacío; escribe algo sin tildes, p. ej. «el dijo que si».")
    with FIXERS_LOCK:
        if id(run) not in FIXERS:
            while len(FIXERS) >= 2:  # the runs' own cache lets go of runs; these go with them
                FIXERS.pop(next(iter(FIXERS)))
            FIXERS[id(run)] = (run, accent_fixer(run))
        fixer = FIXERS[id(run)][1]
    fixed = fixer(text)
    return {"text": fixed, "changed": [i for i, (a, b) in enumerate(zip(text, fixed)) if a != b]}
