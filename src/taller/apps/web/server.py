"""`taller serve`: a local web page to explore trained models (FastAPI + uvicorn, plain JavaScript, no build step).

    GET  /                 the page (static/index.html, app.js, style.css)
    GET  /api/runs         the run folders found under PATH
    POST /api/predict      {run, text}                          → the top-10 next characters and the rest
    POST /api/attention    {run, text}                          → per layer and head, the (T, T) attention
    POST /api/sample       {run, text, temperature, mode}       → one sampled character, or up to the end of the line

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

from taller.errors import TallerError
from taller.inspect.inside import NO_ATTENTION, has_attention
from taller.sampling import next_token_probs
from taller.runs.checkpoint import read_state
from taller.config import Config
from taller.runs.folder import Run, load_run
from taller.text import show_token, thousands

STATIC = Path(__file__).parent / "static"
MAX_TEXT = 2000  # characters of prompt a request may send
MAX_STEPS = 300  # characters "generar" may write in one request
MAX_BODY = 1024 * 1024  # bytes of request body
KEEP = 4  # runs kept loaded at once
TOP = 10  # bars shown; the rest are summed


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


def create_app(root: Path, loader=load_run) -> FastAPI:
    """The web app serving the runs under `root`; `loader(path) -> Run` opens a run folder (tests pass their own)."""
    root = Path(root)
    app = FastAPI(title="taller", docs_url=None, redoc_url=None, openapi_url=None)
    cache: dict[str, tuple[float, Run]] = {}  # name -> (state.json mtime, loaded run)
    lock = threading.Lock()  # guards the cache
    recording = threading.Lock()  # attention_maps records into the model: one request at a time

    def get_run(name: str) -> Run:
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
            raise ApiError(400, f"nombre de ejecución no válido: «{name[:80]}»; usa uno de la lista de /api/runs.")
        runs = find_runs(root)
        if name not in runs:
            known = ", ".join(list(runs)[:10]) or "ninguna"
            raise ApiError(404, f"no hay ninguna ejecución «{name[:80]}» en {root}; las que hay: {known}.")
        mtime = (runs[name] / "state.json").stat().st_mtime
        with lock:  # one load at a time; a retrained run (newer state.json) is loaded again
            if name not in cache or cache[name][0] != mtime:
                cache.pop(name, None)
                if len(cache) >= KEEP:
                    cache.pop(next(iter(cache)))  # the one loaded longest ago
                cache[name] = (mtime, loader(runs[name]))
            return cache[name][1]

    def checked_text(run: Run, text: str) -> str:
        if len(text) > MAX_TEXT:
            raise ApiError(413, f"el texto tiene {thousands(len(text))} caracteres y el máximo es "
                                f"{thousands(MAX_TEXT)}; acórtalo.")
        unknown = run.tokenizer.unknown(text)
        if unknown:
            shown = " ".join(f"«{c}»" for c in unknown[:10])
            raise ApiError(400, f"el modelo nunca vio estos caracteres: {shown}; bórralos o cámbialos.")
        return text

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

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def runs():
        found = []  # read from state.json and config.toml only: listing loads no model
        for name, path in find_runs(root).items():
            try:
                state, cfg = read_state(path), Config.load(path / "config.toml")
            except TallerError as e:  # a damaged folder is listed with the reason it can't be opened
                found.append({"name": name, "error": str(e)})
                continue
            if cfg.model.kind == "skipgram":  # word vectors, not a language model: listed, with where to look instead
                found.append({"name": name, "kind": "skipgram", "error": f"«{name}» es un skip-gram (vectores de "
                              f"palabras), no escribe texto: pregúntale con `taller embeddings {path} --near palabra`."})
                continue
            found.append({"name": name, "kind": cfg.model.kind, "corpus": state.get("corpus"),
                          "parameters": state.get("parameters"), "val_bpc": state.get("val_bpc"),
                          "block_size": cfg.model.block_size, "prompt": cfg.train.prompt})
        return {"root": str(root.resolve()), "runs": found, "max_text": MAX_TEXT}

    @app.post("/api/predict")
    def predict(req: TextRequest):
        run = get_run(req.run)
        probs = next_token_probs(run.model, run.tokenizer, checked_text(run, req.text))  # (V,)
        top = torch.topk(probs, min(TOP, len(probs)))
        pieces = run.tokenizer.pieces  # id -> text: a character, a word or a BPE token
        bars = [{"char": pieces[i], "shown": show_token(pieces[i]), "prob": float(p)}
                for p, i in zip(top.values, top.indices)]
        rest = max(0.0, float(probs.sum()) - sum(b["prob"] for b in bars))
        return {"text": req.text, "bars": bars, "rest": rest, "rest_count": len(probs) - len(bars)}

    @app.post("/api/attention")
    def attention(req: TextRequest):
        run = get_run(req.run)
        text = checked_text(run, req.text)
        if not has_attention(run.model):
            return {"text": text, "note": NO_ATTENTION}
        ids = run.tokenizer.encode(text)[-run.model.block_size:]  # what the model sees: the last block_size
        if not ids:
            return {"text": text, "note": "Escribe algo para ver a dónde mira cada cabeza."}
        with torch.no_grad(), recording:
            run.model.eval()
            maps = run.model.attention_maps(torch.tensor([ids], device=next(run.model.parameters()).device))
        return {"text": text, "chars": [show_token(run.tokenizer.pieces[i]) for i in ids],
                "layers": [[[[round(float(w), 4) for w in row] for row in head] for head in m[0].cpu()] for m in maps]}

    @app.post("/api/sample")
    def sample(req: SampleRequest):
        run = get_run(req.run)
        text = checked_text(run, req.text)
        if not 0.05 <= req.temperature <= 5:
            raise ApiError(400, f"la temperatura {req.temperature} está fuera de [0,05, 5]; usa el deslizador.")
        if req.mode not in ("char", "line"):
            raise ApiError(400, f"modo «{req.mode[:20]}» desconocido; usa «char» (un carácter) o «line» (hasta el final de la línea).")
        line = req.mode == "line"
        steps = min(MAX_STEPS, MAX_TEXT - len(text)) if line else 1
        if steps < 1:
            raise ApiError(413, f"el texto ya tiene {thousands(len(text))} caracteres, el máximo; bórralo un poco.")
        out = run.generate(text, 1, max_chars=steps, temperature=req.temperature, stop="\n" if line else None)[0]
        return {"text": out.text, "added": out.generated}

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
