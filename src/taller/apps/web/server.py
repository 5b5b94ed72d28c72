"""`taller serve`: a local web page to explore trained models (FastAPI + uvicorn, plain JavaScript, no build step).

    GET  /                 the page (static/index.html, app.js, style.css)
    GET  /api/runs         the run folders found under PATH
    POST /api/predict      {run, text}                          → the 10 likeliest next tokens and the rest
    POST /api/attention    {run, text}                          → per layer and head, the (T, T) attention
    POST /api/sample       {run, text, temperature, mode}       → one sampled token, or up to the end of the line

Only run folders found under PATH are served: a request names a run by its folder name, which is looked up among
the folders found there (never joined onto a path), so `../`, absolute paths and symlinks that lead out go nowhere.
Bad requests get a 4xx and {"error": "…"} in Spanish.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from taller.config import Config
from taller.errors import TallerError
from taller.inspect.inside import NO_ATTENTION, has_attention
from taller.models import kind_of
from taller.runs.checkpoint import read_state
from taller.runs.folder import Run, load_run
from taller.sampling import next_token_probs
from taller.text import show_token, thousands

STATIC = Path(__file__).parent / "static"
MAX_TEXT = 2000  # characters of prompt a request may send
MAX_STEPS = 300  # characters "generar" may write in one request
MAX_BODY = 1024 * 1024  # bytes of request body
KEEP = 4  # runs kept loaded at once
TOP = 10  # bars shown; the rest are summed
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 5  # the temperatures "generar" accepts (the page's slider: 0.1 to 2)
QUOTED = 80  # characters of a bad run name quoted back in an error
LISTED = 10  # runs or unknown characters listed in an error
WEIGHT_DIGITS = 4  # decimals of each attention weight sent: plenty for a colour, and a shorter reply


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class TextRequest(BaseModel):
    run: str
    text: str = ""


class SampleRequest(TextRequest):
    temperature: float = 1.0
    mode: str = "char"  # char: one character · line: up to the end of the line


def find_runs(root: Path) -> dict[str, Path]:
    """The run folders under `root` (root itself, or its direct children), by folder name; none outside root."""
    root = root.resolve()
    if (root / "state.json").is_file():
        return {root.name: root}
    runs = {}
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        real = child.resolve()
        if real.is_relative_to(root) and real.is_dir() and (real / "state.json").is_file():
            runs[child.name] = real
    return runs


# --- checking a request ---------------------------------------------------------------------------------------------


def check_run_name(name: str) -> None:
    """A run is named by its bare folder name: nothing that could be read as a path."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ApiError(400, f"nombre de ejecución no válido: «{name[:QUOTED]}»; usa uno de la lista de /api/runs.")


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


def sample_steps(req: SampleRequest, text: str) -> int:
    """How many tokens "generar" may write after `text`: 1 in mode char, up to MAX_STEPS in mode line."""
    if not MIN_TEMPERATURE <= req.temperature <= MAX_TEMPERATURE:
        raise ApiError(400, f"la temperatura {req.temperature} está fuera de [0,05, 5]; usa el deslizador.")
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
            raise ApiError(404, f"no hay ninguna ejecución «{name[:QUOTED]}» en {self.root}; las que hay: {known}.")
        mtime = (runs[name] / "state.json").stat().st_mtime
        with self.lock:  # one load at a time
            if name not in self.loaded or self.loaded[name][0] != mtime:
                self.loaded.pop(name, None)
                if len(self.loaded) >= KEEP:
                    self.loaded.pop(next(iter(self.loaded)))  # the one loaded longest ago
                self.loaded[name] = (mtime, self.loader(runs[name]))
            return self.loaded[name][1]


def run_summary(name: str, path: Path) -> dict:
    """One run of /api/runs, read from state.json and config.toml only: listing loads no model."""
    try:
        state, cfg = read_state(path), Config.load(path / "config.toml", saved=True)
        kind = kind_of(cfg)
    except TallerError as e:  # a damaged folder is listed with the reason it can't be opened
        return {"name": name, "error": str(e)}
    if not kind.language_model:  # e.g. word vectors: listed, with where to look instead
        return {"name": name, "kind": kind.name, "error": str(kind.refuse(name))}
    return {"name": name, "kind": cfg.model.kind, "corpus": state.get("corpus"),
            "parameters": state.get("parameters"), "val_bpc": state.get("val_bpc"),
            "block_size": cfg.model.context, "prompt": cfg.train.prompt}  # block_size: None for no limit


# --- what each endpoint answers -------------------------------------------------------------------------------------


def predict_reply(run: Run, text: str) -> dict:
    """/api/predict: the TOP most likely next tokens as bars, and what the rest of the vocabulary adds up to."""
    probs = next_token_probs(run.model, run.tokenizer, checked_text(run, text))  # (V,)
    top = torch.topk(probs, min(TOP, len(probs)))
    pieces = run.tokenizer.pieces  # id -> text: a character, a word or a BPE token
    bars = [{"char": pieces[i], "shown": show_token(pieces[i]), "prob": float(p)}
            for p, i in zip(top.values, top.indices)]
    rest = max(0.0, float(probs.sum()) - sum(b["prob"] for b in bars))
    return {"text": text, "bars": bars, "rest": rest, "rest_count": len(probs) - len(bars)}


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
    stop = "\n" if req.mode == "line" else None
    out = run.generate(text, 1, max_chars=steps, temperature=req.temperature, stop=stop)[0]
    return {"text": out.text, "added": out.generated}


# --- the app --------------------------------------------------------------------------------------------------------


def add_error_replies(app: FastAPI) -> None:
    """Every refusal as a 4xx with {"error": "…"} in Spanish, whoever raises it (us, taller, FastAPI, Starlette)."""

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse({"error": f"la petición es demasiado grande (máximo {MAX_BODY // 1024} KiB)."}, 413)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return JSONResponse({"error": e.message}, e.status)

    @app.exception_handler(TallerError)
    async def taller_error(request, e: TallerError):
        return JSONResponse({"error": str(e)}, 400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        where = ", ".join(".".join(str(p) for p in err.get("loc", ())[1:]) or "cuerpo" for err in e.errors()[:3])
        return JSONResponse({"error": f"petición no válida (revisa: {where}); se espera JSON como "
                                      '{"run": "nombre", "text": "No hay "}.'}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        messages = {404: "no existe esa dirección; abre / para ver la página.", 405: "método no permitido aquí."}
        return JSONResponse({"error": messages.get(e.status_code, "petición no válida.")}, e.status_code)


def add_endpoints(app: FastAPI, root: Path, runs: RunCache) -> None:
    """The page and the four endpoints of this module's docstring."""
    recording = threading.Lock()  # attention_maps records into the model: one request at a time

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def list_runs():
        found = [run_summary(name, path) for name, path in find_runs(root).items()]
        return {"root": str(root.resolve()), "runs": found, "max_text": MAX_TEXT}

    @app.post("/api/predict")
    def predict(req: TextRequest):
        return predict_reply(runs.get(req.run), req.text)

    @app.post("/api/attention")
    def attention(req: TextRequest):
        return attention_reply(runs.get(req.run), req.text, recording)

    @app.post("/api/sample")
    def sample(req: SampleRequest):
        return sample_reply(runs.get(req.run), req)


def create_app(root: Path, loader=load_run) -> FastAPI:
    """The web app serving the runs under `root`; `loader(path) -> Run` opens a run folder (tests pass their own)."""
    root = Path(root)
    app = FastAPI(title="taller", docs_url=None, redoc_url=None, openapi_url=None)
    add_error_replies(app)
    add_endpoints(app, root, RunCache(root, loader))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(path: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    path = Path(path)
    if not path.is_dir():
        raise TallerError(f"no existe la carpeta {path}; indica una ejecución o una carpeta con varias, como runs/.")
    runs = find_runs(path)
    if not runs:
        raise TallerError(f"{path} no tiene ninguna ejecución (carpetas con state.json); entrena una con `taller demo`.")
    if not 0 < port < 65536:
        raise TallerError(f"--port={port} no es un puerto válido; usa uno entre 1 y 65535, por ejemplo 8000.")
    try:  # a clear message instead of uvicorn's when the port is taken
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise TallerError(f"no puedo escuchar en {host}:{port} ({e.strerror}); prueba otro puerto con --port {port + 1}.") from None
    print(f"taller serve: {len(runs)} ejecución(es) en {path}: {', '.join(list(runs)[:5])}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Aviso: escuchando en {host}: otros equipos de la red pueden abrir la página.")
    print(f"Abre http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/ en el navegador (Ctrl-C para terminar).")
    uvicorn.run(create_app(path), host=host, port=port, log_level="warning")
