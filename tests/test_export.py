"""`taller export`: the HTML page runs the same model in a real browser (from file://, offline), the ONNX file gives
the same logits in onnxruntime, and what cannot be exported is refused in one line."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CHROMIUM_ARGS, chromium, one_line_error, run_cli

from taller.apps.export import export_run, tokenizer_path
from taller.apps.export.html_page import check_tokenizer, render_page
from taller.apps.export.onnx_model import onnx_bytes
from taller.config import Config
from taller.data.tokenizers import CharTokenizer, WordTokenizer, load_tokenizer
from taller.errors import TallerError
from taller.models import build_model
from taller.models.transformer import TransformerConfig
from taller.runs.folder import Run
from taller.sampling import filter_logits, next_token_probs

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"
TEXT = "No hay mal que por bien no venga.\nMás vale pájaro en mano, ¿verdad? Año: niño.\n"
PROMPTS = [
    "No hay ",
    "",
    "Más vale pájaro en mano que ciento",
    "¿Año?",
    "€uro",
]  # € is unknown: replaced as taller does
# The [model] switches of the Transformer that static/model.js follows (one branch each). A new switch in
# transformer.py needs its branch there, and its name here once the page's test covers it.
PAGE_SWITCHES = {
    "kind",
    "vocab_size",
    "block_size",
    "d_model",
    "n_heads",
    "n_layers",
    "d_ff",
    "dropout",
    "pos_encoding",
    "tie_weights",
    "attention",
    "bias",
    "norm",
    "activation",
    "qk_norm",
    "zero_init",
    "bigram_buckets",
    "value_embeddings",
    "logit_cap",
}
# Every switch of the modern recipe on at once, tiny (memory_run stirs zero_init's zeros).
MODERN = dict(
    pos_encoding="rotary",
    norm="rmsnorm",
    qk_norm=True,
    activation="relu2",
    zero_init=True,
    bias=False,
    bigram_buckets=37,
    value_embeddings=True,
    logit_cap=4.0,
    block_size=12,
    d_model=24,
    n_heads=2,
    n_layers=2,
    d_ff=40,
)
TINY = dict(block_size=12, d_model=24, n_heads=2, n_layers=2, d_ff=40)  # sizes for a preset's switches


def memory_run(tmp_path: Path, name: str, **model) -> Run:
    """A run that lives only in memory: a fresh model of the given [model] section (over a preset's, if `preset` is
    given) with livelier weights than its initialisation (so that the probabilities differ from character to
    character, and no zero-initialised layer stays silent), on TEXT's characters."""
    tokenizer = CharTokenizer.from_text(TEXT)
    config = Config.preset(model.pop("preset")) if "preset" in model else Config()
    config.set_kind(model.pop("kind", config.model.kind or "transformer"))
    for key, value in model.items():
        config.set(key, value)
    config.model.vocab_size = tokenizer.vocab_size
    config.validate()
    torch.manual_seed(0)
    net = build_model(config.model).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0) if p.any() else p.normal_(std=0.05)  # (zero_init's projections: stirred, not silent)
    if hasattr(net, "fit"):  # a count model: counted from the text
        net.fit(tokenizer.encode_array(TEXT))
    return Run(tmp_path / name, config, tokenizer, net, {"corpus": "prueba"})


def write_page(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / f"{run.dir.name}.html"
    path.write_text(render_page(run, run.config.model.kind), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pages(trained_run, trained_lstm_run, tmp_path_factory):
    """Exported pages, by name: the shared tiny Transformer and LSTM through `taller export`, and models of the other
    kinds and switches straight from memory."""
    root = tmp_path_factory.mktemp("pages")
    runs = {"transformer": trained_run, "lstm": trained_lstm_run}
    for name, run in runs.items():
        export_run(run.dir, "html", root / f"{name}.html")
    variants = {
        "aprendidas": dict(
            pos_encoding="learned",
            tie_weights=True,
            block_size=12,
            d_model=24,
            n_heads=3,
            n_layers=2,
            d_ff=40,
            attention="explicit",
            activation="relu",
            bias=False,
        ),
        "moderna": MODERN,
        "base": dict(preset="base", **TINY),
        "rnn": dict(kind="rnn", d_model=20, n_layers=2, d_embed=12),
        "bigrama": dict(kind="bigram", smoothing=0.5),
    }
    for name, model in variants.items():
        runs[name] = memory_run(root, name, **model)
        write_page(runs[name], root)
    return root, runs


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="falta el paquete playwright")
    executable = chromium()
    if executable is None:
        pytest.skip("no hay Chromium en este equipo (make test instala el paquete chromium de Debian si es root)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})  # the network is off
        yield context
        browser.close()


def open_page(context, path: Path):
    page = context.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("window.taller !== undefined", timeout=15_000)
    return page, requests, errors


def test_the_page_gives_pytorchs_probabilities_for_every_kind(pages, browser):
    root, runs = pages
    for name, run in runs.items():
        page, requests, errors = open_page(browser, root / f"{name}.html")
        for prompt in PROMPTS:
            expected = next_token_probs(run.model, run.tokenizer, prompt, unknown="replace")
            got = torch.tensor(page.evaluate("text => taller.predict(text)", prompt))
            assert got.shape == expected.shape and (got - expected).abs().max() < 1e-3, (name, prompt)
        assert errors == [] and all(url.startswith("file://") for url in requests), (errors, requests)
        page.close()


def test_the_page_in_use(pages, browser, tmp_path):
    root, runs = pages
    run = runs["transformer"]
    page, requests, errors = open_page(browser, root / "transformer.html")
    assert page.input_value("#prompt") == run.config.train.prompt == "No hay "
    page.fill("#prompt", "Más vale ")
    page.wait_for_function("document.querySelector('#bars').dataset.text === 'Más vale '")
    bars = page.eval_on_selector_all(".bar", "els => els.map(e => [e.dataset.char, parseFloat(e.dataset.prob)])")
    expected = next_token_probs(run.model, run.tokenizer, "Más vale ")
    assert len(bars) == 10 and [c for c, _ in bars] == [run.tokenizer.chars[i] for i in expected.topk(10).indices]
    assert all(abs(p - float(expected[run.tokenizer.index[c]])) < 1e-3 for c, p in bars)

    cfg = run.config.model  # every layer's and head's attention, as PyTorch's
    assert page.locator(".head canvas").count() == cfg.n_layers * cfg.n_heads
    maps = page.evaluate("text => taller.model.attentionMaps(taller.encode(text).ids)", "Más vale ")
    ids = torch.tensor([run.tokenizer.encode("Más vale ")])
    for got, want in zip(maps, run.model.attention_maps(ids)):
        assert (torch.tensor(got) - want[0]).abs().max() < 1e-3

    page.click(".bar >> nth=1")  # a click appends that character
    assert page.input_value("#prompt") == "Más vale " + bars[1][0]

    page.fill("#top-k", "5")  # temperature, top-k and top-p reshape the bars as taller's sampling does
    for slider, value in (("#top-p", "0.6"), ("#temperature", "0.7")):
        page.eval_on_selector(slider, f"e => {{ e.value = '{value}'; e.dispatchEvent(new Event('input')); }}")
    text = page.input_value("#prompt")
    shaped = F.softmax(
        filter_logits(torch.log(next_token_probs(run.model, run.tokenizer, text))[None], 0.7, 5, 0.6), -1
    )[0]
    bars = page.eval_on_selector_all(".bar", "els => els.map(e => [e.dataset.char, parseFloat(e.dataset.prob)])")
    assert all(abs(p - float(shaped[run.tokenizer.index[c]])) < 1e-3 for c, p in bars)
    assert sum(p > 0 for _, p in bars) == int((shaped > 0).sum()) <= 5

    page.click("#line")  # sampling a line writes until its end (or 200 characters)
    page.wait_for_function(
        f"document.querySelector('#bars').dataset.text !== {text!r} && !document.querySelector('#line').disabled"
    )
    grown = page.input_value("#prompt")
    assert grown.startswith(text) and (grown.endswith("\n") or len(grown) == len(text) + 200)
    page.screenshot(path=str(tmp_path / "pagina.png"), full_page=True)
    assert errors == [] and all(url.startswith("file://") for url in requests)


def test_the_page_holds_the_text_as_itself_and_nothing_that_closes_its_script(pages):
    root, runs = pages
    page = (root / "bigrama.html").read_text(encoding="utf-8")
    assert "¿" in page and "ñ" in page and "á" in page  # UTF-8, not escapes
    assert page.count("</script>") == 3 and '<script id="taller-data"' in page
    data = json.loads(re.search(r'<script id="taller-data" type="application/json">(.*)</script>', page).group(1))
    assert data["chars"] == runs["bigrama"].tokenizer.chars and data["tensors"]["counts"]["dtype"] == "int32"
    page = (root / "aprendidas.html").read_text(encoding="utf-8")  # tied weights: stored once
    data = json.loads(re.search(r'<script id="taller-data" type="application/json">(.*)</script>', page).group(1))
    assert data["tensors"]["output.weight"] == {"alias": "embedding.weight"}


def test_the_page_knows_every_switch_of_the_transformer():
    assert {f.name for f in dataclasses.fields(TransformerConfig)} == PAGE_SWITCHES


def test_the_base_page_is_at_most_3_mb(tmp_path):
    config = Config.preset("base")
    config.model.vocab_size = 100  # more characters than the Quijote's
    run = Run(tmp_path / "base", config, CharTokenizer([chr(32 + i) for i in range(100)]), build_model(config.model))
    assert write_page(run, tmp_path).stat().st_size <= 3 * 1024 * 1024


def test_onnx_gives_pytorchs_logits(trained_run, trained_lstm_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="falta onnxruntime (pip install 'taller[export]')")
    generator = torch.Generator().manual_seed(0)
    for run in (trained_run, trained_lstm_run):
        out = tmp_path / f"{run.config.model.kind}.onnx"
        code, said, err = run_cli(["export", str(run.dir), "-o", str(out)], capsys)
        assert code == 0 and "opset 18" in said, err
        assert load_tokenizer(tokenizer_path(out)).chars == run.tokenizer.chars
        session = ort.InferenceSession(str(out))
        for length in (1, 5, 16):
            ids = torch.randint(0, run.tokenizer.vocab_size, (1, length), generator=generator)
            with torch.no_grad():
                expected = run.model(ids).numpy()
            got = session.run(None, {"ids": ids.numpy()})[0]
            assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize(
    "model",
    [
        dict(kind="rnn", recurrence="explicit", n_layers=2, d_model=16),
        dict(
            kind="transformer",
            attention="explicit",
            pos_encoding="learned",
            block_size=12,
            d_model=16,
            n_heads=2,
            n_layers=1,
            d_ff=32,
        ),
        dict(kind="transformer", **MODERN),
        dict(kind="bigram"),
    ],
)
def test_onnx_of_the_other_paths_and_kinds(tmp_path, model):
    ort = pytest.importorskip("onnxruntime", reason="falta onnxruntime (pip install 'taller[export]')")
    run = memory_run(tmp_path, "m", **model)
    session = ort.InferenceSession(onnx_bytes(run.model))
    for length in (1, 3, 11):  # not the traced example's length (8)
        ids = torch.randint(0, run.tokenizer.vocab_size, (1, length))
        with torch.no_grad():
            expected = run.model(ids).numpy()
        assert np.abs(session.run(None, {"ids": ids.numpy()})[0] - expected).max() < 1e-4


@pytest.mark.parametrize("kind, fmt", [("ngram", "html"), ("ngram", "onnx"), ("skipgram", "html")])
def test_a_kind_that_cannot_be_exported_is_refused_in_one_line(capsys, tmp_path, kind, fmt):
    out = tmp_path / f"modelo.{fmt}"
    line = one_line_error(*run_cli(["export", str(FIXTURE / kind), "--format", fmt, "-o", str(out)], capsys)[::2])
    assert "no se puede exportar" in line and "Transformer, LSTM, RNN y bigrama" in line
    assert not out.exists()


def test_a_word_run_is_refused_by_the_page(tmp_path):
    run = memory_run(tmp_path, "palabras")
    run.tokenizer = WordTokenizer.train(TEXT, 40)
    with pytest.raises(TallerError, match="tokenizador word.*--format onnx"):
        check_tokenizer(run)


def test_an_existing_file_is_replaced_only_with_force(trained_run, capsys, tmp_path):
    out = tmp_path / "modelo.html"
    out.write_text("de otra persona", encoding="utf-8")
    line = one_line_error(*run_cli(["export", str(trained_run.dir), "-o", str(out)], capsys)[::2])
    assert "ya existe" in line and "--force" in line and out.read_text(encoding="utf-8") == "de otra persona"
    assert run_cli(["export", str(trained_run.dir), "-o", str(out), "--force"], capsys)[0] == 0
    assert "taller-data" in out.read_text(encoding="utf-8")

    tokenizer = tmp_path / "modelo.tokenizer.json"  # ONNX: the tokenizer beside it is an output too
    tokenizer.write_text("{}", encoding="utf-8")
    line = one_line_error(*run_cli(["export", str(trained_run.dir), "-o", str(tmp_path / "modelo.onnx")], capsys)[::2])
    assert "modelo.tokenizer.json" in line and not (tmp_path / "modelo.onnx").exists()

    weights = trained_run.dir / "model.safetensors"  # a run's own file: never, not even with --force
    line = one_line_error(*run_cli(["export", str(trained_run.dir), "-o", str(weights), "--force"], capsys)[::2])
    assert "no se sobrescribe nunca" in line


def test_export_run_returns_what_it_wrote(trained_run, tmp_path):
    said = export_run(trained_run.dir, "html", tmp_path / "p.html")
    assert said.startswith(f"Página en {tmp_path / 'p.html'}") and "sin red" in said
