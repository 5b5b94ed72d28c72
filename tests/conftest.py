import dataclasses
import hashlib
import json
import os
import shutil
import stat
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import taller
import taller.apps.compare  # noqa: F401  (loaded here, with the training loop and the fits, for use_fake_clock)
import taller.training.loop  # noqa: F401
from taller.apps.cli import main
from taller.config import Config
from taller.data.tokenizers import CharTokenizer
from taller.models.transformer import Transformer, TransformerConfig
from taller.runs.folder import load_run
from taller.runs.metrics import read_metrics

# Threads per test process: the machine's cores shared among pytest-xdist's workers (`make test` runs one per core),
# at most 2, so that runs compared step for step compute alike on any machine.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
torch.set_num_threads(THREADS)

PROVERBS = [
    "No hay mal que por bien no venga.",
    "No hay peor sordo que el que no quiere oír.",
    "No hay rosa sin espinas.",
    "Más vale tarde que nunca.",
    "Más vale pájaro en mano que ciento volando.",
    "A quien madruga, Dios le ayuda.",
    "Perro ladrador, poco mordedor.",
    "En casa de herrero, cuchillo de palo.",
    "Dime con quién andas y te diré quién eres.",
    "El que no llora no mama.",
    "Camarón que se duerme se lo lleva la corriente.",
    "Ojos que no ven, corazón que no siente.",
]


@pytest.fixture(autouse=True)
def no_downloads(tmp_path_factory, monkeypatch):
    """Tests never touch the network or the user's cache (a test that plays a download lifts TALLER_OFFLINE itself)."""
    monkeypatch.setenv("TALLER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("TALLER_OFFLINE", "1")


# --- what several test files share -----------------------------------------------------------------------------------

TINY_SETTINGS = dict(
    block_size=16,
    d_model=16,
    n_heads=2,
    n_layers=1,
    d_ff=32,
    batch_size=8,
    eval_chars=64,
    samples=1,
    plot_every=0,
    report="false",
    health_every=0,
)  # the smallest Transformer the command line trains in a second; without report.html nor health checkups (a test
#    that looks at them asks for them: report="true", health_every=N)


def tiny_flags(**overrides) -> list[str]:
    """`--set key=value` for each of TINY_SETTINGS, some replaced or added by `overrides`."""
    settings = {**TINY_SETTINGS, **overrides}
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def snapshot(folder: Path, deep: bool = False, hidden: bool = True) -> dict:
    """Every entry of `folder` (with `deep`, of its subfolders too) as something comparable, without ever reading a
    device or a FIFO: a link's target, a regular file's SHA-256, another thing's kind. `hidden=False` leaves out the
    names that start with a dot (a lock, say)."""
    seen = {}
    for p in sorted(folder.rglob("*") if deep else folder.iterdir()):
        name = str(p.relative_to(folder))
        if not hidden and any(part.startswith(".") for part in Path(name).parts):
            continue
        if p.is_symlink():
            seen[name] = "->" + os.readlink(p)
        elif p.is_file():
            seen[name] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            seen[name] = stat.filemode(p.lstat().st_mode)
    return seen


def train_losses(run_dir) -> list[tuple[int, float]]:
    """(step, training loss) of every logged step of a run."""
    return [(m["step"], m["train_loss"]) for m in read_metrics(run_dir) if "train_loss" in m]


def copy_run(run_dir: Path, where: Path) -> Path:
    """A copy of a shared run that a test may change (the shared one stays as every other test expects it)."""
    shutil.copytree(run_dir, where, symlinks=True)
    return where


class FakeClock:
    """perf_counter for the training loop: every reading is `tick` seconds after the last, whatever the machine."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def use_fake_clock(monkeypatch, tick: float) -> FakeClock:
    """Give taller's modules a fake perf_counter (the rest of the process keeps the real clock). The modules that
    read it are loaded at the top of this file, so the result does not depend on which tests ran before."""
    clock = FakeClock(tick)
    fake = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    fake.perf_counter = clock  # a copy of the time module whose perf_counter is the fake one
    patched = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != "taller" or module is None:
            continue
        if getattr(module, "perf_counter", None) is time.perf_counter:  # `from time import perf_counter`
            monkeypatch.setattr(module, "perf_counter", clock)
            patched.append(name)
        if getattr(module, "time", None) is time:  # `import time`
            monkeypatch.setattr(module, "time", fake)
            patched.append(name)
    assert any(name.startswith("taller.training") for name in patched), (
        "no taller training module reads time.perf_counter any more: update this test"
    )
    return clock


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch):
    """Runs compared step for step compute with the same threads: not fitted to the machine's load, which changes
    from one test to the next (tests/test_threads.py checks the fitting itself)."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(THREADS))


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "dichos.txt"
    path.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    return path


def tiny_config(corpus: Path | str, **overrides) -> Config:
    cfg = Config()
    cfg.data.corpus = str(corpus)
    settings = dict(
        block_size=16,
        d_model=32,
        n_heads=2,
        n_layers=2,
        d_ff=64,
        dropout=0.0,
        batch_size=8,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=5,
        max_steps=30,
        epochs=1000,
        eval_chars=200,
        log_every=5,
        plot_every=0,
        samples=2,
        prompt="No hay ",
        report=False,
        health_every=0,
    )
    # (no report.html nor health checkups, each a few matplotlib seconds: the tests that look at them ask for them)
    settings.update(overrides)
    for key, value in settings.items():
        cfg.set(key, value)
    return cfg


def read_only(run):
    """Yield a shared run; when the session ends, check that no test wrote into it (a test that must change a run
    changes its own copy: copy_run)."""
    before = snapshot(run.dir, deep=True)
    yield run
    assert snapshot(run.dir, deep=True) == before, f"un test cambió la ejecución compartida {run.dir}: usa copy_run"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One small run shared by the tests that only read a run folder."""
    root = tmp_path_factory.mktemp("run")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    yield from read_only(
        taller.train(tiny_config(corpus, max_steps=150, report=True, health_every=100), root / "run", progress=False)
    )


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory):
    """A tiny BERT (40 steps on the proverbs), shared by the tests of fill, probe, report, serve and compare (the
    test of `taller explain` draws its attention.png into it)."""
    root = tmp_path_factory.mktemp("bert")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    cfg = tiny_config(corpus, max_steps=40, samples=0)
    cfg.set_kind("bert")
    return taller.train(cfg, root / "run", progress=False)


@pytest.fixture(scope="session")
def counted_run(tmp_path_factory):
    """The counting classifier (one n-gram per label, fitted in a blink) on proverbs against lines of a book."""
    root = tmp_path_factory.mktemp("counted")
    tsv = root / "etiquetado.tsv"
    book = ["En un lugar de la Mancha vivía un hidalgo.", "Sancho pidió agua porque tenía sed."]
    tsv.write_text("".join(f"refrán\t{p}\nCervantes\t{book[i % 2]}\n" for i, p in enumerate(PROVERBS * 4)), "utf-8")
    cfg = Config.preset("ngram")
    cfg.set_kind("ngram-clasificador")
    cfg.data.corpus = str(tsv)
    cfg.set("order", 3)
    return taller.train(cfg, root / "run", progress=False)


@pytest.fixture(scope="session")
def trained_lstm_run(tmp_path_factory):
    """A real tiny LSTM (no attention, a character embedding), trained through the command line for 20 short epochs
    (160 steps, under a second): about 2.4 bits per character, so its predictions depend on what it reads."""
    root = tmp_path_factory.mktemp("lstm")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    out = root / "run"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                "--corpus",
                str(corpus),
                "--preset",
                "lstm",
                "--model",
                "lstm",
                "--epochs",
                "20",
                "--seed",
                "5",
                "--out",
                str(out),
                "--quiet",
                "--set",
                "block_size=16",
                "--set",
                "d_embed=16",
                "--set",
                "d_model=32",
                "--set",
                "n_layers=1",
                "--set",
                "batch_size=8",
                "--set",
                "warmup_steps=5",
                "--set",
                "eval_chars=200",
                "--set",
                "samples=2",
                "--set",
                "prompt=No hay ",
                "--set",
                "lr=1e-2",
                "--set",
                "plot_every=0",
                "--set",
                "ema=0",
            ]
        )  # its own last weights, not their average: sharper, so what it reads shows
        sys.exit(0)
    assert e.value.code == 0
    yield from read_only(load_run(out))


@pytest.fixture(scope="session")
def mix_run(trained_run):
    """A mix of the shared tiny Transformer and a 4-gram of the same text (fitted in a second)."""
    root = trained_run.dir.parent
    ngram = Config.preset("ngram")
    ngram.data, ngram.model.order, ngram.train.samples = dataclasses.replace(trained_run.config.data), 4, 0
    taller.train(ngram, root / "ngram", progress=False, log=lambda *a: None)
    mix = Config.preset("mix")
    mix.model.runs, mix.train.samples, mix.model.fit_steps = f"{trained_run.dir},{root / 'ngram'}", 0, 100
    taller.train(mix, root / "mix", progress=False, log=lambda *a: None)
    yield from read_only(load_run(root / "mix"))


def poison_weights(run: Path, value: float) -> None:
    """`value` (NaN, an infinity, a huge number) in the first element of the run's first floating tensor, and
    state.json made to vouch for the new file (its SHA-256): what loading must refuse is the value itself."""
    path = run / "model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k, t in sorted(tensors.items()) if t.is_floating_point())
    tensors[name].view(-1)[0] = value
    path.unlink()
    save_file(tensors, str(path))
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    state["files"]["model.safetensors"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (run / "state.json").write_text(json.dumps(state), encoding="utf-8")


def run_cli(args, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `taller ARGS`, run in this process."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
        sys.exit(0)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def one_line_error(code, err) -> str:
    """A user's mistake: exit code 2 and one Spanish line starting "error: ", never a traceback. Returns the line."""
    assert code == 2, err
    lines = [line for line in err.strip().split("\n") if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def shared_corpus(name: str) -> Path | None:
    data = os.environ.get("TALLER_DATA")
    path = Path(data) / f"{name}.txt" if data else None
    return path if path and path.exists() else None


MINI_REFRANES = Path(__file__).resolve().parent / "fixtures" / "refranes_mini.txt"  # 123 lines written for the tests


@dataclasses.dataclass(frozen=True)
class Corpora:
    folder: Path  # what TALLER_DATA should name
    real: bool  # True: the shared corpora (CI); False: the tests' own small file in the refranes' place


@pytest.fixture(scope="session")
def corpora(tmp_path_factory) -> Corpora:
    """The refranes for the tests that run the whole story: the real ones where TALLER_DATA has them, else the small
    file the tests ship (so that a fresh clone without ../shared runs those tests too, only smaller)."""
    real = shared_corpus("refranes")
    if real:
        return Corpora(real.parent, True)
    folder = tmp_path_factory.mktemp("corpora")
    shutil.copy(MINI_REFRANES, folder / "refranes.txt")
    return Corpora(folder, False)


MINI_HIDALGO = Path(__file__).resolve().parent / "fixtures" / "hidalgo_mini.txt"  # 3.7 kB of Quijote-like prose
HIDALGO_COPIES = 33  # the small book told again and again: 120 kB, as the lesson's 100.000 + 10.000 characters need


@pytest.fixture(scope="session")
def quijote_corpora(tmp_path_factory) -> Corpora:
    """The Quijote for the lesson's tests: the real one where TALLER_DATA has it, else a quijote.txt made of the small
    book the tests ship (written for them, with the `cervantes` preset's start marker), told over and over."""
    real = shared_corpus("quijote")
    if real:
        return Corpora(real.parent, True)
    folder = tmp_path_factory.mktemp("quijote")
    (folder / "quijote.txt").write_text(MINI_HIDALGO.read_text(encoding="utf-8") * HIDALGO_COPIES, encoding="utf-8")
    return Corpora(folder, False)


# --- the browser (Debian's chromium through Playwright) and a small random model ---------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    return shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if os.path.exists(p)), None)


TOK = CharTokenizer(list("abcdefghijklmnopqr \n"))


def random_model() -> Transformer:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=20, block_size=32, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0)
    )
    with torch.no_grad():
        for p in m.parameters():  # large random weights: peaked, context-dependent predictions
            p.normal_(0, 0.3)
    return m.eval()
