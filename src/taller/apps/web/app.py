"""`taller serve`: a local web page to explore trained models (FastAPI + uvicorn, plain JavaScript, no build step).

    GET  /                 the page (static/index.html, app.js, style.css)
    GET  /api/runs         the run folders found under PATH (runs.py)
    POST /api/predict      {run, text, temperature, top_k, top_p}             → the likeliest next tokens (replies.py)
    POST /api/attention    {run, text}                                        → per layer and head, the attention
    POST /api/sample       {run, text, temperature, top_k, top_p, mode, stop} → one token, or up to `stop`
    POST /api/surprise     {run, text, against}                               → the bits paid for each character
    POST /api/tildes       {run, text}                                        → the text with its accents put back
    POST /api/fill         {run, text, candidates}                            → a BERT's, a T5's blanks filled
    POST /api/classify     {run, text}                                        → a classifier's labels (reading.py)

Every request passes the guards first (guards.py: the Host allow-list, the body limit). Only run folders found under
PATH are served, at most runs.KEEP of them loaded at once, and no reply shows an absolute path. Bad requests get a
4xx and {"error": "…"} in Spanish (refusals.py), and so does anything the library refuses (TallerError).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from taller.apps.web.guards import ANY_ADDRESS, LOOPBACK, MAX_BODY, BodyLimit, HostCheck, allowed_hosts
from taller.apps.web.reading import FillRequest, classify_reply, fill_reply
from taller.apps.web.refusals import QUOTED, ApiError, SafeJSON, refusal, without_paths
from taller.apps.web.replies import (
    MAX_TEXT,
    SampleRequest,
    ShapedRequest,
    SurpriseRequest,
    TextRequest,
    attention_reply,
    checked_request,
    checked_sampling,
    predict_reply,
    sample_reply,
    surprise_request_reply,
    tildes_reply,
)
from taller.apps.web.runs import RunCache, find_runs, run_summary, served_runs
from taller.errors import TallerError
from taller.runs.folder import load_run
from taller.threads import choose, use

STATIC = Path(__file__).parent / "static"


def add_error_replies(app: FastAPI, root: Path) -> None:
    """Every refusal as a 4xx with {"error": "…"} in Spanish, whoever raises it (us, taller, FastAPI, Starlette), and
    anything unforeseen as a 500 with a Spanish {"error": "…"} too; never an absolute path, always sendable."""

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return refusal(e.status, e.message)

    @app.exception_handler(TallerError)
    async def taller_error(request, e: TallerError):  # the library's own one line: what is wrong, how to fix it
        return refusal(400, without_paths(str(e), root))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        where = ", ".join(".".join(str(p) for p in err.get("loc", ())[1:]) or "cuerpo" for err in e.errors()[:3])
        return refusal(
            422,
            f"petición no válida (revisa: {where[:QUOTED]}); se espera JSON como "
            '{"run": "nombre", "text": "No hay "}.',
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        messages = {404: "no existe esa dirección; abre / para ver la página.", 405: "método no permitido aquí."}
        return refusal(e.status_code, messages.get(e.status_code, "petición no válida."))

    @app.exception_handler(Exception)
    async def unforeseen(request, e: Exception):  # the traceback still goes to the terminal of `taller serve`
        return refusal(500, "error interno del servidor; mira la terminal donde corre `taller serve` y avísanos.")


def add_endpoints(app: FastAPI, root: Path, runs: RunCache) -> None:
    """The page and the eight endpoints of this module's docstring."""

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
        return attention_reply(runs.get(checked_request(req).run), req.text)

    @app.post("/api/sample")
    def sample(req: SampleRequest):
        return sample_reply(runs.get(checked_request(req).run), req)

    @app.post("/api/surprise")
    def surprise_map(req: SurpriseRequest):
        return surprise_request_reply(runs, checked_request(req))

    fixers = RunCache(root, partial(load_run, inside=root.resolve(), can="fixes_accents"), keep=2)  # taggers, T5

    @app.post("/api/tildes")
    def tildes(req: TextRequest):
        return tildes_reply(fixers.get(checked_request(req).run), req.text)

    fillers = RunCache(root, partial(load_run, inside=root.resolve(), can="fills"), keep=2)  # BERT, T5
    classifiers = RunCache(root, partial(load_run, inside=root.resolve(), can="classifies"), keep=2)

    @app.post("/api/fill")
    def fill_blanks(req: FillRequest):
        return fill_reply(fillers.get(checked_request(req).run), req)

    @app.post("/api/classify")
    def classify_text(req: TextRequest):
        return classify_reply(classifiers.get(checked_request(req).run), req.text)


def create_app(root: Path, loader=load_run, hosts: Iterable[str] = LOOPBACK) -> FastAPI:
    """The web app serving the runs under `root`, to requests whose Host is one of `hosts`; `loader(path) -> Run`
    opens a run folder (tests pass their own)."""
    root = Path(root)
    app = FastAPI(title="taller", docs_url=None, redoc_url=None, openapi_url=None, default_response_class=SafeJSON)
    add_error_replies(app, root)
    inside = partial(loader, inside=root.resolve()) if loader is load_run else loader  # a mix's parts too
    add_endpoints(app, root, RunCache(root, inside))  # at most runs.KEEP runs loaded at once
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(HostCheck, allowed=hosts)  # added last: runs first, before any byte of the body is read
    return app


# --- listening ------------------------------------------------------------------------------------------------------


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
            why = (
                f"el puerto {port} ya está ocupado (¿hay otro `taller serve` abierto?); elige otro con "
                f"--port {port + 1}."
            )
        elif e.errno == errno.EACCES:
            why = f"no tengo permiso para usar el puerto {port} (los menores de 1024 son del sistema); usa --port 8000."
        elif isinstance(e, socket.gaierror) or e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            why = f"--host {host} no es una dirección de este equipo; usa 127.0.0.1 (sólo este equipo)."
        else:
            code = errno.errorcode.get(e.errno, "error")
            why = f"no puedo escuchar en {host}:{port} ({code}); prueba --port {port + 1}."
        raise TallerError(why) from None


def serve(
    path: Path, host: str = "127.0.0.1", port: int = 8000, allow_hosts: Iterable[str] = (), threads: int = 0
) -> None:
    """`taller serve`: the explorer for the runs under `path`, on http://host:port/, until Ctrl-C. Its threads are
    chosen once, here: requests are answered in a pool of threads and never change them (taller/threads.py)."""
    import uvicorn

    path = Path(path)
    runs = served_runs(path)
    hosts = allowed_hosts(host, allow_hosts)
    sock = listening_socket(host, port)
    print(f"taller serve: {len(runs)} ejecución(es) en {path}: {', '.join(list(runs)[:5])}")
    print(f"Calculo con {use(choose(threads)).why}.")
    if host not in LOOPBACK:
        named = ", ".join(sorted(hosts - set(LOOPBACK))) or "añade el de este equipo con --allow-host"
        print(
            f"Aviso: escuchando en {host}: otros equipos de la red pueden abrir la página si la abren con un "
            f"nombre permitido ({named})."
        )
    shown = "127.0.0.1" if host in ANY_ADDRESS else f"[{host}]" if ":" in host else host
    print(f"Abre http://{shown}:{port}/ en el navegador (Ctrl-C para terminar).")
    uvicorn.Server(uvicorn.Config(create_app(path, hosts=hosts), log_level="warning")).run(sockets=[sock])
