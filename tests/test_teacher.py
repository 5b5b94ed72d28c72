"""A teacher's first hour (issue 29): a run that did not learn says so, the health panel knows zero-init, the demo's
closing suggestion works from a new shell, and a failed command leaves no folder behind."""

import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from conftest import PROVERBS, one_line_error, run_cli, tiny_config
from test_web import CHROMIUM_ARGS, chromium

import taller
from taller.apps.cli import main
from taller.apps.cli.training import this_taller
from taller.apps.web.runs import find_runs
from taller.runs.folder import load_run
from taller.text import number
from taller.training.verdict import MIN_STEPS, verdict

TINY = [
    "--set",
    "block_size=16",
    "--set",
    "d_model=32",
    "--set",
    "n_heads=2",
    "--set",
    "n_layers=2",
    "--set",
    "d_ff=64",
    "--set",
    "batch_size=8",
    "--set",
    "eval_chars=200",
    "--set",
    "samples=2",
]


def markov_text(chars: int = 20_000) -> str:
    """Each letter followed by one of three others (5:3:2): all a network needs is the last letter, while an
    8-gram's long contexts are mostly unseen in a text this short and its back-off flattens the odds."""
    rng = random.Random(0)
    letters = "abcdefghijklmnop"
    successors = {c: rng.sample(letters, 3) for c in letters}
    c, out = "a", []
    for i in range(chars):
        c = rng.choices(successors[c], weights=[5, 3, 2])[0]
        out.append(c + ("\n" if i % 40 == 39 else ""))
    return "".join(out)


@pytest.fixture(scope="module")
def ten_steps(tmp_path_factory):
    """A `taller train` of 10 steps: (its folder, what it printed)."""
    root = tmp_path_factory.mktemp("diez")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as e:
        main(["train", "--corpus", str(corpus), "--steps", "10", "--out", str(root / "r"), "--quiet", *TINY])
        sys.exit(0)
    assert e.value.code == 0
    return root / "r", out.getvalue()


def test_ten_steps_end_with_the_too_few_steps_verdict(ten_steps):
    run, out = ten_steps
    lines = [line for line in out.splitlines() if line.startswith("Veredicto:")]
    assert len(lines) == 1 and lines[0].startswith("Veredicto: pocos pasos (10,")
    assert "--max-time" in lines[0] and "--model ngram" in lines[0] and "cierra otros programas" in lines[0]
    state = json.loads((run / "state.json").read_text())
    assert state["learnt"] is False and state["verdict"] == lines[0] and state["baseline_bpc"] > 0
    report = (run / "report.html").read_text(encoding="utf-8")
    assert report.index("Veredicto: pocos pasos") < report.index("Muestras")
    per_epoch = state["steps_per_epoch"]
    assert f"10 pasos ({number(10 / per_epoch, 2)} épocas)" in report  # a fraction of an epoch, counted
    assert (run / "step_000010.png").is_file()  # the weights where it ended: the report's slider has two pictures


def test_the_last_line_says_how_long_each_part_of_the_end_took(ten_steps):
    """The time after the budget is accounted for, part by part; the costly memory curve waits for `taller report`."""
    run, out = ten_steps
    last = out.splitlines()[-2]  # (the very last line says where the results are)
    parts = dict(re.findall(r"(evaluación|8-grama|pesos y curvas|muestras|informe) (\d+,\d) s", last))
    assert last.startswith("Después del entrenamiento: ") and set(parts) == {
        "evaluación",
        "8-grama",
        "pesos y curvas",
        "muestras",
        "informe",
    }, last
    total = float(re.search(r"total (\d+,\d) s", last)[1].replace(",", "."))
    assert abs(total - sum(float(v.replace(",", ".")) for v in parts.values())) <= 0.3
    assert not (run / "memory.png").exists()
    assert f"`taller report {run}` la dibuja" in (run / "report.html").read_text(encoding="utf-8")


def test_the_report_opens_with_the_story_in_a_browser(ten_steps):
    """The story first (samples, the loss curve, the next characters), then inside the network; the configuration
    folded at the end: no English key of it is visible before the fold."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="falta el paquete playwright")
    executable = chromium()
    if executable is None:
        pytest.skip("no hay Chromium en este equipo (make test instala el paquete chromium de Debian si es root)")
    run, _ = ten_steps
    keys = [k for section in load_run(run).config.to_dict().values() for k in section if "_" in k]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto((run / "report.html").as_uri())
        titles = [t.strip() for t in page.locator("h2:visible").all_inner_texts()]
        visible = page.inner_text("body")
        page.click("summary >> text=La configuración completa")
        unfolded = page.inner_text("body")
        browser.close()
    order = [
        "Muestras",
        "Curvas de pérdida",
        "Probabilidades de una generación",
        "Atención",
        "Embeddings de los caracteres",
        "¿Hasta dónde mira atrás?",
        "Mapa de sorpresa",
        "Salud de la red mientras aprende",
        "Los pesos a lo largo del entrenamiento",
    ]
    found = [next(i for i, t in enumerate(titles) if t.startswith(title)) for title in order]
    assert found == sorted(found), titles
    assert visible.index("Veredicto: pocos pasos") < visible.index("Muestras")
    assert keys and not [k for k in keys if k in visible]  # vocab_size, muon_lr_ratio…: only after the fold
    assert "vocab_size" in unfolded and "tamaño del vocabulario" in unfolded


def test_a_network_that_learnt_gets_no_warning(tmp_path):
    corpus = tmp_path / "cadena.txt"
    corpus.write_text(markov_text(), encoding="utf-8")
    run = taller.train(tiny_config(corpus, max_steps=MIN_STEPS, samples=0, prompt="a"), tmp_path / "r", progress=False)
    state = run.state
    assert state["val_bpc"] < state["baseline_bpc"]  # the network beats counting: it learnt
    assert state["learnt"] is True and state["verdict"].startswith("Veredicto: ha aprendido")


def test_the_verdict_names_the_case_and_the_fix():
    learnt, line = verdict(2.9, 2.2, 5000, 3.0)  # many steps, still worse than counting
    assert not learnt and "no supera al 8-grama (2,20)" in line and "--model mix" in line
    learnt, line = verdict(2.9, None, 20, 0.01)  # a prepared corpus: no baseline, the steps alone
    assert not learnt and line.startswith("Veredicto: pocos pasos (20, 0,01 épocas)")
    assert verdict(1.9, 2.2, 50, 0.5)[0]  # few steps, but better than the 8-gram already


def test_one_step_with_zero_init_warns_of_nothing(tmp_path):
    corpus = tmp_path / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    said = []
    taller.train(
        tiny_config(corpus, max_steps=1, zero_init=True, samples=0, health_every=100),
        tmp_path / "r",
        progress=False,
        log=said.append,
    )
    entry = json.loads((tmp_path / "r" / "health.jsonl").read_text().splitlines()[0])
    zero = [name for name, g in entry["gradients"].items() if g == 0]
    assert any("query" in name for name in zero)  # zero by design: the output projections start at zero
    (health,) = [line for line in said if line.startswith("Salud de la red")]
    assert "sin avisos" in health and "cero" not in health


def test_the_demos_closing_suggestion_runs_from_a_new_shell(monkeypatch):
    """`taller` is not on a new shell's PATH after `make demo`: the demo names the taller that is running."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a new shell: no virtual environment activated
    command = this_taller()
    assert command != "taller"
    done = subprocess.run(
        f"{command} --help",
        shell=True,
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")},
    )
    assert done.returncode == 0 and "generate" in done.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "--corpus", "{missing}", "--models", "ngram", "--max-time", "1"],
        ["compare", "--corpus", "{empty}", "--models", "ngram", "--max-time", "1"],
        ["train", "--corpus", "{missing}", "--steps", "1"],
        ["train", "--corpus", "{empty}", "--model", "ngram"],
        ["train", "--corpus", "{short}", "--steps", "1"],
    ],
)
def test_a_refused_command_leaves_no_folder(tmp_path, capsys, command):
    (tmp_path / "vacio.txt").write_text("", encoding="utf-8")
    (tmp_path / "corto.txt").write_text("ab\n", encoding="utf-8")
    paths = {"missing": tmp_path / "no-existe.txt", "empty": tmp_path / "vacio.txt", "short": tmp_path / "corto.txt"}
    out = tmp_path / "salida"
    code, _, err = run_cli([a.format(**paths) for a in command] + ["--out", str(out)], capsys)
    one_line_error(code, err)
    assert not out.exists()


def test_serve_finds_runs_in_subfolders_down_to_a_depth(trained_run, tmp_path):
    for where in ("uno", "compare-dichos/ngram", "a/b/c/demasiado-hondo"):
        shutil.copytree(trained_run.dir, tmp_path / where)
    assert sorted(find_runs(tmp_path)) == ["compare-dichos/ngram", "uno"]
