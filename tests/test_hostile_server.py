"""`taller serve` against a hostile client: a catalogue of bad requests (wrong Host, bodies too big, chunked or not,
lone surrogates, broken JSON, damaged run folders), each with its status and its Spanish {"error": …}; a real
server fed a 64 MiB chunked body, whose memory must not grow; and the command's refusals in one line."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import pytest
from conftest import PROVERBS, one_line_error, poison_weights, run_cli, snapshot
from fastapi.testclient import TestClient

from taller.apps.web.app import create_app
from taller.apps.web.guards import MAX_BODY
from taller.apps.web.refusals import without_paths
from taller.errors import TallerError

HEADERS = {"content-type": "application/json"}
HUGE_STEP = "9" * 5000  # an integer JSON can write and Python refuses to read (more than 4,300 digits)
NOT_UTF8 = os.fsdecode(b"mal\xff")  # a folder name that is not UTF-8: Python reads it with a lone surrogate


def with_state(source: Path, target: Path, **raw: str) -> None:
    """A copy of the run `source` at `target` whose state.json has the fields `raw`, written as raw JSON text."""
    shutil.copytree(source, target)
    state = json.loads((target / "state.json").read_text(encoding="utf-8"))
    state.update({key: f"@{key}@" for key in raw})
    text = json.dumps(state)
    for key, literal in raw.items():
        text = text.replace(f'"@{key}@"', literal)
    (target / "state.json").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def root(trained_run, mix_run, tmp_path_factory):
    """runs/ with a good run, a mix of it and an n-gram (and two copies of the mix with a NaN or an infinity in its
    table), and run folders whose state.json says absurd things."""
    root = tmp_path_factory.mktemp("runs")
    shutil.copytree(trained_run.dir, root / "refranes")
    shutil.copytree(trained_run.dir, root / "run")  # the mix's parts, where its config.toml looks: ../run, ../ngram
    shutil.copytree(mix_run.dir.parent / "ngram", root / "ngram")
    for name, value in (("mezcla", None), ("mezcla-nan", float("nan")), ("mezcla-inf", float("inf"))):
        shutil.copytree(mix_run.dir, root / name)
        if value is not None:
            poison_weights(root / name, value)
    with_state(trained_run.dir, root / "paso-enorme", step=HUGE_STEP)
    with_state(trained_run.dir, root / "paso-infinito", step="1e400")
    with_state(trained_run.dir, root / "paso-texto", step='"mucho"')
    with_state(trained_run.dir, root / "paso-negativo", step="-1")
    with_state(
        trained_run.dir, root / "cifras-raras", val_bpc="1e400", parameters="1" + "0" * 40, corpus='"/home/ana/x.txt"'
    )
    with_state(trained_run.dir, root / NOT_UTF8)
    return root


@pytest.fixture(scope="module")
def client(root):
    return TestClient(create_app(root), base_url="http://127.0.0.1")


def body(**fields) -> bytes:
    """A JSON body as a hostile client writes it: json.dumps escapes lone surrogates as \\ud800, which JSON allows."""
    return json.dumps(fields).encode()


def nested(depth: int) -> bytes:
    return b'{"run": ' + b"[" * depth + b"]" * depth + b', "text": "No"}'


def chunks(total: int, piece: int = 64 * 1024):
    for _ in range(total // piece):
        yield b" " * piece


def no_paths(reply: str, root: Path) -> None:
    """A reply never says where files live on this machine."""
    assert str(root.resolve().parent) not in reply and "/tmp/" not in reply and "/home/" not in reply, reply


# (name, method, path, body, extra headers, status, a fragment of the Spanish error)
CATALOGUE = [
    ("host ajeno", "GET", "/api/runs", None, {"host": "evil.example"}, 400, "no al nombre «evil.example»"),
    ("host ajeno con puerto", "GET", "/api/runs", None, {"host": "evil.example:8000"}, 400, "--allow-host"),
    ("host que empieza por localhost", "GET", "/api/runs", None, {"host": "localhost.evil.example"}, 400, "localhost"),
    ("host que imita 127.0.0.1", "GET", "/", None, {"host": "127.0.0.1.nip.io"}, 400, "no al nombre"),
    ("host IPv6 ajeno", "GET", "/api/runs", None, {"host": "[::2]:8000"}, 400, "no al nombre «[::2]:8000»"),
    ("host con puerto no numérico", "GET", "/api/runs", None, {"host": "localhost:80x"}, 400, "no al nombre"),
    (
        "host en una predicción",
        "POST",
        "/api/predict",
        body(run="refranes", text="No"),
        {"host": "evil.example"},
        400,
        "taller serve --allow-host",
    ),
    ("host en un fichero estático", "GET", "/static/app.js", None, {"host": "evil.example"}, 400, "no al nombre"),
    ("cuerpo con Content-Length enorme", "POST", "/api/predict", b" " * (MAX_BODY + 1), {}, 413, "demasiado grande"),
    ("Content-Length absurdo", "POST", "/api/predict", b"{}", {"content-length": "9" * 30}, 413, "demasiado grande"),
    ("cuerpo troceado enorme", "POST", "/api/predict", "chunks", {}, 413, "demasiado grande"),
    (
        "surrogate en text",
        "POST",
        "/api/predict",
        body(run="refranes", text="\ud800"),
        {},
        400,
        "el campo «text» lleva un carácter que no es texto",
    ),
    ("surrogate en run", "POST", "/api/predict", body(run="\ud800", text="No"), {}, 400, "el campo «run»"),
    (
        "surrogate en mode",
        "POST",
        "/api/sample",
        body(run="refranes", text="No", mode="\udfff"),
        {},
        400,
        "el campo «mode»",
    ),
    ("surrogate en atención", "POST", "/api/attention", body(run="refranes", text="No\udc80"), {}, 400, "«text»"),
    ("ruta relativa como run", "POST", "/api/predict", body(run="../refranes", text="No"), {}, 400, "no válido"),
    ("ruta absoluta como run", "POST", "/api/predict", body(run="/etc/passwd", text="No"), {}, 400, "no válido"),
    ("NUL en run", "POST", "/api/predict", body(run="a\0b", text="No"), {}, 400, "no válido"),
    ("run que no existe", "POST", "/api/predict", body(run="no-existe", text="No"), {}, 404, "en la carpeta servida"),
    ("paso de 5.000 cifras", "POST", "/api/predict", body(run="paso-enorme", text="No"), {}, 400, "paso-enorme"),
    ("paso infinito", "POST", "/api/predict", body(run="paso-infinito", text="No"), {}, 400, "paso-infinito"),
    ("paso de texto", "POST", "/api/attention", body(run="paso-texto", text="No"), {}, 400, "paso-texto"),
    (
        "temperatura NaN",
        "POST",
        "/api/sample",
        b'{"run": "refranes", "text": "No", "temperature": NaN}',
        {},
        400,
        "temperatura",
    ),
    (
        "temperatura 1e400",
        "POST",
        "/api/sample",
        b'{"run": "refranes", "text": "No", "temperature": 1e400}',
        {},
        400,
        "temperatura",
    ),
    (
        "temperatura de texto",
        "POST",
        "/api/sample",
        body(run="refranes", text="No", temperature="caliente"),
        {},
        422,
        "temperature",
    ),
    ("modo desconocido", "POST", "/api/sample", body(run="refranes", text="No", mode="párrafo"), {}, 400, "modo"),
    (
        "texto de 100.000 caracteres",
        "POST",
        "/api/predict",
        body(run="refranes", text="N" * 100_000),
        {},
        413,
        "100.000 caracteres",
    ),
    ("JSON cortado", "POST", "/api/predict", b'{"run": "refranes", "text": ', {}, 422, "petición no válida"),
    ("JSON anidado 100.000 veces", "POST", "/api/predict", nested(100_000), {}, 400, "petición no válida"),
    ("una lista en vez de un objeto", "POST", "/api/predict", b"[1, 2]", {}, 422, "petición no válida"),
    ("un número como texto", "POST", "/api/predict", body(run="refranes", text=7), {}, 422, "text"),
    ("GET donde va POST", "GET", "/api/predict", None, {}, 405, "método no permitido"),
    ("POST donde va GET", "POST", "/api/runs", body(), {}, 405, "método no permitido"),
    ("dirección que no existe", "GET", "/api/nada", None, {}, 404, "no existe esa dirección"),
    # issue 30: tampered weights and the surprise map: a 4xx with the reason, never a 500
    (
        "predicción de una mezcla con NaN",
        "POST",
        "/api/predict",
        body(run="mezcla-nan", text="No"),
        {},
        400,
        "mezcla-nan/model.safetensors: el tensor 'weights' tiene valores NaN o infinitos",
    ),
    (
        "muestra de una mezcla con infinitos",
        "POST",
        "/api/sample",
        body(run="mezcla-inf", text="No"),
        {},
        400,
        "NaN o infinitos",
    ),
    (
        "sorpresa de una mezcla con NaN",
        "POST",
        "/api/surprise",
        body(run="mezcla-nan", text="No hay mal"),
        {},
        400,
        "NaN o infinitos",
    ),
    (
        "sorpresa contra una mezcla con infinitos",
        "POST",
        "/api/surprise",
        body(run="refranes", text="No hay mal", against="mezcla-inf"),
        {},
        400,
        "NaN o infinitos",
    ),
    (
        "sorpresa de 20.001 caracteres",
        "POST",
        "/api/surprise",
        body(run="mezcla", text="N" * 20_001),
        {},
        413,
        "como mucho 20.000",
    ),
    (
        "sorpresa contra una ejecución que no existe",
        "POST",
        "/api/surprise",
        body(run="mezcla", text="No hay mal", against="no-existe"),
        {},
        404,
        "en la carpeta servida",
    ),
    (
        "sorpresa contra una ruta",
        "POST",
        "/api/surprise",
        body(run="mezcla", text="No hay", against="../mezcla"),
        {},
        400,
        "no válido",
    ),
    ("sorpresa de un carácter", "POST", "/api/surprise", body(run="mezcla", text="N"), {}, 400, "demasiado corto"),
    (
        "sorpresa con un carácter nunca visto",
        "POST",
        "/api/surprise",
        body(run="mezcla", text="No hay ☃"),
        {},
        400,
        "'☃'",
    ),
    (
        "sorpresa contra un número",
        "POST",
        "/api/surprise",
        body(run="mezcla", text="No hay", against=7),
        {},
        422,
        "against",
    ),
]


@pytest.mark.parametrize(
    "method, path, content, headers, status, fragment",
    [case[1:] for case in CATALOGUE],
    ids=[case[0] for case in CATALOGUE],
)
def test_a_hostile_request_gets_its_status_and_a_spanish_error(
    client, root, method, path, content, headers, status, fragment
):
    content = chunks(2 * MAX_BODY) if content == "chunks" else content
    before = snapshot(root, deep=True)
    response = client.request(method, path, content=content, headers={**HEADERS, **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json" and fragment in response.json()["error"]
    no_paths(response.text, root)
    assert snapshot(root, deep=True) == before  # the served folder as it was: nothing written, nothing new


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"])
def test_loopback_names_are_answered(client, host):
    assert client.get("/api/runs", headers={"host": host}).status_code == 200


def test_a_name_given_with_allow_host_is_answered(root):
    client = TestClient(create_app(root, hosts={"localhost", "mipc.local"}), base_url="http://mipc.local:8000")
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs", headers={"host": "otro.local"}).status_code == 400


def test_absurd_runs_are_listed_with_their_error_and_the_others_normally(client, root):
    response = client.get("/api/runs")
    assert response.status_code == 200
    data = response.json()
    listed = {r["name"]: r for r in data["runs"]}
    assert listed["refranes"]["kind"] == "transformer" and "error" not in listed["refranes"]
    for name in ("paso-enorme", "paso-infinito", "paso-texto"):
        assert name in listed[name]["error"], listed[name]  # the folder is named, relative to the one served
    assert "paso-negativo" in listed  # refused or not by state.json's reader, it never hides the others
    odd = listed["cifras-raras"]
    assert odd["val_bpc"] is None and odd["parameters"] is None and odd["corpus"] == "x.txt"
    assert "UTF-8" in listed["mal\ufffd"]["error"]
    assert data["root"] == root.name
    no_paths(response.text, root)


def test_library_errors_are_sent_without_paths_and_always_encodable(root):
    def broken(path):
        raise TallerError(f"{path}/model.safetensors es un enlace a /dev/zero \ud800; vuelve a entrenar.")

    client = TestClient(create_app(root, loader=broken), base_url="http://127.0.0.1")
    response = client.post("/api/predict", content=body(run="refranes", text="No"), headers=HEADERS)
    error = response.json()["error"]
    assert response.status_code == 400 and error.startswith(
        f"{root.name}/refranes/model.safetensors es un enlace a zero"
    )
    no_paths(response.text, root)


def test_an_unforeseen_failure_is_a_spanish_500(root):
    def failing(path):
        raise RuntimeError(f"fallo en {path}")

    client = TestClient(create_app(root, loader=failing), base_url="http://127.0.0.1", raise_server_exceptions=False)
    response = client.post("/api/predict", content=body(run="refranes", text="No"), headers=HEADERS)
    assert response.status_code == 500 and "error interno" in response.json()["error"]
    no_paths(response.text, root)


def test_without_paths():
    root = Path("/srv/ana/runs")
    assert (
        without_paths(
            "/srv/ana/runs/x/state.json: el campo 'step' falta; /srv/ana/runs y /dev/zero, 3/4 bits/carácter.", root
        )
        == "runs/x/state.json: el campo 'step' falta; runs y zero, 3/4 bits/carácter."
    )


# --- a real server: a chunked body of 64 MiB --------------------------------------------------------------------------


def memory_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def response_of(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON of the next response read from `sock` (with a Content-Length, as uvicorn sends them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"la conexión se cerró: {data!r}")
    head, rest = data.split(b"\r\n\r\n", 1)
    size = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(rest) < size:
        rest += sock.recv(65536) or pytest.fail("la conexión se cerró")
    return int(head.split()[1]), json.loads(rest[:size])


@pytest.fixture(scope="module")
def server(root, tmp_path_factory):
    """`taller serve` on a free port, as a user starts it: (pid, port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taller", "serve", str(root), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):  # it imports torch first: up to a minute, in 0.1-s waits on the process itself
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                try:
                    proc.wait(timeout=0.1)
                    pytest.fail(f"taller serve terminó: {log.read_text()}")
                except subprocess.TimeoutExpired:
                    pass
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_chunked_body_is_refused_as_it_arrives_and_memory_stays_flat(server):
    pid, port = server
    total, piece = 64 * 1024 * 1024, b" " * (64 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert response_of(sock)[0] == 200
        before = memory_kb(pid)
        sock.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while sent < 2 * 1024 * 1024:  # twice the limit, then nothing more until the answer comes
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        # a server that waited for the whole body would never answer here (the socket's timeout would end the test)
        status, reply = response_of(sock)
        while sent < total:  # the rest of the body, which the server reads and drops
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        sock.sendall(b"0\r\n\r\n")
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the same connection still works
        assert response_of(sock)[0] == 200
        after = memory_kb(pid)
    assert status == 413 and "demasiado grande" in reply["error"]
    assert after - before < 32 * 1024, f"la memoria del servidor creció de {before} kB a {after} kB"


def test_concurrent_surprise_maps_leave_the_server_under_1_gb(server):
    """Issue 30: 60 concurrent 20,000-character maps over 8 runs left a server at 1.8 GB. Here 20 requests at once
    (10,000 characters: tiny runs, a few seconds), over a run, an n-gram and their mix, a quarter of them against
    another run: every one answered (none a 500), and the server's peak memory (VmHWM, importing torch included)
    stays under 1 GB."""
    pid, port = server
    text = (("\n".join(PROVERBS) + "\n") * 30)[:10_000]
    runs = ["refranes", "mezcla", "ngram", "run"]

    def ask(i: int) -> int:
        connection = HTTPConnection("127.0.0.1", port, timeout=120)
        against = runs[(i + 1) % len(runs)] if i % 4 == 1 else ""
        connection.request(
            "POST",
            "/api/surprise",
            body=body(run=runs[i % len(runs)], text=text, against=against),
            headers={"Host": "127.0.0.1", **HEADERS},
        )
        status = connection.getresponse().status
        connection.close()
        return status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(ask, range(20)))
    peak = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    assert statuses == [200] * 20
    assert peak < 1024 * 1024, f"el servidor llegó a {peak // 1024} MB"


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /api/runs HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"GET /api/runs HTTP/1.0\r\n\r\n",  # no Host at all
    ],
)
def test_a_real_server_checks_host(server, request_line):
    with socket.create_connection(("127.0.0.1", server[1]), timeout=30) as sock:
        sock.sendall(request_line)
        status, reply = response_of(sock)
    assert status == 400 and "--allow-host" in reply["error"]


# --- the command ---------------------------------------------------------------------------------------------------


def test_serve_refuses_in_one_spanish_line(root, tmp_path, capsys):
    (tmp_path / "notas.txt").write_text("no es una carpeta")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, fragment in [
            ([str(tmp_path / "notas.txt")], "es un archivo, no una carpeta"),
            ([str(root), "--port", str(port)], f"el puerto {port} ya está ocupado"),
            ([str(root), "--allow-host", ":80"], "--allow-host «:80» no es un nombre"),
            ([str(root), "--host", "192.0.2.1", "--port", str(port)], "no es una dirección de este equipo"),
        ]:
            code, _, err = run_cli(["serve", *args], capsys)
            line = one_line_error(code, err)
            assert fragment in line and "Address" not in line, line


def test_a_mix_is_served_only_when_every_part_lies_inside_the_folder(mix_run, tmp_path):
    """A mix inside the served folder whose parts are outside it (runs=../../fuera/…) is refused with a 400 before
    any outside path is touched: the same reply whether those paths exist or not, and none of them named."""
    parts = mix_run.dir.parent
    served, outside = tmp_path / "servida", tmp_path / "fuera"
    for name in ("run", "ngram"):
        shutil.copytree(parts / name, outside / name)
        shutil.copytree(parts / name, served / name)
    for mix, where in (("dentro", ".."), ("existe", "../../fuera"), ("falta", "../../nada")):
        shutil.copytree(mix_run.dir, served / mix)
        config = (served / mix / "config.toml").read_text(encoding="utf-8")
        config = re.sub(r'runs = "[^"]*"', f'runs = "{where}/run,{where}/ngram"', config)
        (served / mix / "config.toml").write_text(config, encoding="utf-8")
    client = TestClient(create_app(served), base_url="http://127.0.0.1")
    replies = {
        mix: client.post("/api/predict", content=body(run=mix, text="No"), headers=HEADERS)
        for mix in ("dentro", "existe", "falta")
    }
    assert replies["dentro"].status_code == 200, replies["dentro"].text
    for mix in ("existe", "falta"):
        assert replies[mix].status_code == 400 and "fuera de la carpeta servida" in replies[mix].json()["error"]
        assert "fuera/" not in replies[mix].text and "nada/" not in replies[mix].text, replies[mix].text
        no_paths(replies[mix].text, served)
    assert replies["existe"].json()["error"].replace("existe", "X") == replies["falta"].json()["error"].replace(
        "falta", "X"
    )
