"""`taller serve`: the API's answers (good and bad requests) and the page itself, driven in a real headless Chromium."""

import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
from conftest import CHROMIUM_ARGS, chromium
from fastapi.testclient import TestClient

from taller.apps.web import reading
from taller.apps.web.app import create_app
from taller.apps.web.replies import MAX_TEXT
from taller.inspect.classify import classify
from taller.inspect.fill import fill
from taller.inspect.inside import NO_ATTENTION
from taller.inspect.surprise import surprise
from taller.inspect.word_blanks import auto_candidates, rank_words
from taller.runs.folder import load_run
from taller.sampling import next_token_probs


@pytest.fixture(scope="module")
def runs_dir(trained_run, trained_lstm_run, bert_run, counted_run, tmp_path_factory):
    """runs/ with copies of the shared tiny Transformer, LSTM, BERT and counting classifier, an empty folder, and a
    link to a run outside runs/."""
    root = tmp_path_factory.mktemp("runs")
    shutil.copytree(bert_run.dir, root / "bert")
    shutil.copytree(counted_run.dir, root / "clasificador")
    shutil.copytree(trained_lstm_run.dir, root / "lstm")
    (root / "mini").symlink_to(trained_run.dir, target_is_directory=True)  # resolves outside root: never served
    shutil.copytree(trained_run.dir, root / "refranes")
    (root / "vacía").mkdir()  # not a run
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    return TestClient(create_app(runs_dir), base_url="http://127.0.0.1")  # the server answers loopback names only


def test_lists_only_the_runs_inside_the_folder(client):
    names = [r["name"] for r in client.get("/api/runs").json()["runs"]]
    assert names == ["bert", "clasificador", "lstm", "refranes"]  # not the empty folder, not the link that leads out


def test_a_bert_fills_and_a_classifier_answers_as_the_command_line_does(client, runs_dir, monkeypatch):
    listed = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed["bert"]["fills"] and not listed["bert"]["classifies"] and listed["clasificador"]["classifies"]
    bert, counted = load_run(runs_dir / "bert", can="fills"), load_run(runs_dir / "clasificador", can="classifies")
    data = client.post("/api/fill", json={"run": "bert", "text": "No hay ___ sin espinas."}).json()
    filled = fill(bert, "No hay ___ sin espinas.")
    assert data["filled"] == filled.text and [s["text"] for s in data["steps"]] == [s.text for s in filled.steps]
    data = client.post("/api/fill", json={"run": "bert", "text": "No hay ____ sin espinas.", "candidates": "auto"})
    ranked = sorted(
        rank_words(bert, "No hay ____ sin espinas.", auto_candidates(bert, 4)), key=lambda c: -c.probability
    )
    words = [c["word"] for c in data.json()["candidates"]]
    assert words == [c.word for c in ranked[:10]] and data.json()["filled"] == f"No hay {words[0]} sin espinas."
    monkeypatch.setattr(reading, "vocabulary", lambda config: pytest.fail("the training words are counted again"))
    again = client.post("/api/fill", json={"run": "bert", "text": "No hay ____ sin espinas.", "candidates": "auto"})
    assert again.json()["candidates"] == data.json()["candidates"]  # from the words counted for the first request
    answers = client.post("/api/classify", json={"run": "clasificador", "text": "No hay rosa sin espinas."}).json()
    expected = classify(counted, "No hay rosa sin espinas.")
    assert [a["label"] for a in answers["answers"]] == [label for label, _ in expected]
    assert [a["probability"] for a in answers["answers"]] == pytest.approx([p for _, p in expected])
    for path, body, fragment in (
        ("/api/fill", {"run": "refranes", "text": "No _"}, "lee de izquierda a derecha"),
        ("/api/fill", {"run": "bert", "text": "No hay nada"}, "ningún hueco"),
        ("/api/fill", {"run": "bert", "text": "No __ a _", "candidates": "auto"}, "exactamente un hueco"),
        ("/api/classify", {"run": "bert", "text": "No hay"}, "es un BERT"),
        ("/api/classify", {"run": "clasificador", "text": " "}, "vacío"),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 400 and fragment in response.json()["error"], (body, response.json())


def test_bars_are_the_models_own_probabilities(client, runs_dir):
    run = load_run(runs_dir / "refranes")
    data = client.post("/api/predict", json={"run": "refranes", "text": "No hay "}).json()
    assert len(data["bars"]) == 10 and abs(sum(b["prob"] for b in data["bars"]) + data["rest"] - 1) < 1e-5
    expected = next_token_probs(run.model, run.tokenizer, "No hay ")
    for b in data["bars"]:
        assert abs(b["prob"] - float(expected[run.tokenizer.index[b["char"]]])) < 1e-6


def test_attention_of_every_head(client, trained_run):
    data = client.post("/api/attention", json={"run": "refranes", "text": "No hay"}).json()
    cfg = trained_run.config.model
    assert data["chars"] == ["N", "o", "␣", "h", "a", "y"]
    assert len(data["layers"]) == cfg.n_layers and len(data["layers"][0]) == cfg.n_heads
    for row, weights in enumerate(data["layers"][0][0]):
        assert abs(sum(weights) - 1) < 1e-3 and all(w == 0 for w in weights[row + 1 :])


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"run": "refranes", "text": "N" * 100_000}, 413, "100.000 caracteres"),
        ({"run": "no-existe", "text": "No"}, 404, "no hay ninguna ejecución «no-existe»"),
        ({"run": "../refranes", "text": "No"}, 400, "nombre de ejecución no válido"),
        ({"run": "..", "text": "No"}, 400, "nombre de ejecución no válido"),
        ({"run": "/etc", "text": "No"}, 400, "nombre de ejecución no válido"),
        ({"run": "mini", "text": "No"}, 404, "no hay ninguna ejecución"),
        ({"run": "refranes", "text": "€"}, 400, "nunca vio"),
        ({"text": "No"}, 422, "petición no válida"),
    ],
)
def test_bad_requests_get_a_4xx_and_a_spanish_message(client, body, status, fragment):
    response = client.post("/api/predict", json=body)
    assert response.status_code == status and fragment in response.json()["error"]


def test_sampling_and_its_limits(client):
    one = client.post("/api/sample", json={"run": "refranes", "text": "No hay ", "mode": "char"}).json()
    assert one["text"].startswith("No hay ") and len(one["text"]) == len("No hay ") + 1
    line = client.post("/api/sample", json={"run": "refranes", "text": "No", "mode": "line", "temperature": 0.5}).json()
    assert line["text"].startswith("No") and "\n" not in line["text"] and len(line["text"]) <= MAX_TEXT
    hot = client.post("/api/sample", json={"run": "refranes", "text": "No", "temperature": 50})
    assert hot.status_code == 400 and "temperatura" in hot.json()["error"]
    full = client.post("/api/sample", json={"run": "refranes", "text": "a" * MAX_TEXT, "mode": "line"})
    assert full.status_code == 413


def test_an_lstm_is_served_with_its_probabilities_and_a_note_for_attention(client, runs_dir):
    run = load_run(runs_dir / "lstm")
    assert run.config.model.kind == "lstm" and not hasattr(run.model, "attention_maps")
    listed = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed["lstm"]["kind"] == "lstm" and listed["lstm"]["parameters"] == sum(
        p.numel() for p in run.model.parameters()
    )
    response = client.post("/api/predict", json={"run": "lstm", "text": "No hay "})
    assert response.status_code == 200
    data = response.json()
    expected = next_token_probs(run.model, run.tokenizer, "No hay ")
    assert len(data["bars"]) == 10 and abs(sum(b["prob"] for b in data["bars"]) + data["rest"] - 1) < 1e-5
    assert [b["char"] for b in data["bars"]] == [run.tokenizer.pieces[i] for i in torch.topk(expected, 10).indices]
    for b in data["bars"]:
        assert abs(b["prob"] - float(expected[run.tokenizer.index[b["char"]]])) < 1e-6
    # a text longer than the config's block_size (16), which an LSTM does not crop; and what it read matters
    long = "Más vale tarde que nunca. No hay mal que por bien no venga. No hay "
    whole = client.post("/api/predict", json={"run": "lstm", "text": long}).json()["bars"]
    assert abs(whole[0]["prob"] - float(next_token_probs(run.model, run.tokenizer, long).max())) < 1e-6
    assert (expected - next_token_probs(run.model, run.tokenizer, "y ")).abs().max() > 0.05
    data = client.post("/api/attention", json={"run": "lstm", "text": "No"}).json()
    assert data["note"] == NO_ATTENTION and "no tiene atención" in data["note"] and "layers" not in data
    line = client.post(
        "/api/sample", json={"run": "lstm", "text": "No hay ", "mode": "line", "temperature": 0.5}
    ).json()
    assert line["text"].startswith("No hay ") and "\n" not in line["text"] and line["text"] == "No hay " + line["added"]


def test_the_surprise_map_adds_up_and_compares_two_runs(client, runs_dir):
    text = "No hay rosa sin espinas.\nMás vale tarde que nunca.\n"
    data = client.post("/api/surprise", json={"run": "refranes", "text": text, "against": "lstm"}).json()
    expected = surprise(load_run(runs_dir / "refranes"), text)
    assert data["chars"] == list(text) and data["bits"][0] is None and data["scored"] == len(text) - 1
    assert data["total"] == pytest.approx(expected.total, rel=1e-9) == pytest.approx(sum(data["bits"][1:]), rel=1e-9)
    other = data["against"]
    assert other["run"] == "lstm" and other["difference"][1] == pytest.approx(data["bits"][1] - other["bits"][1])
    assert len(data["top"]) == 10 and data["top"][0]["bits"] == max(data["bits"][1:])
    own = client.post("/api/surprise", json={"run": "refranes", "text": ""}).json()  # its validation text
    assert own["bpc"] == pytest.approx(load_run(runs_dir / "refranes").state["val_bpc"], rel=1e-6)
    too_long = client.post("/api/surprise", json={"run": "refranes", "text": "a" * 20_001})
    assert too_long.status_code == 413 and "20.000" in too_long.json()["error"]


def test_serve_refuses_what_it_cannot_serve(runs_dir, tmp_path, capsys):
    from taller.apps.cli import main

    (tmp_path / "vacía").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, fragment in [
            ([str(tmp_path / "no-existe")], "no existe la carpeta"),
            ([str(tmp_path / "vacía")], "no tiene ninguna ejecución"),
            ([str(runs_dir), "--port", str(port)], "--port"),
        ]:
            with pytest.raises(SystemExit) as e:
                main(["serve", *args])
            err = capsys.readouterr().err
            assert e.value.code == 2 and err.count("\n") == 1 and fragment in err, err


# --- the page in a real browser --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(runs_dir, tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "taller", "serve", str(runs_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # it imports torch first
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            try:
                proc.wait(timeout=0.1)  # paces the loop; returns only if the server has died
                pytest.fail(f"taller serve terminó: {(tmp_path / 'serve.log').read_text()}")
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "taller serve no aceptó conexiones en un minuto"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_the_page_in_a_real_browser(server, runs_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="falta el paquete playwright")
    executable = chromium()
    if executable is None:
        pytest.skip("no hay Chromium en este equipo (make test instala el paquete chromium de Debian si es root)")
    run = load_run(runs_dir / "refranes")
    expected = run.generate("No hay ", 1, max_chars=1)[0].steps[0].top  # what `taller generate --show-probs` prints

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server + "/?run=refranes")  # (the first run listed, the default, is the LSTM)
        page.fill("#prompt", "No hay ")
        page.wait_for_function("document.querySelector('#bars').dataset.text === 'No hay '", timeout=15_000)
        bars = page.eval_on_selector_all(".bar", "els => els.map(e => [e.dataset.char, parseFloat(e.dataset.prob)])")
        rest = float(page.get_attribute(".rest", "data-prob"))
        assert len(bars) == 10 and abs(sum(p for _, p in bars) + rest - 1) < 1e-4
        assert [c for c, _ in bars[:5]] == [c for c, _ in expected]
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(bars, expected))
        assert page.locator(".head canvas").count() == run.config.model.n_layers * run.config.model.n_heads

        page.fill("#temperature", "0.5")  # the bars of the distribution drawn from appear beside the model's
        page.wait_for_selector("#bars.shaped .bar[data-sampled]", timeout=15_000)
        cold = run.generate("No hay ", 1, max_chars=1, temperature=0.5)[0].steps[0].sampled
        drawn = page.eval_on_selector_all(".bar", "els => els.map(e => parseFloat(e.dataset.sampled))")
        assert all(abs(a - b) < 1e-5 for a, b in zip(drawn, cold)) and page.is_visible("#legend")
        page.screenshot(path=str(tmp_path / "temperatura.png"))
        page.fill("#temperature", "1")
        page.wait_for_function("!document.querySelector('#bars').classList.contains('shaped')", timeout=15_000)

        page.click(".bar >> nth=1")  # the second most likely character
        grown = "No hay " + bars[1][0]
        assert page.input_value("#prompt") == grown
        page.wait_for_function(f"document.querySelector('#bars').dataset.text === {grown!r}", timeout=15_000)
        page.hover(".head canvas >> nth=0", position={"x": 60, "y": 80})
        page.fill("#surprise-text", "No hay rosa sin espinas.")  # the surprise map: coloured characters, the API's sum
        page.click("#measure")
        page.wait_for_function("document.querySelector('#surprise-total').dataset.total !== undefined", timeout=15_000)
        total = float(page.get_attribute("#surprise-total", "data-total"))
        assert total == pytest.approx(surprise(run, "No hay rosa sin espinas.").total, rel=1e-9)
        assert page.locator("#surprise-map span").count() == len("No hay rosa sin espinas.")
        page.screenshot(path=str(tmp_path / "explorador.png"), full_page=True)

        lstm = load_run(runs_dir / "lstm")  # the LSTM: its own bars, and the note instead of attention maps
        expected = lstm.generate("No hay ", 1, max_chars=1)[0].steps[0].top
        page.goto(server + "/?run=lstm")
        page.wait_for_function("document.querySelector('#run').value === 'lstm'", timeout=15_000)  # runs listed
        page.fill("#prompt", "No hay ")
        page.wait_for_function("document.querySelector('#bars').dataset.text === 'No hay '", timeout=15_000)
        page.wait_for_selector("#attention-maps .note", timeout=15_000)
        bars = page.eval_on_selector_all(".bar", "els => els.map(e => [e.dataset.char, parseFloat(e.dataset.prob)])")
        assert [c for c, _ in bars[:5]] == [c for c, _ in expected]
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(bars, expected))
        assert page.text_content("#attention-maps .note") == NO_ATTENTION and page.locator(".head canvas").count() == 0

        bert = load_run(runs_dir / "bert", can="fills")  # the fill box: a BERT fills the blank step by step
        assert page.is_visible("#fill-card") and page.is_visible("#classify-card")
        page.fill("#fill-text", "No hay ___ sin espinas.")
        page.click("#fill-go")
        page.wait_for_function("document.querySelector('#fill-out').dataset.filled !== undefined", timeout=15_000)
        assert page.get_attribute("#fill-out", "data-filled") == fill(bert, "No hay ___ sin espinas.").text
        assert page.locator("#fill-steps li").count() == 3
        page.fill("#classify-text", "No hay rosa sin espinas.")  # the classifier's answer box
        page.click("#classify-go")
        page.wait_for_selector("#classify-out .answer", timeout=15_000)
        expected = classify(load_run(runs_dir / "clasificador", can="classifies"), "No hay rosa sin espinas.")
        assert page.get_attribute("#classify-out .answer >> nth=0", "data-label") == expected[0][0]
        browser.close()
    assert (tmp_path / "explorador.png").stat().st_size > 10_000
    print(f"\ncaptura: {tmp_path / 'explorador.png'}")
