"""A catalogue of hostile files: what a careless teacher or a hostile sender hands to taller instead of a text, a
configuration or a run folder. Each is refused in one Spanish line (exit 2) before anything is read into memory,
nothing blocks, and a run folder given to a command is left exactly as it was."""

import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROVERBS, one_line_error, run_cli, snapshot, tiny_flags

from taller.apps.cli import main

TINY = tiny_flags(warmup_steps=1)
CHAR_DEVICES = [p for p in ("/dev/zero", "/dev/urandom") if os.path.exists(p)]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A run folder of a tiny transformer (a few steps): what the run-folder cases damage a copy of."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    main(
        ["train", "--corpus", str(corpus), "--steps", "4", "--out", str(root / "run"), "--quiet", "--seed", "1", *TINY]
    )
    return root / "run"


@pytest.fixture(scope="module")
def small_skipgram(tmp_path_factory) -> Path:
    """A skip-gram's run folder (its vocabulary in vocab.json), one short epoch."""
    root = tmp_path_factory.mktemp("hostile-sg")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    main(
        [
            "train",
            "--corpus",
            str(corpus),
            "--model",
            "skipgram",
            "--epochs",
            "1",
            "--out",
            str(root / "run"),
            "--quiet",
            "--set",
            "d_model=8",
            "--set",
            "min_count=1",
            "--set",
            "subsample=0",
            "--set",
            "batch_size=64",
        ]
    )
    return root / "run"


@pytest.fixture
def place():
    """A short folder (a socket's path must be under ~100 characters) that the case's files go in."""
    path = Path(tempfile.mkdtemp(prefix="hf-", dir="/tmp" if os.path.isdir("/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- what the cases put in place ------------------------------------------------------------------------------------


def link_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def a_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays


def folder(path: Path) -> None:
    path.mkdir()


def sparse(size: int) -> Callable[[Path], None]:
    """A file of `size` bytes that takes no room on disk (and no time to write)."""

    def make(path: Path) -> None:
        with open(path, "wb") as f:
            f.truncate(size)

    return make


def text(content: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))

    return make


def loop(path: Path) -> None:
    path.symlink_to(path.name)  # a link to itself


def edit_state(**changes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        state = json.loads(path.read_text())
        state.update(changes)
        path.unlink()
        path.write_text(json.dumps(state))

    return make


def raw_state(key: str, fragment: str) -> Callable[[Path], None]:
    """state.json with `key` written as `fragment`, as is (numbers json.dumps would never write)."""

    def make(path: Path) -> None:
        state = json.loads(path.read_text())
        state[key] = "@@"
        content = json.dumps(state).replace('"@@"', fragment)
        path.unlink()
        path.write_text(content)

    return make


def trailing_bytes(path: Path) -> None:
    """Weights with bytes after the data their header declares, and a state.json that vouches for them: the size
    check is what must refuse them."""
    data = path.read_bytes() + b"\0" * 64
    path.write_bytes(data)
    edit_state(files={path.name: hashlib.sha256(data).hexdigest()})(path.parent / "state.json")


def poisoned(value: float) -> Callable[[Path], None]:
    """Weights with `value` (NaN, an infinity) in their first floating tensor, and a state.json that vouches for them:
    loading must refuse the value itself (issue 30: a NaN reached the arithmetic coder as an AssertionError)."""

    def make(path: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(path))
        name = next(k for k, t in sorted(tensors.items()) if t.is_floating_point())
        tensors[name].view(-1)[0] = value
        path.unlink()
        save_file(tensors, str(path))
        edit_state(files={path.name: hashlib.sha256(path.read_bytes()).hexdigest()})(path.parent / "state.json")

    return make


def prepared(make_meta: Callable[[Path], None]) -> Callable[[Path], None]:
    """A folder given as a prepared corpus, with this meta.json."""

    def make(path: Path) -> None:
        path.mkdir()
        make_meta(path / "meta.json")

    return make


def without_loss_picture(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """`report` reads metrics.jsonl to draw loss.png when it is missing."""

    def both(path: Path) -> None:
        (path.parent / "loss.png").unlink(missing_ok=True)
        make(path)

    return both


def edit_config(old: str, new: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        content = path.read_text()
        assert old in content
        path.unlink()
        path.write_text(content.replace(old, new))

    return make


def replace_with(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def swap(path: Path) -> None:
        path.unlink()
        make(path)

    return swap


HUGE_NUMBER = "1" * 5000  # beyond Python's 4,300-digit limit for int(str)
MB = 1024 * 1024


@dataclass
class Case:
    id: str
    command: str  # train (--corpus), config (train --config), prepare (--corpus), tokenizer-file (prepare), or a
    #               command run on a copy of the small run: generate, report, resume
    name: str  # the file the case puts in place: in the run folder, or beside it
    make: Callable[[Path], None]
    fragment: str  # a piece of the one-line message

    def __str__(self) -> str:
        return self.id


CASES = [
    # corpora given to `taller train`
    *[
        Case(f"corpus-{Path(d).name}", "train", d, None, "no es un fichero normal sino un dispositivo")
        for d in CHAR_DEVICES
    ],
    Case("corpus-link-to-dev-zero", "train", "texto.txt", link_to("/dev/zero"), "sino un dispositivo"),
    Case("corpus-fifo", "train", "tubo.txt", fifo, "sino una tubería"),
    Case("corpus-socket", "train", "enchufe.txt", a_socket, "sino un socket"),
    Case("corpus-link-loop", "train", "bucle.txt", loop, "demasiados enlaces simbólicos"),
    Case("corpus-through-a-file", "train", "dichos.txt/otro.txt", None, "una parte de la ruta no es una carpeta"),
    Case("corpus-over-the-limit", "train", "enorme.txt", sparse(300 * MB), "taller prepare"),
    Case("prepared-meta-dev-zero", "train", "preparado", prepared(link_to("/dev/zero")), "sino un dispositivo"),
    Case(
        "prepared-meta-huge-number",
        "train",
        "preparado",
        prepared(text(f'{{"format": "taller-tokens-v1", "count": {HUGE_NUMBER}}}')),
        "no es JSON válido",
    ),
    # configuration files
    Case("config-dev-zero", "config", "/dev/zero", None, "sino un dispositivo"),
    Case("config-folder", "config", "configs", folder, "sino una carpeta"),
    Case("config-fifo", "config", "c.toml", fifo, "sino una tubería"),
    Case("config-over-the-limit", "config", "grande.toml", sparse(2 * MB), "el límite para este fichero es 1 MB"),
    Case("config-huge-number", "config", "n.toml", text(f"[train]\nseed = {HUGE_NUMBER}\n"), "no es TOML válido"),
    Case(
        "config-latin1",
        "config",
        "l.toml",
        text('[train]\nprompt = "Ma\xf1ana"\n'.encode("latin-1")),
        "no es texto UTF-8",
    ),
    Case("config-syntax", "config", "s.toml", text("[train\n"), "línea 1"),
    # `taller prepare`
    Case("prepare-dev-zero", "prepare", "/dev/zero", None, "sino un dispositivo"),
    Case("prepare-fifo", "prepare", "tubo.txt", fifo, "sino una tubería"),
    Case("prepare-tokenizer-dev-zero", "tokenizer-file", "tok.json", link_to("/dev/zero"), "sino un dispositivo"),
    # files of a run folder, read by `generate`
    Case(
        "weights-dev-zero", "generate", "model.safetensors", replace_with(link_to("/dev/zero")), "sino un dispositivo"
    ),
    Case(
        "weights-dev-urandom",
        "generate",
        "model.safetensors",
        replace_with(link_to("/dev/urandom")),
        "sino un dispositivo",
    ),
    Case("weights-fifo", "generate", "model.safetensors", replace_with(fifo), "sino una tubería"),
    Case("weights-folder", "generate", "model.safetensors", replace_with(folder), "sino una carpeta"),
    Case("weights-trailing-bytes", "generate", "model.safetensors", trailing_bytes, "su cabecera declara"),
    Case(
        "weights-nan",
        "generate",
        "model.safetensors",
        poisoned(float("nan")),
        "model.safetensors: el tensor 'blocks.0.attention.key.bias' tiene valores NaN o infinitos",
    ),
    Case("weights-minus-inf", "generate", "model.safetensors", poisoned(float("-inf")), "NaN o infinitos"),
    Case("state-dev-zero", "generate", "state.json", replace_with(link_to("/dev/zero")), "sino un dispositivo"),
    Case("state-over-the-limit", "generate", "state.json", replace_with(sparse(2 * MB)), "el límite"),
    Case("state-huge-number", "generate", "state.json", raw_state("step", HUGE_NUMBER), "no es JSON válido"),
    Case("state-step-negative", "generate", "state.json", edit_state(step=-1), "'step' vale -1"),
    Case("state-epoch-absurd", "generate", "state.json", edit_state(epoch=10**20), "'epoch' vale"),
    Case("state-time-nan", "generate", "state.json", raw_state("train_time", "NaN"), "'train_time' vale nan"),
    Case(
        "state-file-outside",
        "generate",
        "state.json",
        edit_state(files={"../fuera.safetensors": "0" * 64}),
        "fuera de la carpeta",
    ),
    Case("tokenizer-dev-zero", "generate", "tokenizer.json", replace_with(link_to("/dev/zero")), "sino un dispositivo"),
    Case("tokenizer-over-the-limit", "generate", "tokenizer.json", replace_with(sparse(65 * MB)), "es 64 MB"),
    Case(
        "run-config-dev-urandom",
        "generate",
        "config.toml",
        replace_with(link_to("/dev/urandom")),
        "sino un dispositivo",
    ),
    Case(
        "run-config-vocab-size",
        "generate",
        "config.toml",
        edit_config("vocab_size = ", "vocab_size = 1"),
        "tokenizer.json tiene",
    ),
    Case(
        "run-config-vocab-size-huge",
        "generate",
        "config.toml",
        edit_config("vocab_size = ", "vocab_size = 1000000"),
        "model.vocab_size=100000",
    ),
    # a skip-gram's vocabulary, read by `embeddings`
    Case("vocab-dev-zero", "embeddings", "vocab.json", replace_with(link_to("/dev/zero")), "sino un dispositivo"),
    Case(
        "vocab-huge-number",
        "embeddings",
        "vocab.json",
        replace_with(text(f'{{"counts": [{HUGE_NUMBER}]}}')),
        "no es JSON válido",
    ),
    # `train --resume` of a folder whose state was tampered with
    Case("resume-step-negative", "resume", "state.json", edit_state(step=-1), "'step' vale -1"),
    # `report` reads what training wrote
    Case(
        "report-metrics-dev-zero",
        "report",
        "metrics.jsonl",
        without_loss_picture(replace_with(link_to("/dev/zero"))),
        "sino un dispositivo",
    ),
]


def setup_case(case: Case, place: Path, run: Path | None) -> list[str]:
    """Put the case's file in place and return the command line that meets it."""
    if run is not None:
        case.make(run / case.name)
        if case.command == "resume":
            return ["train", "--resume", "--out", str(run), "--steps", "8", "--quiet"]
        extra = {"generate": ["--prompt", "No"], "embeddings": ["--near", "hay"]}.get(case.command, [])
        return [case.command, str(run), *extra]
    target = place / case.name if not case.name.startswith("/") else Path(case.name)
    (place / "dichos.txt").write_text("\n".join(PROVERBS) + "\n", encoding="utf-8")
    if case.make is not None:
        case.make(target)
    out = ["--out", str(place / "salida")]
    if case.command == "train":
        return ["train", "--corpus", str(target), "--steps", "2", "--quiet", *out, *TINY]
    if case.command == "config":
        return ["train", "--config", str(target), "--corpus", str(place / "dichos.txt"), "--quiet", *out]
    if case.command == "prepare":
        return ["prepare", "--corpus", str(target), "--quiet", *out]
    return ["prepare", "--corpus", str(place / "dichos.txt"), "--tokenizer-file", str(target), "--quiet", *out]


RUN_COMMANDS = {"generate", "report", "resume", "embeddings"}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_file_is_refused_in_one_line(case, place, capsys, request, monkeypatch):
    run = None
    if case.command in RUN_COMMANDS:
        run = place / "run"
        source = "small_skipgram" if case.command == "embeddings" else "small_run"
        shutil.copytree(request.getfixturevalue(source), run, symlinks=True)
    args = setup_case(case, place, run)
    monkeypatch.chdir(place)  # a default output folder, were one made, would be made here and be seen
    before = snapshot(place, deep=True, hidden=False)  # (a lock's own content aside)
    code, _, err = run_cli(args, capsys)
    line = one_line_error(code, err)
    assert case.fragment in line, line
    after = snapshot(place, deep=True, hidden=False)
    if case.command == "report":  # report draws its pictures before it reads metrics.jsonl: only its run may change
        before, after = ({k: v for k, v in d.items() if not k.startswith("run/")} for d in (before, after))
    assert after == before  # nothing changed and nothing new: no output folder, no temporary file
    assert not (place / "salida").exists()  # refused before any output was made


def test_an_unreadable_corpus_says_so_in_spanish(place, capsys, monkeypatch):
    """A corpus the user may not read (chmod 000 as a user; as root, which reads anything, the system's refusal is
    simulated): one line with «permiso denegado» and the chmod that fixes it, never «Permission denied»."""
    corpus = place / "secreto.txt"
    corpus.write_text("\n".join(PROVERBS) + "\n", encoding="utf-8")
    corpus.chmod(0)
    if os.geteuid() == 0:
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if Path(path) == corpus:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    code, _, err = run_cli(
        ["train", "--corpus", str(corpus), "--steps", "2", "--quiet", "--out", str(place / "o"), *TINY], capsys
    )
    line = one_line_error(code, err)
    assert "permiso denegado" in line and "chmod" in line and "Permission" not in line


def test_a_corpus_of_one_character_trains_and_reports(place, capsys):
    """ "a" × 5000: one point in the embedding picture (report draws it, as explain does), not an IndexError after the
    run was saved."""
    corpus = place / "aes.txt"
    corpus.write_text("a" * 5000, encoding="utf-8")
    run = place / "run"
    code, _, err = run_cli(
        ["train", "--corpus", str(corpus), "--steps", "3", "--quiet", "--out", str(run), *TINY], capsys
    )
    assert code == 0, err
    code, _, err = run_cli(["report", str(run)], capsys)
    assert code == 0, err
    assert (run / "embeddings.png").stat().st_size > 0 and (run / "report.html").exists()


MEMORY_SCRIPT = """
import resource, sys
from taller.apps.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code == 2, (argv, e.code)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.skipif(not CHAR_DEVICES or sys.platform != "linux", reason="needs /dev/zero and Linux's ru_maxrss in KB")
def test_endless_files_leave_memory_flat(small_run, place):
    """The commands that once read /dev/zero until the machine ran out of memory (14 GB for a corpus) now refuse it at
    once: a fresh process running all of them peaks under 1 GB (importing torch is most of it)."""
    run = place / "run"
    shutil.copytree(small_run, run)
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to("/dev/zero")
    corpus = place / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS) + "\n", encoding="utf-8")
    out = str(place / "salida")
    argvs = [["train", "--corpus", d, "--quiet", "--out", out] for d in CHAR_DEVICES]
    argvs += [
        ["train", "--config", "/dev/zero", "--corpus", str(corpus), "--quiet", "--out", out],
        ["prepare", "--corpus", "/dev/zero", "--quiet", "--out", out],
        ["generate", str(run), "--prompt", "No"],
    ]

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (8 * 1024**3, 8 * 1024**3))  # a regression fails, not the machine

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT.format(argvs=argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=cap,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("error: ") == len(argvs), done.stderr
    peak_mb = int(done.stdout.split()[-1])
    assert peak_mb < 1024, f"pico de memoria {peak_mb} MB"


# --- issue 31: a trusted cache, classifiers, unknown characters, full disks -------------------------------------------


def cache_truncated(path: Path, text: str) -> None:
    path.write_text(text[: len(text) // 2], encoding="utf-8")


def cache_edited(path: Path, text: str) -> None:
    path.write_text(text.replace("a", "o"), encoding="utf-8")


def cache_link(path: Path, text: str) -> None:
    (path.parent / "secreto.txt").write_text(text, encoding="utf-8")  # even a link to the right text: never followed
    path.symlink_to(path.parent / "secreto.txt")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (cache_truncated, "truncada o modificada"),
        (cache_edited, "truncada o modificada"),
        (cache_link, "enlace simbólico"),
    ],
    ids=["truncated", "edited", "link"],
)
def test_a_cached_download_is_checked_on_every_read(place, capsys, monkeypatch, make, fragment):
    """The cache holds what was downloaded and checked: anything else there (cut short, edited, a link to /etc/passwd)
    is refused in one line saying how to fetch it again, and the cache is left as it was."""
    import dataclasses

    import taller.data.corpora as corpora

    text = "\n".join(PROVERBS * 3) + "\n"
    info = dataclasses.replace(
        corpora.CORPORA["refranes"],
        system_paths=(str(place / "no-existe"),),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
    monkeypatch.setitem(corpora.CORPORA, "refranes", info)
    monkeypatch.delenv("TALLER_DATA", raising=False)
    monkeypatch.setenv("TALLER_OFFLINE", "1")
    monkeypatch.setenv("TALLER_CACHE", str(place / "cache"))
    (place / "cache").mkdir()
    (place / "cache" / "refranes.txt").write_text(text, encoding="utf-8")
    assert corpora.load_corpus("refranes").text == text  # the checked copy is read
    (place / "cache" / "refranes.txt").unlink()
    make(place / "cache" / "refranes.txt", text)
    before = snapshot(place / "cache")
    code, _, err = run_cli(
        ["train", "--corpus", "refranes", "--steps", "2", "--quiet", "--out", str(place / "salida"), *TINY], capsys
    )
    line = one_line_error(code, err)
    assert fragment in line and "rm " in line, line
    assert snapshot(place / "cache") == before and not (place / "salida").exists()


def labelled_lines(labels: int, per_label: int = 2, width: int = 4) -> str:
    return "".join(
        f"e{i:0{width}d}\t{PROVERBS[(i + k) % len(PROVERBS)]}\n" for i in range(labels) for k in range(per_label)
    )


def test_a_label_longer_than_100_characters_is_refused(place, capsys):
    (place / "etiquetas.tsv").write_text(
        labelled_lines(3) + "x" * 101 + "\tNo hay rosa sin espinas.\n", encoding="utf-8"
    )
    code, _, err = run_cli(
        [
            "train",
            "--model",
            "bert",
            "--task",
            "clasificar",
            "--corpus",
            str(place / "etiquetas.tsv"),
            "--steps",
            "1",
            "--quiet",
            "--out",
            str(place / "salida"),
            *TINY,
        ],
        capsys,
    )
    assert "101 caracteres y el máximo es 100" in one_line_error(code, err)
    assert not (place / "salida").exists()


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT, a 2-label classifier and a 1,000-label one fine-tuned from it (a few steps each)."""
    root = tmp_path_factory.mktemp("hostile-bert")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    main(
        [
            "train",
            "--corpus",
            str(corpus),
            "--model",
            "bert",
            "--steps",
            "2",
            "--out",
            str(root / "bert"),
            "--quiet",
            *TINY,
        ]
    )
    for name, labels in (("dos", 2), ("mil", 1000)):
        (root / f"{name}.tsv").write_text(labelled_lines(labels), encoding="utf-8")
        main(
            [
                "train",
                "--model",
                "bert",
                "--task",
                "clasificar",
                "--init",
                str(root / "bert"),
                "--corpus",
                str(root / f"{name}.tsv"),
                "--steps",
                "2",
                "--out",
                str(root / name),
                "--quiet",
                "--set",
                "batch_size=8",
            ]
        )
    return {"bert": root / "bert", "dos": root / "dos", "mil": root / "mil"}


@pytest.mark.parametrize(
    "candidates, fragment",
    [
        (",".join(f"c{i}" for i in range(10_000)), "trae 10.000 candidatos y el límite es 200 por llamada"),
        ("tarde," + "a" * 20_000, "20.000 caracteres y el límite es 64"),
    ],
    ids=["10000-candidates", "a-20000-character-candidate"],
)
def test_fill_candidates_are_bounded_in_number_and_length(classifiers, capsys, candidates, fragment):
    """Issue 30: 10,000 candidates, or one of 20,000 characters, ran past a minute; now one line says the limit and
    how to score more, before the model runs."""
    before = snapshot(classifiers["bert"])
    code, _, err = run_cli(
        ["fill", str(classifiers["bert"]), "--text", "Más vale ___ que nunca.", "--candidates", candidates], capsys
    )
    assert fragment in one_line_error(code, err)
    assert snapshot(classifiers["bert"]) == before


def test_a_1000_label_classifier_trains_then_loads(classifiers, capsys):
    """Its 1000 × 1000 confusion table goes to confusion.json (read with its own bound); state.json stays small."""
    from taller.inspect.classify import read_confusion

    run = classifiers["mil"]
    assert (run / "state.json").stat().st_size < 100_000
    labels, counts = read_confusion(run)
    assert len(labels) == 1000 and len(counts) == 1000 and all(len(row) == 1000 for row in counts)
    code, out, err = run_cli(["classify", str(run), "--text", "No hay rosa sin espinas."], capsys)
    assert code == 0 and out.count("%") == 1000, err


@pytest.mark.parametrize(
    "command, name",
    [
        (["fill", "{bert}", "--text", "Más vale ___ que nunca ☃."], "bert"),
        (["fill", "{bert}", "--text", "Más vale ___ que nunca.", "--candidates", "tarde,☃"], "bert"),
        (["classify", "{dos}", "--text", "No hay rosa sin ☃."], "dos"),
    ],
    ids=["fill", "fill-candidates", "classify"],
)
def test_unknown_characters_are_listed_not_dropped(classifiers, capsys, command, name):
    """As generate does: «☃» is named in one line; the answer would otherwise be for another text."""
    before = snapshot(classifiers[name])
    code, _, err = run_cli([a.format(**{k: str(v) for k, v in classifiers.items()}) for a in command], capsys)
    line = one_line_error(code, err)
    assert "nunca vio: '☃'" in line, line
    assert snapshot(classifiers[name]) == before


def test_an_onnx_export_on_a_full_disk_leaves_neither_file(small_run, place, capsys, monkeypatch):
    """The tokenizer's write fails (no space): no .onnx is left without it, and an old pair stays as it was."""
    import errno

    import taller.apps.export as export
    import taller.files as files

    monkeypatch.setattr(export, "onnx_bytes", lambda model: b"onnx")  # the model's bytes: not what this is about
    real = files.written_aside

    def full(path, data):
        if path.name.endswith(".tokenizer.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(files, "written_aside", full)
    code, _, err = run_cli(["export", str(small_run), "--format", "onnx", "-o", str(place / "m.onnx")], capsys)
    assert "no queda espacio" in one_line_error(code, err)
    assert sorted(p.name for p in place.iterdir()) == []  # nor any temporary file
    (place / "m.onnx").write_bytes(b"vieja")
    (place / "m.tokenizer.json").write_bytes(b"viejo")
    code, _, err = run_cli(
        ["export", str(small_run), "--format", "onnx", "-o", str(place / "m.onnx"), "--force"], capsys
    )
    one_line_error(code, err)
    assert (place / "m.onnx").read_bytes() == b"vieja" and (place / "m.tokenizer.json").read_bytes() == b"viejo"
    assert len(list(place.iterdir())) == 2


def test_a_full_disk_at_the_first_checkpoint_leaves_a_folder_a_fresh_start_takes(place, capsys, monkeypatch):
    """The disk fills as the first checkpoint is written, after epoch_001.png: one line, and then the same command
    starts afresh (and --resume says to do so) instead of refusing the folder for good."""
    import errno

    import taller.files as files

    corpus = place / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    real, full = files.written_aside, []

    def filling(path, data):
        if path.name.endswith(".safetensors") and not path.name.startswith("epoch_000"):
            full.append(path.name)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(files, "written_aside", filling)
    args = [
        "train",
        "--corpus",
        str(corpus),
        "--steps",
        "30",
        "--out",
        str(place / "run"),
        "--quiet",
        *TINY[:-6],
        "--set",
        "plot_every=1",
        "--set",
        "warmup_steps=1",
    ]
    code, _, err = run_cli(args, capsys)
    assert "no queda espacio" in one_line_error(code, err)
    assert (place / "run" / "epoch_001.png").exists() and not (place / "run" / "state.json").exists()
    monkeypatch.setattr(files, "written_aside", real)
    code, _, err = run_cli([*args, "--resume"], capsys)
    assert "sin --resume" in one_line_error(code, err)
    code, out, err = run_cli(args, capsys)
    assert code == 0 and "empiezo de cero" in out and (place / "run" / "state.json").exists(), err
