"""`taller serve`: a local web page to explore trained models (FastAPI + uvicorn, plain JavaScript, no build step).

    GET  /                 the page (static/index.html, app.js, style.css)
    GET  /api/runs         the run folders found under PATH
    POST /api/predict      {run, text, temperature, top_k, top_p} → the 10 likeliest next tokens and the rest: the
                                                                  model's probabilities and, when the three reshape
                                                                  them, the probabilities the sampling draws with
    POST /api/attention    {run, text}                          → per layer and head, the (T, T) attention
    POST /api/sample       {run, text, temperature, top_k, top_p, mode, stop}
                                                                → one sampled token, or up to `stop` (mode line;
                                                                  the end of the line by default)
    POST /api/surprise     {run, text, against}                 → the bits paid for each character (a surprise map),
                                                                  and with `against` (another run) the difference

Only run folders found under PATH are served: a request names a run by its folder name, which is looked up among
the folders found there (never joined onto a path), so `../`, absolute paths and symlinks that lead out go nowhere.
Only requests whose Host is a loopback name, the address listened on or a name given with --allow-host are answered
(a web page cannot reach the server through DNS rebinding), and no reply shows an absolute path. A request body is
counted as it arrives, chunked or not, and refused past MAX_BODY. Bad requests get a 4xx and {"error": "…"} in Spanish.
"""

from __future__ import annotations

import errno
import json
import math
import re
import socket
import threading
from functools import partial
from collections.abc import Iterable
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taller.config import Config
from taller.errors import TallerError
from taller.inspect.inside import NO_ATTENTION, has_attention
from taller.inspect.surprise import known_text, reply, surprise, validation_text
from taller.models import kind_of
from taller.runs.checkpoint import read_state
from taller.runs.folder import Run, load_run
from taller.sampling import is_plain, next_token_logits, sampling_probs
from taller.text import show_token, thousands

STATIC = Path(__file__).parent / "static"
MAX_TEXT = 2000  # characters of prompt a request may send
MAX_STEPS = 300  # characters "generar" may write in one request
MAX_SURPRISE = 20_000  # characters a surprise map may score in one request
SURPRISE_DEFAULT = 2000  # characters of the validation text scored when no text is sent
MAX_BODY = 1024 * 1024  # bytes of request body
KEEP = 4  # runs kept loaded at once
TOP = 10  # bars shown; the rest are summed
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 5  # the temperatures the API accepts (the page's slider: 0.1 to 2)
MAX_STOP = 100  # characters of a stop text
QUOTED = 80  # characters of a bad run name quoted back in an error
LISTED = 10  # runs or unknown characters listed in an error
WEIGHT_DIGITS = 4  # decimals of each attention weight sent: plenty for a colour, and a shorter reply
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # the Host names always answered
ANY_ADDRESS = ("0.0.0.0", "::", "")  # listening on every interface: no single name to answer to
SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: JSON can carry one, UTF-8 cannot
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/[^\s«»\"'`,;:()]*")  # in a message: /home/ana/runs/x/state.json
BROKEN = (ValueError, RecursionError, OSError)  # what a damaged run folder may raise besides TallerError


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


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


class SafeJSON(JSONResponse):
    """JSON that can always be sent: a lone surrogate (from a folder name that is not UTF-8, say) is escaped."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def refusal(status: int, message: str) -> SafeJSON:
    return SafeJSON({"error": SURROGATE.sub("\ufffd", message)}, status)


def header(scope: Scope, name: bytes) -> str | None:
    """The value of the request header `name` (lower case), or None."""
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), None)


def host_name(value: str) -> str:
    """The name in a Host header without its port ('localhost:8000' → 'localhost', '[::1]:8000' → '::1'); '' if
    it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, port = value[1:].partition("]")
        return name if port == "" or (port[:1] == ":" and port[1:].isdigit()) else ""
    name, colon, port = value.partition(":")
    return name if not colon or port.isdigit() else ""


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> set[str]:
    """The Host names answered: loopback, the address listened on (unless it is every interface) and `extra`."""
    names = {*LOOPBACK, *(() if host in ANY_ADDRESS else (host_name(host) or host.lower(),))}
    for name in extra:
        if not host_name(name):
            raise TallerError(f"--allow-host «{name[:QUOTED]}» no es un nombre de equipo; usa uno como "
                              "mipc.local o 192.168.1.20.")
        names.add(host_name(name))
    return names


class HostCheck:
    """ASGI wrapper: answers only requests whose Host header is one of `allowed`. A page from elsewhere that reaches
    127.0.0.1 through DNS rebinding still says its own name in Host, and gets a 400."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]):
        self.app, self.allowed = app, set(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            asked = header(scope, b"host") or ""
            if host_name(asked) not in self.allowed:
                shown = asked[:QUOTED] or "ninguno"
                return await refusal(400, f"este servidor sólo responde a localhost y 127.0.0.1, no al nombre "
                                          f"«{shown}» (así ninguna otra web puede leerlo); si lo abres con ese "
                                          f"nombre a propósito, arráncalo con `taller serve --allow-host NOMBRE`."
                                     )(scope, receive, send)
        await self.app(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages, counted as they arrive; None as soon as they pass `limit` bytes (the rest is
    never read here: the server drops it)."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client went away
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def declared_size(value: str | None) -> float:
    """The size a Content-Length header announces: 0 without one, infinite if it is not a number."""
    digits = (value or "0").strip().lstrip("0") or "0"
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 15 else math.inf


class BodyLimit:
    """ASGI wrapper: a request body, with Content-Length or chunked, is read as it arrives and refused with 413 as soon
    as it passes `limit` bytes, so at most `limit` bytes (and one piece) are ever held."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_size(header(scope, b"content-length"))
        messages = await read_body(receive, self.limit) if declared <= self.limit else None
        if messages is None:
            return await refusal(413, f"la petición es demasiado grande (máximo {self.limit // 1024} KiB); envía "
                                      "un texto más corto.")(scope, receive, send)

        async def replay() -> Message:  # the body read above, then the connection itself (a disconnect)
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def without_paths(message: str, root: Path) -> str:
    """A library message as a reply may show it: a path under the served folder relative to the folder above it
    (runs/x/state.json), any other absolute path reduced to its last part. No reply says where files live."""
    base = root.resolve().parent

    def shown(match: re.Match) -> str:
        path = Path(match.group())
        return str(path.relative_to(base)) if path.is_relative_to(base) and path != base else path.name or "…"

    return ABSOLUTE_PATH.sub(shown, message)


def find_runs(root: Path) -> dict[str, Path]:
    """The run folders under `root` (root itself, or its direct children), by folder name; none outside root."""
    root = root.resolve()
    if (root / "state.json").is_file():
        return {root.name: root}
    runs = {}
    try:
        children = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:  # an unreadable folder serves no runs
        return runs
    for child in children:
        try:
            real = child.resolve()
        except (OSError, RuntimeError):  # a link that leads to itself: not a run
            continue
        if real.is_relative_to(root) and real.is_dir() and (real / "state.json").is_file():
            runs[child.name] = real
    return runs


# --- checking a request ---------------------------------------------------------------------------------------------


def check_run_name(name: str) -> None:
    """A run is named by its bare folder name: nothing that could be read as a path."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ApiError(400, f"nombre de ejecución no válido: «{name[:QUOTED]}»; usa uno de la lista de /api/runs.")


def checked_request(req: TextRequest) -> TextRequest:
    """`req`, if each of its texts is one UTF-8 can carry: JSON can smuggle in half a UTF-16 pair ("\\ud800")."""
    for field, value in req:
        if isinstance(value, str) and SURROGATE.search(value):
            raise ApiError(400, f"el campo «{field}» lleva un carácter que no es texto (media pareja UTF-16 suelta, "
                                "como \\ud800); envía texto normal.")
    return req


def checked_text(run: Run, text: str) -> str:
    """`text`, if it is short enough and every character of it is in the run's vocabulary."""
    if len(text) > MAX_TEXT:
        raise ApiError(413, f"el texto tiene {thousands(len(text))} caracteres y el máximo es "
                            f"{thousands(MAX_TEXT)}; acórtalo.")
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
        raise ApiError(400, f"modo «{req.mode[:20]}» desconocido; usa «char» (un carácter) o «line» (hasta el final de la línea).")
    steps = min(MAX_STEPS, MAX_TEXT - len(text)) if req.mode == "line" else 1
    if steps < 1:
        raise ApiError(413, f"el texto ya tiene {thousands(len(text))} caracteres, el máximo; bórralo un poco.")
    return steps


# --- the runs -------------------------------------------------------------------------------------------------------


class RunCache:
    """The runs under `root`, opened on first request and kept (the last KEEP); a retrained run (newer state.json)
    is opened again. `loader(path) -> Run` opens a run folder."""

    def __init__(self, root: Path, loader):
        self.root, self.loader = root, loader
        self.loaded: dict[str, tuple[float, Run]] = {}  # name -> (state.json mtime, loaded run)
        self.lock = threading.Lock()  # guards `loaded`

    def get(self, name: str) -> Run:
        check_run_name(name)
        runs = find_runs(self.root)
        if name not in runs:
            known = ", ".join(list(runs)[:LISTED]) or "ninguna"
            raise ApiError(404, f"no hay ninguna ejecución «{name[:QUOTED]}» en la carpeta servida; las que hay: "
                                f"{known}.")
        with self.lock:  # one load at a time
            try:
                mtime = (runs[name] / "state.json").stat().st_mtime
                if name not in self.loaded or self.loaded[name][0] != mtime:
                    self.loaded.pop(name, None)
                    if len(self.loaded) >= KEEP:
                        self.loaded.pop(next(iter(self.loaded)))  # the one loaded longest ago
                    self.loaded[name] = (mtime, self.loader(runs[name]))
            except BROKEN as e:  # TallerError goes to its own reply
                raise ApiError(400, unreadable(name, e)) from None
            return self.loaded[name][1]


def unreadable(name: str, e: Exception) -> str:
    """Why the run folder `name` cannot be opened, when the reason is not a TallerError (a state.json number of
    5,000 digits, a file that vanished…)."""
    return (f"la ejecución «{name[:QUOTED]}» está dañada y no se puede abrir ({type(e).__name__}); "
            "vuelve a entrenarla o quítala de la carpeta.")


def run_summary(name: str, path: Path, root: Path) -> dict:
    """One run of /api/runs, read from state.json and config.toml only: listing loads no model. A damaged folder is
    listed with the reason it can't be opened, and never keeps the others from being listed."""
    if SURROGATE.search(name):  # a folder name that is not UTF-8
        return {"name": SURROGATE.sub("\ufffd", name),
                "error": "el nombre de esta carpeta no es UTF-8 válido; cámbiale el nombre para abrirla aquí."}
    try:
        state, cfg = read_state(path), Config.load(path / "config.toml", saved=True)
        kind = kind_of(cfg)
    except TallerError as e:
        return {"name": name, "error": without_paths(str(e), root)}
    except BROKEN as e:
        return {"name": name, "error": unreadable(name, e)}
    if not kind.language_model:  # e.g. word vectors: listed, with where to look instead
        return {"name": name, "kind": kind.name, "error": without_paths(str(kind.refuse(name)), root)}
    return {"name": name, "kind": cfg.model.kind, "corpus": plain(state.get("corpus"), str),
            "parameters": plain(state.get("parameters"), int), "val_bpc": plain(state.get("val_bpc"), float),
            "block_size": cfg.model.context, "prompt": cfg.train.prompt}  # block_size: None for no limit


def plain(value, typ: type):
    """A value of state.json as /api/runs may send it: of type `typ`, finite and short, or else None (a hand-edited
    state.json may hold 1e400, a string, or an integer of 5,000 digits, which JSON replies cannot carry)."""
    if typ is str:
        return Path(value).name[:QUOTED] if isinstance(value, str) else None  # a corpus file: its name only
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if typ is int:
        return value if isinstance(value, int) and abs(value) < 10 ** 15 else None
    return float(value) if math.isfinite(value) else None


# --- what each endpoint answers -------------------------------------------------------------------------------------


def predict_reply(run: Run, req: ShapedRequest) -> dict:
    """/api/predict: the TOP most likely next tokens as bars, and what the rest of the vocabulary adds up to; when
    temperature, top-k or top-p reshape the distribution, each bar's `sampled` probability (and `rest_sampled`)."""
    logits = next_token_logits(run.model, run.tokenizer, checked_text(run, req.text))  # (V,)
    probs = logits.softmax(dim=-1)
    top = torch.topk(probs, min(TOP, len(probs)))
    pieces = run.tokenizer.pieces  # id -> text: a character, a word or a BPE token
    bars = [{"char": pieces[i], "shown": show_token(pieces[i]), "prob": float(p)}
            for p, i in zip(top.values, top.indices)]
    reply = {"text": req.text, "bars": bars, "rest": max(0.0, float(probs.sum()) - sum(b["prob"] for b in bars)),
             "rest_count": len(probs) - len(bars)}
    if not is_plain(req.temperature, req.top_k, req.top_p):  # the same tokens, in the distribution drawn from
        drawn = sampling_probs(logits[None], req.temperature, req.top_k, req.top_p)[0]  # (V,)
        for bar, i in zip(bars, top.indices):
            bar["sampled"] = float(drawn[i])
        reply["rest_sampled"] = max(0.0, float(drawn.sum()) - sum(b["sampled"] for b in bars))
    return reply


def attention_reply(run: Run, text: str, recording: threading.Lock) -> dict:
    """/api/attention: per layer and head, the (T, T) attention over the last block_size tokens of `text`."""
    text = checked_text(run, text)
    if not has_attention(run.model):
        return {"text": text, "note": NO_ATTENTION}
    ids = run.tokenizer.encode(text)[-run.model.block_size:]  # what the model sees: the last block_size
    if not ids:
        return {"text": text, "note": "Escribe algo para ver a dónde mira cada cabeza."}
    with torch.no_grad(), recording:  # attention_maps records into the model: one request at a time
        run.model.eval()
        maps = run.model.attention_maps(torch.tensor([ids], device=next(run.model.parameters()).device))
    return {"text": text, "chars": [show_token(run.tokenizer.pieces[i]) for i in ids],
            "layers": [[[[round(float(w), WEIGHT_DIGITS) for w in row] for row in head] for head in m[0].cpu()]
                       for m in maps]}


def sample_reply(run: Run, req: SampleRequest) -> dict:
    """/api/sample: `text` and what the model writes after it (one token, or up to the end of the line)."""
    text = checked_text(run, req.text)
    steps = sample_steps(req, text)
    stop = req.stop if req.mode == "line" else None
    out = run.generate(text, 1, max_chars=steps, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                       stop=stop, top=0)[0]
    return {"text": out.text, "added": out.generated}


def surprise_request_reply(runs: RunCache, req: SurpriseRequest) -> dict:
    """/api/surprise: the bits the run pays for each character of `text` (empty: the beginning of its validation
    text); with `against`, the other run's bits on the same text and the difference. Unknown characters are refused
    (those of the validation text, replaced)."""
    run = runs.get(req.run)
    other = runs.get(req.against) if req.against else None
    if len(req.text) > MAX_SURPRISE:
        raise ApiError(413, f"el texto tiene {thousands(len(req.text))} caracteres y el mapa de sorpresa mide como "
                            f"mucho {thousands(MAX_SURPRISE)}; acórtalo.")
    text = req.text or validation_text(run)[:SURPRISE_DEFAULT]
    text = known_text(text, [run] + ([other] if other is not None else []), "error" if req.text else "replace")
    a, b = surprise(run, text), surprise(other, text) if other is not None else None
    source = "tu texto" if req.text else f"los primeros {thousands(len(text))} caracteres del texto de validación"
    return {**reply(a, b), "source": source}


# --- the app --------------------------------------------------------------------------------------------------------


def add_error_replies(app: FastAPI, root: Path) -> None:
    """Every refusal as a 4xx with {"error": "…"} in Spanish, whoever raises it (us, taller, FastAPI, Starlette), and
    anything unforeseen as a 500 with a Spanish {"error": "…"} too; never an absolute path, always sendable."""

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return refusal(e.status, e.message)

    @app.exception_handler(TallerError)
    async def taller_error(request, e: TallerError):
        return refusal(400, without_paths(str(e), root))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        where = ", ".join(".".join(str(p) for p in err.get("loc", ())[1:]) or "cuerpo" for err in e.errors()[:3])
        return refusal(422, f"petición no válida (revisa: {where[:QUOTED]}); se espera JSON como "
                            '{"run": "nombre", "text": "No hay "}.')

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        messages = {404: "no existe esa dirección; abre / para ver la página.", 405: "método no permitido aquí."}
        return refusal(e.status_code, messages.get(e.status_code, "petición no válida."))

    @app.exception_handler(Exception)
    async def unforeseen(request, e: Exception):  # the traceback still goes to the terminal of `taller serve`
        return refusal(500, "error interno del servidor; mira la terminal donde corre `taller serve` y avísanos.")


def add_endpoints(app: FastAPI, root: Path, runs: RunCache) -> None:
    """The page and the five endpoints of this module's docstring."""
    recording = threading.Lock()  # attention_maps records into the model: one request at a time

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def list_runs():
        found = [run_summary(name, path, root) for name, path in find_runs(root).items()]
        return {"root": root.resolve().name, "runs": found, "max_text": MAX_TEXT}  # the folder's name, not its path

    @app.post("/api/predict")
    def predict(req: ShapedRequest):
        return predict_reply(runs.get(checked_request(checked_sampling(req)).run), req)

    @app.post("/api/attention")
    def attention(req: TextRequest):
        return attention_reply(runs.get(checked_request(req).run), req.text, recording)

    @app.post("/api/sample")
    def sample(req: SampleRequest):
        return sample_reply(runs.get(checked_request(req).run), req)

    @app.post("/api/surprise")
    def surprise_map(req: SurpriseRequest):
        return surprise_request_reply(runs, checked_request(req))


def create_app(root: Path, loader=load_run, hosts: Iterable[str] = LOOPBACK) -> FastAPI:
    """The web app serving the runs under `root`, to requests whose Host is one of `hosts`; `loader(path) -> Run`
    opens a run folder (tests pass their own)."""
    root = Path(root)
    app = FastAPI(title="taller", docs_url=None, redoc_url=None, openapi_url=None, default_response_class=SafeJSON)
    add_error_replies(app, root)
    add_endpoints(app, root, RunCache(root, partial(loader, inside=root.resolve()) if loader is load_run else loader))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(HostCheck, allowed=hosts)  # added last: runs first, before any byte of the body is read
    return app


def served_runs(path: Path) -> dict[str, Path]:
    """The runs `taller serve PATH` would serve, or a TallerError saying why there are none."""
    if path.exists() and not path.is_dir():
        raise TallerError(f"{path} es un archivo, no una carpeta; `taller serve` quiere una carpeta de ejecución o "
                          "una carpeta con varias, como runs/.")
    if not path.is_dir():
        raise TallerError(f"no existe la carpeta {path}; indica una ejecución o una carpeta con varias, como runs/.")
    runs = find_runs(path)
    if not runs:
        raise TallerError(f"{path} no tiene ninguna ejecución (carpetas con state.json); entrena una con `taller demo`.")
    return runs


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port. Made with IPPROTO_TCP (socket.create_server leaves 0), so that asyncio sets
    TCP_NODELAY on each connection: without it every reply waits 40 ms for a delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the server will use, bound now so that a busy port is said in Spanish (and cannot be taken between
    this check and uvicorn's start)."""
    if not 0 < port < 65536:
        raise TallerError(f"--port={port} no es un puerto válido; usa uno entre 1 y 65535, por ejemplo 8000.")
    try:
        return bound_socket(host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            why = f"el puerto {port} ya está ocupado (¿hay otro `taller serve` abierto?); elige otro con --port {port + 1}."
        elif e.errno == errno.EACCES:
            why = f"no tengo permiso para usar el puerto {port} (los menores de 1024 son del sistema); usa --port 8000."
        elif isinstance(e, socket.gaierror) or e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            why = f"--host {host} no es una dirección de este equipo; usa 127.0.0.1 (sólo este equipo)."
        else:
            why = f"no puedo escuchar en {host}:{port} ({errno.errorcode.get(e.errno, 'error')}); prueba --port {port + 1}."
        raise TallerError(why) from None


def serve(path: Path, host: str = "127.0.0.1", port: int = 8000, allow_hosts: Iterable[str] = ()) -> None:
    """`taller serve`: the explorer for the runs under `path`, on http://host:port/, until Ctrl-C."""
    import uvicorn

    path = Path(path)
    runs = served_runs(path)
    hosts = allowed_hosts(host, allow_hosts)
    sock = listening_socket(host, port)
    print(f"taller serve: {len(runs)} ejecución(es) en {path}: {', '.join(list(runs)[:5])}")
    if host not in LOOPBACK:
        print(f"Aviso: escuchando en {host}: otros equipos de la red pueden abrir la página si la abren con un "
              f"nombre permitido ({', '.join(sorted(hosts - set(LOOPBACK))) or 'añade el de este equipo con --allow-host'}).")
    shown = "127.0.0.1" if host in ANY_ADDRESS else f"[{host}]" if ":" in host else host
    print(f"Abre http://{shown}:{port}/ en el navegador (Ctrl-C para terminar).")
    uvicorn.Server(uvicorn.Config(create_app(path, hosts=hosts), log_level="warning")).run(sockets=[sock])
