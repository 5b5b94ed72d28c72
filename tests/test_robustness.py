"""Nothing lost, nothing executed: crashes at any instant, signals, hostile files, full disks, fuzzed input."""

import errno
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
from pathlib import Path

import crash_child
import pytest
from conftest import copy_run, run_cli, snapshot, train_losses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taller.apps.cli import main
from taller.config import Config
from taller.errors import TallerError
from taller.runs.checkpoint import load_tensors, read_state
from taller.runs.folder import load_run
from taller.runs.metrics import read_metrics

# A tiny model with short epochs (2 steps of 32 windows): a checkpoint is committed every 2 steps, so each child
# reaches the instants worth killing at quickly. Dropout makes an exact resume depend on the saved random state too.
SETTINGS = dict(
    dropout=0.1,
    log_every=1,
    epochs=1000,
    eval_chars=32,
    samples=0,
    d_model=16,
    n_heads=2,
    n_layers=1,
    d_ff=32,
    batch_size=32,
    plot_every=0,
)


@pytest.fixture
def ram_dir(tmp_path):
    """A folder in /dev/shm (RAM) where there is one, else tmp_path. A SIGKILL test is about the process dying, not
    the disk (the page cache survives a killed process), and there each checkpoint's fsync costs nothing instead of
    up to seconds on a busy disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="taller-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def forks():
    """Processes forked from a server that imported taller but never ran a tensor operation (fork-safe)."""
    ctx = multiprocessing.get_context("forkserver")
    # (torch._dynamo too: the optimizer imports it lazily, over a second in every child otherwise)
    ctx.set_forkserver_preload(["crash_child", "taller.apps.cli", "taller.inspect", "torch._dynamo"])
    return ctx


def start(forks, *args, **kwargs):
    p = forks.Process(target=crash_child.train, args=args, kwargs=kwargs)
    p.start()
    return p


def wait_for(path: Path, process, limit: float = 60.0) -> None:
    """Until `path` exists (the first checkpoint is committed) or the process ends."""
    waited = 0.0
    while not path.exists() and process.is_alive() and waited < limit:
        process.join(0.02)
        waited += 0.02
    assert path.exists(), f"{path} never appeared"


def test_sigkill_at_27_instants_never_loses_the_last_checkpoint_and_resume_is_exact(forks, ram_dir, corpus_file):
    out = ram_dir / "run"
    reference = ram_dir / "reference"
    # 7 kills at exact points of the two-phase commit, then 20 at random instants of a training process that has
    # committed a checkpoint of its own (some of them die in the middle of writing the next one).
    protocol = [
        ("model.next.safetensors", "before"),
        ("model.next.safetensors", "after"),
        ("optim.next.safetensors", "before"),
        ("state.json", "before"),
        ("state.json", "after"),
        ("model.safetensors", "after"),
        ("optim.safetensors", "after"),
    ]
    rng = random.Random(20261122)
    kills, committed = 0, 0
    for i in range(27):
        resume = (out / "state.json").exists()
        if protocol and i < len(protocol):
            name, when = protocol[i]
            p = start(forks, str(corpus_file), str(out), SETTINGS, resume, 5000, kill=(name, when, 2))
            p.join(120)
            assert p.exitcode == -signal.SIGKILL, (name, when, p.exitcode)
        else:  # once this process has committed a checkpoint of its own (it is training), at a random instant
            before = (out / "state.json").stat().st_mtime_ns if resume else None
            p = start(forks, str(corpus_file), str(out), SETTINGS, resume, 5000)
            wait_for(out / "state.json", p)
            waited = 0.0
            while (out / "state.json").stat().st_mtime_ns == before and p.is_alive() and waited < 60:
                p.join(0.002)
                waited += 0.002
            p.join(rng.uniform(0.0, 0.08))
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)
            assert p.exitcode == -signal.SIGKILL
        kills += 1
        run = load_run(out)  # the last complete checkpoint loads...
        assert run.state["step"] >= committed  # ...and is never older than one we saw before
        committed = run.state["step"]
    assert kills == 27 and committed >= 27  # every child committed at least one checkpoint of its own

    # The last kill is resumed too; every step's loss equals that of one uninterrupted run. (The learning-rate
    # schedule spans epochs=1000, not max_steps: the reference may stop exactly where the resumed run does.)
    p = start(forks, str(corpus_file), str(out), SETTINGS, True, committed + 10)
    p.join(120)
    assert p.exitcode == 0
    p = start(forks, str(corpus_file), str(reference), SETTINGS, False, committed + 10)
    p.join(120)
    assert p.exitcode == 0
    got = [(m["step"], m["train_loss"]) for m in read_metrics(out) if "train_loss" in m]  # each step once, in order
    expected = [(m["step"], m["train_loss"]) for m in read_metrics(reference) if "train_loss" in m]
    assert [step for step, _ in got] == list(range(1, committed + 11)) and got == expected
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.next.safetensors"))


def cli_args(corpus, out, settings: dict, *extra) -> list[str]:
    sets = [a for k, v in {"block_size": 16, **settings}.items() for a in ("--set", f"{k}={v}")]
    return ["train", "--corpus", str(corpus), "--out", str(out), "--quiet", *sets, *extra]


@pytest.mark.parametrize(
    "name, when",
    [
        ("best.next.safetensors", "after"),
        ("state.json", "before"),
        ("state.json", "after"),
        ("best.safetensors", "before"),
        ("best.safetensors", "after"),
    ],
)
def test_a_kill_around_the_best_weights_leaves_state_json_naming_their_step(forks, ram_dir, corpus_file, name, when):
    """The best weights are committed with the checkpoint that names their step: a kill at any point of the commit
    of the second best weights leaves best.safetensors and state.json's best_step in agreement (after the
    roll-forward a resume makes)."""
    out = ram_dir / "run"
    p = start(forks, str(corpus_file), str(out), {**SETTINGS, "dropout": 0.0}, False, 5000, kill=(name, when, 2))
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    state = read_state(out, repair=True)  # what a resume does first: finish the commit
    assert 2 <= state["best_step"] <= state["step"]
    assert int(load_tensors(out / "best.safetensors")[1]["step"]) == state["best_step"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_save_and_exit_143_and_130(forks, ram_dir, corpus_file, signum):
    out = ram_dir / "run"
    args = cli_args(corpus_file, out, {**SETTINGS, "eval_chars": 64}, "--steps", "100000")
    p = forks.Process(target=crash_child.cli, args=(args,))
    p.start()
    wait_for(out / "state.json", p)
    os.kill(p.pid, signum)
    p.join(60)
    assert p.exitcode == 128 + signum  # as shells expect: a script can tell it from a finished training
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == max(dict(train_losses(out))) and not state["finished"]


def test_a_kill_before_the_first_checkpoint_is_no_dead_end(forks, ram_dir, corpus_file, capsys):
    out = ram_dir / "run"
    args = cli_args(corpus_file, out, SETTINGS, "--steps", "4")
    p = forks.Process(target=crash_child.cli, args=(args,), kwargs={"kill": ("state.json", "before", 1)})
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    assert not (out / "state.json").exists() and {"config.toml", "tokenizer.json", "parameters.txt"} <= {
        q.name for q in out.iterdir()
    }
    code, _, err = run_cli(["train", "--out", str(out), "--resume"], capsys)
    assert code == 2 and "sin --resume" in err and err.count("\n") == 1  # says what to do...
    code, stdout, err = run_cli(args, capsys)  # ...and doing it works: the same command takes the folder over
    assert code == 0 and "empiezo de cero" in stdout, err
    assert json.loads((out / "state.json").read_text())["finished"]


# --- hostile files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content",
    [
        ("tokenizer.json", '{"type": "char"}'),
        ("tokenizer.json", '{"type": "char", "chars": "abc"}'),
        ("state.json", '{"format": 1, "step": 3, "epoch": 0, "train_time": 1.0}'),
        ("state.json", '{"format": 1, "step": 3, "epoch": 0, "train_time": 1.0, "files": {"model.safetensors": 7}}'),
        ("state.json", "[]"),
        ("config.toml", '[model]\ncolor = "rojo"\n'),
        ("config.toml", "[model]\nd_model = 8192\nn_layers = 256\nd_ff = 65536\n"),
        ("config.toml", '[model]\nd_model = "ancho"\n'),
    ],
)
def test_hostile_metadata_is_refused_with_one_line(trained_run, tmp_path, capsys, name, content):
    run = tmp_path / "copia"
    shutil.copytree(trained_run.dir, run)
    (run / name).write_text(content)
    code, _, err = run_cli(["generate", str(run)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_tensors_of_the_wrong_dtype_are_refused(trained_run, tmp_path, capsys):
    from safetensors.torch import save_file

    run = tmp_path / "copia"
    shutil.copytree(trained_run.dir, run)
    save_file({k: v.double() for k, v in trained_run.model.state_dict().items()}, str(run / "model.safetensors"))
    state = json.loads((run / "state.json").read_text())  # a consistent folder, so that the dtype check is what fails
    state["files"]["model.safetensors"] = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    (run / "state.json").write_text(json.dumps(state))
    code, _, err = run_cli(["generate", str(run)], capsys)
    assert code == 2 and "forma" in err


# --- full and read-only disks --------------------------------------------------------------------------------------


class RefusedFile:
    """A file opened for writing on a disk that refuses every byte: each write fails with `error` (the file itself
    was opened, as the kernel lets a program open a file on a full disk)."""

    def __init__(self, f, error: int):
        self.file, self.error = f, error

    def write(self, data):
        raise OSError(self.error, os.strerror(self.error))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def __getattr__(self, name):
        return getattr(self.file, name)


def refuse_writes_under(monkeypatch, folder: Path, error: int) -> None:
    """Every write to a file under `folder` fails with `error` (ENOSPC: a full disk; EROFS: a read-only one), as the
    kernel answers, without root or a real small disk (a full disk still lets a file be created; a read-only one does
    not); files elsewhere are written as usual. taller writes files only
        through os.fdopen and os.write (files.atomic_write, metrics.jsonl, the lock)."""
    folder = folder.resolve()
    real_open, real_fdopen, real_write = os.open, os.fdopen, os.write

    def under(fd: int) -> bool:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(folder)

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return RefusedFile(f, error) if any(c in mode for c in "wax+") and under(fd) else f

    def write(fd, data):
        if under(fd):
            raise OSError(error, os.strerror(error))
        return real_write(fd, data)

    def open_(path, flags, *args, **kwargs):  # a read-only disk refuses even to create a file; a full one does not
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if error == errno.EROFS and writes and Path(path).resolve().is_relative_to(folder):
            raise OSError(error, os.strerror(error), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "write", write)


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="necesita /proc/self/fd (Linux) para saber qué fichero se escribe"
)
@pytest.mark.parametrize(
    "error, said", [(errno.ENOSPC, "no queda espacio en el disco"), (errno.EROFS, "es de sólo lectura")]
)
def test_a_full_disk_or_read_only_folder_fails_clearly_and_keeps_the_last_checkpoint(
    trained_run, tmp_path, capsys, monkeypatch, error, said
):
    run = copy_run(trained_run.dir, tmp_path / "run")
    before = snapshot(run, hidden=False)
    with monkeypatch.context() as disk:
        refuse_writes_under(disk, run, error)
        code, _, err = run_cli(["train", "--out", str(run), "--resume", "--steps", "400", "--quiet"], capsys)
        assert code == 2 and err.count("\n") == 1 and said in err, err
        code, out, err = run_cli(["generate", str(run), "--prompt", "No", "--seed", "1"], capsys)
        assert code == 0 and out.startswith("No"), err  # a full or read-only run folder (a USB stick) is still usable
    assert snapshot(run, hidden=False) == before  # not a byte changed (the lock's own content aside)
    assert not list(run.glob(".*.tmp")) and not list(run.glob("*.next.safetensors"))  # nothing half-written left
    load_run(run)  # still loads


# --- fuzzing --------------------------------------------------------------------------------------------------------

KEYS = [
    "d_model",
    "model.n_heads",
    "lr",
    "train.batch_size",
    "dropout",
    "corpus",
    "split",
    "epochs",
    "max_time",
    "tie_weights",
    "pos_encoding",
    "modelo.x",
    "",
    "a.b.c",
    "train",
    "=",
    "seed",
    "block_size",
    "val_fraction",
]
VALUES = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(["true", "sí", "no", "nan", "inf", "-0", "1e400", "", "fused", "learned"]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=10), VALUES), max_size=6))
def test_fuzz_set_and_validation_only_ever_raise_taller_error(pairs):
    cfg = Config()
    try:
        cfg.apply_overrides([f"{k}={v}" for k, v in pairs])
        cfg.validate()
    except TallerError as e:
        assert str(e) and "\n" not in str(e)


TOML_VALUES = st.recursive(
    st.one_of(st.integers(-(10**20), 10**20), st.floats(allow_nan=False), st.booleans(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "data", "train", "modelo", ""]) | st.text(max_size=6),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), TOML_VALUES, max_size=5) | TOML_VALUES,
        max_size=4,
    )
)
def test_fuzz_config_files_only_ever_raise_taller_error(tmp_path_factory, document):
    import tomli_w

    path = tmp_path_factory.mktemp("toml") / "config.toml"
    try:
        path.write_text(tomli_w.dumps(document), encoding="utf-8")
    except (TypeError, ValueError):
        path.write_text(repr(document), encoding="utf-8")  # not representable as TOML: a broken file then
    try:
        Config.load(path).validate()
    except TallerError as e:
        assert str(e)


WORDS = [
    "train",
    "entrenar",
    "generate",
    "generar",
    "corpus",
    "show",
    "list",
    "demo",
    "--corpus",
    "--preset",
    "--set",
    "--epochs",
    "--max-time",
    "--steps",
    "--seed",
    "--device",
    "--out",
    "--resume",
    "--prompt",
    "-n",
    "--temperature",
    "--top-k",
    "--top-p",
    "--greedy",
    "--max-chars",
    "--table",
    "--show-probs",
    "--config",
    "0",
    "-1",
    "3",
    "1e9",
    "nan",
    "cuda",
    "mps",
    "seed",
    "base",
    "refranes",
    "quijote",
    "d_model=7",
    "lr=-1",
    "../../etc/passwd",
    "no-existe.txt",
    "¿Ñandú?",
    "",
    "--help",
    "--version",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(WORDS + ["RUN", "RUN", "TABLE"]), max_size=7))
def test_fuzz_the_command_line_ends_in_0_or_2_never_a_traceback(trained_run, tmp_path_factory, monkeypatch, argv):
    work = tmp_path_factory.mktemp("fuzz")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TALLER_OFFLINE", "1")
    monkeypatch.setenv("TALLER_DATA", str(work))
    run = work / "run"
    shutil.copytree(trained_run.dir, run)
    argv = [str(run) if a == "RUN" else str(work / "t.txt") if a == "TABLE" else a for a in argv]
    if argv[:1] == ["demo"]:
        argv += ["--max-time", "0.5"]
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    assert code in (0, 2, None), (argv, code)
