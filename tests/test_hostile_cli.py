"""A catalogue of hostile command lines: each ends with exit code 2 and one Spanish line saying what is wrong and what
to do, and leaves every file it was not told to write exactly as it was (hashed before and after). It grows with every
defect found (issue 18: overwritten weights, a second training on one folder, nan flags, seeds beyond 64 bits, memory
the machine does not have, folders stuck after an early stop)."""

import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROVERBS, one_line_error, poison_weights, run_cli, snapshot, tiny_flags

import taller.apps.compress as compress
import taller.training.loop as loop
from taller.apps.cli import main as cli_main
from taller.config import Config
from taller.runs.folder import RunLock, load_run

TINY = tiny_flags(warmup_steps=2)
FOUR_GB = 4e9  # the free memory every case sees, whatever the machine has


@pytest.fixture
def small_run(trained_run):
    """The session's tiny run (conftest) and its corpus; each case copies the run into its own folder."""
    return trained_run.dir, trained_run.dir.parent / "dichos.txt"


# --- how each case's folder is prepared (w: the case's folder; run: a copy of the small run in it) -----------------


def unfinished(w: Path, run: Path) -> None:
    """A training killed in its first seconds: config, tokenizer, parameters, initial weights; no state.json."""
    early = w / "temprana"
    early.mkdir()
    (early / ".lock").write_text("12345\n")  # the first file a training writes, before any other
    for name in ("config.toml", "tokenizer.json", "parameters.txt", "epoch_000.safetensors"):
        shutil.copy(run / name, early / name)


def foreign(w: Path, run: Path) -> None:
    """A folder of the user's own with a file taller never writes."""
    (w / "mia").mkdir()
    (w / "mia" / "notas.txt").write_text("mis notas\n")


def own_config(w: Path, run: Path) -> None:
    """A folder holding only the user's own config.toml (not a stopped taller run: no .lock)."""
    (w / "exp").mkdir()
    shutil.copy(run / "config.toml", w / "exp" / "config.toml")


def files(w: Path, run: Path) -> None:
    (w / "fichero").write_text("no es una carpeta\n")
    (w / "notas.txt").write_text("mis notas\n")
    (w / "carpeta").mkdir()
    (w / "enlace.txt").symlink_to(run / "config.toml")
    (w / "tiny.txt").write_text("abc")


def devices(w: Path, run: Path) -> None:
    """A FIFO and, where the system lets us make one, a copy of /dev/null (a character device) inside the case's
    folder: what --force must never replace (a regression replaces these, never the real /dev/null)."""
    os.mkfifo(w / "tubo")
    try:
        os.mknod(w / "nulo", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pytest.skip("este sistema no deja crear un dispositivo (mknod) fuera de /dev")


def mixed(w: Path, run: Path, mix: Path) -> None:
    """The session's mix (conftest) beside the run: its parts are ../run (this copy) and ../ngram."""
    shutil.copytree(mix, w / "mezcla")
    shutil.copytree(mix.parent / "ngram", w / "ngram")


def big_text(w: Path, run: Path) -> None:
    with open(w / "grande.txt", "wb") as f:
        f.truncate(17_000_000)  # over compress's 16 MB (16,777,216 bytes), yet "16 MB" when rounded


def lowercase_run(w: Path, run: Path) -> None:
    """Another run, trained a few steps on the proverbs in lower case: it never saw «N»; and a text that has one."""
    corpus = w / "minusculas.txt"
    corpus.write_text("\n".join(PROVERBS * 3).lower() + "\n", encoding="utf-8")
    code = cli_main(["train", "--corpus", str(corpus), "--out", str(w / "otra"), "--steps", "2", "--quiet", *TINY])
    assert code in (None, 0)
    (w / "texto.txt").write_text("No hay mal que por bien no venga.\n", encoding="utf-8")


PACKED: dict[str, bytes] = {}  # a real .tllr of the small run, made once


def tllr_files(w: Path, run: Path) -> None:
    """Compressed files that decompress must refuse, and leave no output of: a header that claims 16 million tokens
    with 10 bytes of data, the same with random CRCs and 256 KiB of random data (issue 30's crafted file), a real
    file cut short, one with a bit flipped in the middle, and one of a format version that does not exist."""
    if "real" not in PACKED:
        PACKED["real"] = compress.compress_text(load_run(run), "No hay mal que por bien no venga.\n" * 20).data
    real = PACKED["real"]
    n = 16_000_000
    header = compress.HEADER.pack(
        b"TLLR", 2, bytes.fromhex(compress.run_identity(load_run(run))), n, compress.layout(n)[0], 0
    )
    noise = random.Random(0).randbytes(compress.CRC.size * compress.blocks(n) + 256 * 1024)
    flipped = bytearray(real)
    flipped[(compress.HEADER.size + len(real)) // 2] ^= 0x10
    for name, data in {
        "imposible.tllr": header + bytes(10),
        "aleatorio.tllr": header + noise,
        "cortado.tllr": real[: len(real) // 2],
        "volteado.tllr": bytes(flipped),
        "version9.tllr": real[:4] + b"\x09" + real[5:],
    }.items():
        (w / name).write_bytes(data)


SETUPS = {
    "unfinished": unfinished,
    "foreign": foreign,
    "own_config": own_config,
    "files": files,
    "devices": devices,
    "big": big_text,
    "lowercase": lowercase_run,
    "tllr": tllr_files,
}

BIG_WIDTH = ["--set", "d_model=8192", "--set", "d_ff=32768", "--set", "n_layers=1"]
BIG_BATCH = ["--set", "block_size=8192", "--set", "batch_size=65536"]
TRAIN = ["train", "--corpus", "{corpus}", "--quiet", *TINY]

CASES = [
    # 1. never overwrite what the user did not name as output
    (
        "table-onto-weights",
        ["generate", "{run}", "--prompt", "No", "--table", "{run}/model.safetensors"],
        "no se sobrescribe nunca",
    ),
    (
        "table-onto-weights-force",
        ["generate", "{run}", "--table", "{run}/model.safetensors", "--force"],
        "no se sobrescribe nunca",
    ),
    (
        "table-onto-state-force",
        ["generate", "{run}", "--table", "{run}/state.json", "--force"],
        "no se sobrescribe nunca",
    ),
    (
        "table-onto-own-table-force",
        ["generate", "{run}", "--table", "{run}/table.txt", "--force"],
        "no se sobrescribe nunca",
    ),
    ("table-onto-metrics", ["generate", "{run}", "--table", "{run}/metrics.jsonl"], "no se sobrescribe nunca"),
    ("table-through-a-link", ["generate", "{run}", "--table", "{w}/enlace.txt", "--force"], "no se sobrescribe nunca"),
    ("table-existing-file", ["generate", "{run}", "--table", "{w}/notas.txt"], "--force"),
    ("table-a-folder", ["generate", "{run}", "--table", "{w}/carpeta", "--force"], "es una carpeta"),
    ("table-empty-name", ["generate", "{run}", "--table", ""], "--table"),
    # 2. a second writer of a run folder
    (
        "second-training-while-locked",
        ["train", "--out", "{run}", "--resume", "--steps", "20", "--quiet"],
        "proceso {pid}",
    ),
    ("fresh-start-over-a-run", [*TRAIN, "--out", "{run}"], "--resume"),
    # 3. memory the machine does not have (4 GB free in these cases)
    ("memory-wide-model", [*TRAIN, "--out", "{w}/nueva", *BIG_WIDTH], "d_model (ahora 8192)"),
    ("memory-huge-batch", [*TRAIN, "--out", "{w}/nueva", *BIG_BATCH], "--set batch_size=1"),
    (
        "memory-large-batch",
        [*TRAIN, "--out", "{w}/nueva", "--set", "batch_size=65536", "--set", "block_size=256"],
        "--set batch_size=",
    ),
    # 4. an early stop is never a dead end
    ("resume-an-unfinished-start", ["train", "--out", "{w}/temprana", "--resume"], "sin --resume"),
    ("fresh-start-over-foreign-files", [*TRAIN, "--out", "{w}/mia"], "no está vacía"),
    (
        "fresh-start-over-the-users-config",
        ["train", "--config", "{w}/exp/config.toml", "--corpus", "{corpus}", "--out", "{w}/exp"],
        "no está vacía",
    ),
    ("resume-nothing", ["train", "--out", "{w}/no-existe", "--resume"], "falta state.json"),
    # 5. tracebacks that became one line
    ("resume-a-file", ["train", "--out", "{w}/fichero", "--resume"], "es un fichero"),
    ("train-into-a-file", [*TRAIN, "--out", "{w}/fichero"], "es un fichero"),
    ("train-seed-beyond-64-bits", [*TRAIN, "--out", "{w}/nueva", "--seed", str(2**64)], "--seed"),
    ("train-negative-seed", [*TRAIN, "--out", "{w}/nueva", "--seed", "-1"], "--seed"),
    ("train-set-seed-beyond-64-bits", [*TRAIN, "--out", "{w}/nueva", "--set", f"seed={2**63}"], "train.seed"),
    ("generate-seed-beyond-64-bits", ["generate", "{run}", "--seed", str(2**64)], "--seed"),
    # 6. wrong words
    ("temperature-nan", ["generate", "{run}", "--temperature", "nan"], "--temperature"),
    ("temperature-inf", ["generate", "{run}", "--temperature", "1", "inf"], "--temperature"),
    ("top-p-nan", ["generate", "{run}", "--top-p", "nan"], "--top-p"),
    ("max-time-nan", [*TRAIN, "--out", "{w}/nueva", "--max-time", "nan"], "--max-time"),
    ("demo-max-time-inf", ["demo", "--max-time", "inf", "--out", "{w}/demo"], "--max-time"),
    ("train-out-empty", [*TRAIN, "--out", ""], "--out"),
    ("demo-out-empty", ["demo", "--out", " "], "--out"),
    ("compare-out-empty", ["compare", "--out", ""], "--out"),
    ("three-characters", ["train", "--corpus", "{w}/tiny.txt", "--out", "{w}/nueva", "--quiet"], "texto más largo"),
    # 7. issue 31: --force never replaces what is not a regular file
    ("table-onto-a-fifo-force", ["generate", "{run}", "--table", "{w}/tubo", "--force"], "sino una tubería"),
    ("table-onto-a-device-force", ["generate", "{run}", "--table", "{w}/nulo", "--force"], "sino un dispositivo"),
    (
        "compress-onto-a-device-force",
        ["compress", "{run}", "{w}/notas.txt", "-o", "{w}/nulo", "--force"],
        "sino un dispositivo",
    ),
    (
        "decompress-onto-a-fifo-force",
        ["decompress", "{run}", "{w}/notas.txt", "-o", "{w}/tubo", "--force"],
        "sino una tubería",
    ),
    ("export-onto-a-fifo-force", ["export", "{run}", "-o", "{w}/tubo", "--force"], "sino una tubería"),
    (
        "export-onnx-tokenizer-onto-a-fifo",
        ["export", "{run}", "--format", "onnx", "-o", "{w}/m.onnx", "--force"],
        "sino una tubería",
    ),
    # 8. issue 31: mixes that would train and never load
    (
        "mix-of-a-mix",
        ["train", "--model", "mix", "--set", "runs={w}/mezcla,{run}", "--out", "{w}/nueva", "--quiet"],
        "una mezcla no se mezcla",
    ),
    (
        "mix-one-run-twice",
        ["train", "--model", "mix", "--set", "runs={run},{w}/./run", "--out", "{w}/nueva", "--quiet"],
        "dos veces la misma ejecución",
    ),
    (
        "mix-nine-parts",
        [
            "train",
            "--model",
            "mix",
            "--set",
            "levels=1",
            "--set",
            "runs=" + ",".join(f"{{w}}/r{i}" for i in range(9)),
            "--out",
            "{w}/nueva",
            "--quiet",
        ],
        "como mucho 8",
    ),
    ("fill-a-mix", ["fill", "{w}/mezcla", "--text", "No ___ mal"], "es una mezcla que lee"),
    # 9. issue 31: messages that said the wrong thing
    ("set-lr-1e6", [*TRAIN, "--out", "{w}/nueva", "--set", "lr=1e6"], "menor que 10"),
    ("adapt-lr-1e9", ["score", "{run}", "--adapt", "--lr", "1e9"], "demasiado grande"),
    ("adapt-sgd-lr-1e9", ["score", "{run}", "--adapt", "--optimizer", "sgd", "--lr", "1e9"], "demasiado grande"),
    (
        "compress-17-million-bytes",
        ["compress", "{run}", "{w}/grande.txt", "-o", "{w}/g.tllr"],
        "ocupa 17.000.000 bytes y el límite para este fichero es 16 MB (16.777.216 bytes)",
    ),
    (
        "against-a-run-that-never-saw-a-character",
        ["explain", "{run}", "--surprise", "{w}/texto.txt", "--against", "{w}/otra"],
        "que {w}/otra nunca vio: 'N'",
    ),
    # 10. issue 30: learning rates a float32 cannot hold, and other numbers out of range
    (
        "adapt-sgd-lr-1e308",
        ["score", "{run}", "--adapt", "--optimizer", "sgd", "--lr", "1e308"],
        "que quepa en float32",
    ),
    ("adapt-sgd-lr-1e39", ["score", "{run}", "--adapt", "--optimizer", "sgd", "--lr", "1e39"], "de 1,2e-38 a 3,4e38"),
    (
        "adapt-adam-lr-1e300",
        ["score", "{run}", "--adapt", "--optimizer", "adam", "--lr", "1e300"],
        "que quepa en float32",
    ),
    ("adapt-lr-1e-45", ["score", "{run}", "--adapt", "--lr", "1e-45"], "que quepa en float32"),
    ("adapt-lr-negative", ["score", "{run}", "--adapt", "--lr=-0.1"], "que quepa en float32"),
    ("adapt-lr-nan", ["score", "{run}", "--adapt", "--lr", "nan"], "que quepa en float32"),
    ("adapt-adam-lr-1e38", ["score", "{run}", "--adapt", "--optimizer", "adam", "--lr", "1e38"], "demasiado grande"),
    ("lr-without-adapt", ["score", "{run}", "--lr", "0.1"], "añade --adapt"),
    ("top-k-negative", ["generate", "{run}", "--top-k=-3"], "--top-k"),
    # 11. issue 30: crafted and damaged .tllr files: refused, and no output left
    (
        "decompress-an-impossible-header",
        ["decompress", "{run}", "{w}/imposible.tllr", "-o", "{w}/x.txt"],
        "no pueden contener tantos",
    ),
    (
        "decompress-a-crafted-file",
        ["decompress", "{run}", "{w}/aleatorio.tllr", "-o", "{w}/x.txt"],
        "el bloque 1 de 245 no coincide con su CRC",
    ),
    ("decompress-a-cut-file", ["decompress", "{run}", "{w}/cortado.tllr", "-o", "{w}/x.txt"], "está dañado"),
    ("decompress-a-flipped-bit", ["decompress", "{run}", "{w}/volteado.tllr", "-o", "{w}/x.txt"], "está dañado"),
    ("decompress-version-9", ["decompress", "{run}", "{w}/version9.tllr", "-o", "{w}/x.txt"], "la versión 9"),
    ("decompress-nothing", ["decompress", "{run}", "{w}/no-existe.tllr", "-o", "{w}/x.txt"], "no existe el fichero"),
    ("decompress-a-folder", ["decompress", "{run}", "{w}/carpeta", "-o", "{w}/x.txt"], "sino una carpeta"),
    ("compress-out-empty", ["compress", "{run}", "{w}/notas.txt", "-o", ""], "-o"),
    # 12. issue 30: tampered weights are refused when loaded, naming the file
    ("generate-nan-weights", ["generate", "{run}"], "{w}/run/model.safetensors: el tensor"),
    (
        "compress-a-mix-with-nan-weights",
        ["compress", "{w}/mezcla", "{w}/notas.txt", "-o", "{w}/n.tllr"],
        "{w}/mezcla/model.safetensors: el tensor 'weights' tiene valores NaN o infinitos",
    ),
    (
        "compress-a-mix-with-inf-weights",
        ["compress", "{w}/mezcla", "{w}/notas.txt", "-o", "{w}/n.tllr"],
        "NaN o infinitos",
    ),
    ("generate-a-mix-with-a-huge-weight", ["generate", "{w}/mezcla"], "fuera de ±1.000"),
    # 13. issue 30: candidates without end
    (
        "probe-201-candidates",
        ["probe", "{run}", "--context", "Más vale ", "--candidates", *(f"c{i}" for i in range(201))],
        "el límite es 200",
    ),
    (
        "probe-a-20000-character-candidate",
        ["probe", "{run}", "--context", "Más vale ", "--candidates", "tarde", "a" * 20_000],
        "20.000 caracteres y el límite es 64",
    ),
]
TAMPERED = {
    "generate-nan-weights": ("run", float("nan")),
    "compress-a-mix-with-nan-weights": ("mezcla", float("nan")),
    "compress-a-mix-with-inf-weights": ("mezcla", float("inf")),
    "generate-a-mix-with-a-huge-weight": ("mezcla", 1e30),
}
NEEDS = {
    "second-training-while-locked": "lock",
    "resume-an-unfinished-start": "unfinished",
    "fresh-start-over-foreign-files": "foreign",
    "fresh-start-over-the-users-config": "own_config",
    **{c[0]: "devices" for c in CASES if "{w}/tubo" in c[1] or "{w}/nulo" in c[1]},
    "export-onnx-tokenizer-onto-a-fifo": "devices",
    "mix-of-a-mix": "mix",
    "fill-a-mix": "mix",
    "compress-17-million-bytes": "big",
    "against-a-run-that-never-saw-a-character": "lowercase",
    **{c[0]: "tllr" for c in CASES if c[0].startswith("decompress-") and ".tllr" in c[1][2]},
    **{name: "mix" for name, (folder, _) in TAMPERED.items() if folder == "mezcla"},
}


@pytest.mark.parametrize("name, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_hostile_command_lines_end_in_one_line_and_change_nothing(
    small_run, tmp_path, monkeypatch, capsys, request, name, argv, fragment
):
    monkeypatch.setattr(loop, "available_memory", lambda device: FOUR_GB)
    monkeypatch.chdir(tmp_path)  # a default output folder, if any were made, would be here and be seen
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    files(tmp_path, run)
    setup = NEEDS.get(name)
    if setup in SETUPS:
        SETUPS[setup](tmp_path, run)
    if name == "export-onnx-tokenizer-onto-a-fifo":
        os.mkfifo(tmp_path / "m.tokenizer.json")  # the second output of an ONNX export
    if setup == "mix":
        mixed(tmp_path, run, request.getfixturevalue("mix_run").dir)
    if name in TAMPERED:
        poison_weights(tmp_path / TAMPERED[name][0], TAMPERED[name][1])
    capsys.readouterr()  # what a setup's training printed
    lock = RunLock(run).acquire() if setup == "lock" else None  # this test process is "the first training"
    try:
        before = snapshot(tmp_path, deep=True)
        words = {"run": str(run), "w": str(tmp_path), "corpus": str(small_run[1])}
        code, out, err = run_cli([a.format(**words) for a in argv], capsys)
    finally:
        if lock:
            lock.release()
    line = one_line_error(code, err)
    assert fragment.format(pid=os.getpid(), w=tmp_path) in line, line
    # nothing changed, and nothing new: no output, no folder made before the refusal, no temporary file left
    assert snapshot(tmp_path, deep=True) == before


# --- what the refusals point to works ---------------------------------------------------------------------------------


def test_a_table_goes_to_a_new_file_or_with_force_and_touches_nothing_else(small_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    before = snapshot(run, deep=True)
    table = tmp_path / "tabla.txt"
    code, _, err = run_cli(["generate", str(run), "--prompt", "No", "--seed", "1", "--table", str(table)], capsys)
    assert code == 0 and table.read_text(encoding="utf-8").startswith("Posición"), err
    table.write_text("vieja\n")
    code, _, err = run_cli(
        ["generate", str(run), "--prompt", "No", "--seed", "1", "--table", str(table), "--force"], capsys
    )
    assert code == 0 and table.read_text(encoding="utf-8").startswith("Posición"), err
    code, _, err = run_cli(["generate", str(run), "--seed", "1", "--table", str(run / "mi_tabla.txt")], capsys)
    after = snapshot(run, deep=True)
    assert code == 0 and set(after) - set(before) == {"mi_tabla.txt"}, err  # a new name in the run: fine
    assert all(after[p] == digest for p, digest in before.items())


def test_a_fresh_start_takes_over_an_unfinished_start_and_says_so(small_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    unfinished(tmp_path, run)
    (tmp_path / "temprana" / "metrics.jsonl").write_text('{"step": 999, "train_loss": 9.0}\n')  # of the stopped run
    code, out, err = run_cli(
        [
            "train",
            "--corpus",
            str(small_run[1]),
            "--out",
            str(tmp_path / "temprana"),
            "--steps",
            "3",
            "--set",
            "log_every=1",
            *TINY,
        ],
        capsys,
    )
    assert code == 0, err
    assert "empiezo de cero" in out and "state.json" in out
    metrics = (tmp_path / "temprana" / "metrics.jsonl").read_text()
    assert '"step": 999' not in metrics  # the stopped run's lines are gone, not mixed with the new ones


def test_run_files_are_private(small_run):
    out = small_run[0]
    for name in ("metrics.jsonl", "state.json", "model.safetensors", "config.toml", ".lock"):
        assert (out / name).stat().st_mode & 0o077 == 0, name


def test_the_lock_is_free_again_when_a_training_ends(small_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--steps", "12", "--quiet"], capsys)
    assert code == 0, err
    RunLock(run).acquire().release()  # nobody holds it any more


def test_memory_estimate_of_the_base_preset_is_small_and_the_refusal_names_the_numbers():
    cfg = Config.preset("base")
    need = cfg.memory_needed()
    assert 10e6 < sum(need.values()) < 1e9  # tens of MB: it trains on any laptop
    cfg.apply_overrides(["d_model=8192", "d_ff=32768", "n_layers=1"])
    assert 10e9 < sum(cfg.memory_needed().values())  # about 13 GB: parameters, gradients and AdamW's two moments


def fake_module_path(tmp_path: Path) -> str:
    """A folder with a `tqdm` that is "interrupted" while it loads: as a Ctrl-C during the command's imports."""
    fake = tmp_path / "falso"
    (fake / "tqdm").mkdir(parents=True)
    (fake / "tqdm" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    return os.pathsep.join([str(fake), *sys.path])


@pytest.mark.parametrize("how", [["-m", "taller", "--version"], ["-c", "from taller.__main__ import main; main()"]])
def test_ctrl_c_while_importing_ends_in_one_line_and_130(tmp_path, how):
    env = {**os.environ, "PYTHONPATH": fake_module_path(tmp_path)}
    result = subprocess.run([sys.executable, *how], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 130 and result.stderr.strip() == "Interrumpido." and "Traceback" not in result.stderr


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(small_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    thesis = tmp_path / "tesis.txt"
    thesis.write_text("capítulo 1\n")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(thesis)
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--steps", "40", "--quiet"], capsys)
    assert "no un enlace" in one_line_error(code, err)
    assert thesis.read_text() == "capítulo 1\n"


def test_readers_never_repair_a_checkpoint_only_the_training_does(small_run, tmp_path, capsys):
    """A crash between the commit and the renames leaves model.next.safetensors: generate reads it where it is (a
    training may be writing that very moment); only --resume, holding the lock, renames it."""
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    (run / "model.safetensors").rename(run / "model.next.safetensors")
    before = snapshot(run, deep=True)
    code, out, _ = run_cli(["generate", str(run), "--prompt", "No", "--seed", "1", "--max-chars", "5"], capsys)
    assert code == 0 and out.startswith("No") and snapshot(run, deep=True) == before
    code, _, err = run_cli(["train", "--out", str(run), "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert (run / "model.safetensors").exists() and not (run / "model.next.safetensors").exists()
