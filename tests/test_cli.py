"""The command line end to end on a tiny corpus, and every kind of bad input: one line, exit code 2."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROVERBS, copy_run, one_line_error, run_cli, snapshot, tiny_flags

from taller.apps.cli import main
from taller.runs.checkpoint import FORMAT_VERSION
from taller.runs.folder import load_run

TINY = tiny_flags(
    d_model=32,
    n_layers=2,
    d_ff=64,
    eval_chars=200,
    log_every=5,
    samples=3,
    plot_every=1,
    report="true",
    health_every=100,
)  # every artefact


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    out = root / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", "--corpus", str(corpus), "--epochs", "3", "--out", str(out), "--quiet", "--seed", "3", *TINY])
        sys.exit(0)
    assert e.value.code == 0
    return out, corpus


def test_train_writes_every_artefact(cli_run):
    out, _ = cli_run
    names = {p.name for p in out.iterdir()}
    for name in [
        "config.toml",
        "tokenizer.json",
        "model.safetensors",
        "best.safetensors",
        "optim.safetensors",
        "state.json",
        "metrics.jsonl",
        "parameters.txt",
        "loss.png",
        "samples.txt",
        "table.txt",
        "epoch_000.safetensors",
        "evolution.jsonl",
        "attention.png",
        "embeddings.png",
        "evolution.png",
        "report.html",
    ]:
        assert name in names, name
    assert {"epoch_000.png", "epoch_001.png", "epoch_002.png", "epoch_003.png"} <= names
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "type='range'" in report and "Época 3" in report and report.count("data:image/png;base64,") >= 4 + 5
    assert "memory.png" not in names and "la dibuja" in report  # the memory curve: `taller report` draws it
    assert not [n for n in names if ".next." in n or n.endswith(".tmp")]
    run = load_run(out)
    total = sum(p.numel() for p in run.model.parameters())
    text = (out / "parameters.txt").read_text(encoding="utf-8")
    assert f"Total: {total:,} parámetros".replace(",", ".") in text
    assert "atención" in text and "feed-forward" in text and "embedding" in text
    assert len((out / "samples.txt").read_text(encoding="utf-8").strip().split("\n")) == 3
    assert run.state["finished"] and run.state["epoch"] == 3


def check_table(path: Path, samples: int):
    rows = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    header = rows[0].split("\t")
    assert header == (["Muestra"] if samples > 1 else []) + ["Posición", "Carácter", "Modelo", "Muestreo"]
    body = [r.split("\t") for r in rows[1:]]
    assert body and len(body) % 5 == 0
    for i in range(0, len(body), 5):
        group = body[i : i + 5]
        assert len({tuple(r[:-3]) for r in group}) == 1  # five rows for one position
        for column in (-2, -1):  # the model's probabilities, and the sampling's: the same order
            probs = [float(r[column]) for r in group]
            assert all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
    return body


def test_table_txt(cli_run):
    check_table(cli_run[0] / "table.txt", samples=3)


def test_generate_prompt_show_probs_and_table(cli_run, capsys, tmp_path):
    out, _ = cli_run
    code, stdout, _ = run_cli(
        [
            "generate",
            str(out),
            "--prompt",
            "No hay ",
            "-n",
            "2",
            "--seed",
            "1",
            "--show-probs",
            "--table",
            str(tmp_path / "t.txt"),
        ],
        capsys,
    )
    assert code == 0
    texts = [line for line in stdout.split("\n") if line.startswith("No hay ")]
    assert len(texts) == 2
    assert "Posición" in stdout and "candidatos" in stdout
    body = check_table(tmp_path / "t.txt", samples=2)
    assert {r[0] for r in body} == {"1", "2"}
    code2, stdout2, _ = run_cli(["generate", str(out), "--prompt", "No hay ", "-n", "2", "--seed", "1"], capsys)
    assert [s for s in stdout2.split("\n") if s.startswith("No hay ")] == texts  # same seed, same samples


def test_generate_greedy_is_deterministic_and_stops_at_the_end_of_the_line(cli_run, capsys):
    out, _ = cli_run
    a = run_cli(["generate", str(out), "--prompt", "Más ", "--greedy", "--max-chars", "300"], capsys)[1]
    b = run_cli(["generate", str(out), "--prompt", "Más ", "--greedy", "--max-chars", "300"], capsys)[1]
    assert a == b and a.startswith("Más ") and a.count("\n") == 1


def test_unknown_characters_in_a_prompt(cli_run, capsys):
    out, _ = cli_run
    code, _, err = run_cli(["generate", str(out), "--prompt", "Ñandú ¿€?"], capsys)
    one_line_error(code, err)
    assert "'€'" in err and "--reemplazar-desconocidos" in err
    code, stdout, _ = run_cli(
        ["generate", str(out), "--prompt", "Ñandú ¿€?", "--reemplazar-desconocidos", "--seed", "0"], capsys
    )
    assert code == 0 and stdout.startswith("Ñandú ¿€?")  # the user's own prompt is shown...
    # ...and the model read it as Ñ and ú without their marks (the proverbs have N and u) and ¿, € and ? as spaces
    # (they have no mark to lose): the same continuation as from that prompt typed by hand, with the same seed
    code, typed, _ = run_cli(["generate", str(out), "--prompt", "Nandu    ", "--seed", "0"], capsys)
    assert code == 0 and typed.startswith("Nandu    ") and len(typed) > 20
    assert stdout[len("Ñandú ¿€?") :] == typed[len("Nandu    ") :]


@pytest.mark.parametrize(
    "setting, fragment", [("d_model=33", "divisible"), ("lr=-1", "train.lr"), ("sabor=fresa", "clave desconocida")]
)
def test_impossible_config(cli_run, capsys, tmp_path, setting, fragment):
    _, corpus = cli_run
    out = tmp_path / "nuevo"
    code, _, err = run_cli(["train", "--corpus", str(corpus), "--out", str(out), *TINY, "--set", setting], capsys)
    one_line_error(code, err)
    assert fragment in err and not out.exists()


@pytest.mark.parametrize("content", [None, b"", b"\x7fELF\x02\x01\x01\x00\x00\x00binary", b"\xff\xfe\x00h\x00o"])
def test_bad_corpus_files(capsys, tmp_path, content):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(["train", "--corpus", str(path), "--out", str(tmp_path / "r"), *TINY], capsys)
    one_line_error(code, err)
    assert not (tmp_path / "r").exists()


def test_a_failed_command_never_overwrites_an_existing_run(cli_run, capsys):
    out, corpus = cli_run
    before = snapshot(out)
    code, _, err = run_cli(["train", "--corpus", str(corpus), "--out", str(out), *TINY, "--steps", "2"], capsys)
    one_line_error(code, err)
    assert "--resume" in err
    code, _, err = run_cli(
        ["train", "--corpus", str(corpus), "--out", str(out), "--resume", "--set", "d_model=hola"], capsys
    )
    one_line_error(code, err)
    assert snapshot(out) == before


@pytest.mark.parametrize("damage", ["random", "truncated", "pickle", "huge-header", "wrong-shape", "state"])
def test_corrupt_checkpoints_are_refused(cli_run, capsys, tmp_path, damage):
    run = copy_run(cli_run[0], tmp_path / "copia")
    model = run / "model.safetensors"
    marker = tmp_path / "pwned"
    if damage == "random":
        model.write_bytes(os.urandom(5000))
    elif damage == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "pickle":

        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        model.write_bytes(pickle.dumps(Payload()))
    elif damage == "huge-header":
        model.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    elif damage == "wrong-shape":
        from safetensors.torch import save_file

        tensors = {k: torch.zeros(3) for k in load_run(cli_run[0]).model.state_dict()}
        save_file(tensors, str(model))
    elif damage == "state":
        (run / "state.json").write_text('{"format": 1, "step": "diez"}')
    code, _, err = run_cli(["generate", str(run), "--prompt", "No"], capsys)
    one_line_error(code, err)
    assert not marker.exists()


def test_newer_format_names_both_versions(cli_run, capsys, tmp_path):
    import json

    run = copy_run(cli_run[0], tmp_path / "copia")
    state = json.loads((run / "state.json").read_text())
    state["format"] = 99
    (run / "state.json").write_text(json.dumps(state))
    code, _, err = run_cli(["generate", str(run)], capsys)
    one_line_error(code, err)
    assert "con el formato 99" in err and f"lee hasta el {FORMAT_VERSION}" in err


def test_unknown_run_and_argument_errors(capsys, tmp_path):
    code, _, err = run_cli(["generate", str(tmp_path / "no-existe")], capsys)
    one_line_error(code, err)
    code, _, err = run_cli(["train", "--epochs", "0"], capsys)
    assert code == 2 and "Traceback" not in err
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "uso:" in out and "entrena" in out


def test_the_installed_command_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "TALLER_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "taller", "train", "--corpus", str(tmp_path / "falta.txt")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no existe" in result.stderr and result.stdout == ""


def test_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    reader, writer = os.pipe()
    os.close(reader)  # `taller corpus list | head -0`: nobody reads what it prints
    result = subprocess.run(
        [sys.executable, "-m", "taller", "corpus", "list"],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TALLER_CACHE": str(tmp_path)},
    )
    os.close(writer)
    assert result.returncode == 1 and result.stderr == ""
