"""The lesson's commands end to end on a tiny text: compare, probe, generate at several temperatures, train --model."""

import csv
import math
import shutil
from types import SimpleNamespace

import pytest
from conftest import one_line_error, run_cli, tiny_flags, use_fake_clock

from taller.apps import compare as compare_module
from taller.apps.compare import PROGRAMS
from taller.runs.folder import load_run
from taller.runs.metrics import read_metrics

TINY = tiny_flags()


def test_compare_end_to_end(tmp_path, corpus_file, capsys, monkeypatch):
    use_fake_clock(monkeypatch, 0.25)  # every step takes 0.25 s, whatever the machine: two steps reach the 0.5 s
    out = tmp_path / "cmp"
    code, stdout, _ = run_cli(
        [
            "compare",
            "--corpus",
            str(corpus_file),
            "--models",
            "bigram,ngram,rnn,lstm,transformer",
            "--max-time",
            "0.5",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "d_model=16",
            "--set",
            "n_layers=1",
            "--set",
            "block_size=16",
            "--set",
            "batch_size=8",
            "--set",
            "eval_chars=200",
            "--set",
            "plot_every=0",
            "--set",
            "order=3",
            "--set",
            "log_every=1",
        ],
        capsys,
    )
    assert code == 0
    for name in (
        "compare.csv",
        "compare.md",
        "compare.png",
        "memory.png",
        "ngram/state.json",
        "lstm/model.safetensors",
        "transformer/table.txt",
    ):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "compare.csv").open(encoding="utf-8")))
    programs = [name for name, (program, _, _) in PROGRAMS.items() if shutil.which(program)]  # 7z, zpaq: installed?
    assert [r["model"] for r in rows] == [
        "bigram",
        "ngram",
        "rnn",
        "lstm",
        "transformer",
        "mix",
        "zlib",
        "bz2",
        "lzma",
    ] + programs + ["cm (sólo contar)", "cm + red"]
    best = min(rows[:5], key=lambda r: float(r["val_bpc"]))["model"]  # the character network the CM reads
    assert rows[-1]["parameters"] == f"red: {best}" and rows[-2]["parameters"] == "—"
    for r in rows[-2:]:  # the CM's real file: its ideal bits and the coder's few bytes at the end
        assert float(r["val_bpc"]) <= float(r["file_bpc"]) < float(r["val_bpc"]) + 8 * 8 / 160
    for r in rows[:6]:  # each model's real compressed size: the header weighs on so small a text
        assert float(r["val_bpc"]) < float(r["file_bpc"]) < float(r["val_bpc"]) + 8 * 60 / 160 + 0.5
    for r in rows:  # (on so tiny a text a compressor may even save bits: only the models must be positive)
        assert float(r["val_bpc"]) < 12 and abs(float(r["val_loss"]) / math.log(2) - float(r["val_bpc"])) < 1e-9
        assert r["sample"] == "—" or float(r["val_bpc"]) > 0
    for kind in (
        "rnn",
        "lstm",
        "transformer",
    ):  # every neural model trained for the budget: it stopped at the step that reached it
        state = load_run(out / kind).state
        times = [m["time"] for m in read_metrics(out / kind) if "train_loss" in m]  # (log_every=1)
        assert state["step"] == 2 and times == [0.25, 0.5] and state["train_time"] == 0.5
    header = next(line for line in stdout.split("\n") if line.startswith("modelo "))  # the table's
    assert "val bits/car" in header and "lzma" in stdout and "cuentas" in stdout
    assert (out / "compare.md").read_text(encoding="utf-8").count("\n|") == 13 + len(programs)  # header, rule, rows


def test_compare_without_memory_mix_or_cm_writes_none(tmp_path, corpus_file, capsys):
    out = tmp_path / "cmp"
    code, stdout, _ = run_cli(
        [
            "compare",
            "--corpus",
            str(corpus_file),
            "--models",
            "bigram,ngram",
            "--no-memory",
            "--no-mix",
            "--no-cm",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "order=3",
        ],
        capsys,
    )
    assert code == 0 and (out / "compare.png").is_file() and not (out / "memory.png").exists()
    names = [r["model"] for r in csv.DictReader((out / "compare.csv").open(encoding="utf-8"))]
    assert names[:3] == ["bigram", "ngram", "zlib"] and not any(n.startswith("cm") for n in names)
    assert f"Resultados en {out}/ (compare.csv, compare.md, compare.png y una carpeta por modelo)" in stdout


def test_reference_programs_absent_are_named_with_how_to_install(monkeypatch):
    monkeypatch.setattr(compare_module.shutil, "which", lambda program: None)  # a machine with neither 7z nor zpaq
    assert list(compare_module.compressors()) == ["zlib", "bz2", "lzma"]
    missing = compare_module.missing_compressors()
    assert [line.split(":")[0] for line in missing] == ["ppmd", "zpaq-m5"]
    assert "apt install zpaq" in missing[1] and "no está instalado" in missing[1]


@pytest.mark.skipif(not shutil.which("zpaq"), reason="zpaq is not installed here")
def test_zpaq_reads_the_training_text_before_the_val_text():
    val = b"En un lugar de la Mancha, de cuyo nombre no quiero acordarme. "
    train = val * 40
    empty = compare_module.zpaq_size(b"")  # the archive's header: the same whatever the text
    alone = compare_module.zpaq_size(val) - empty
    after = compare_module.zpaq_size(train + val) - compare_module.zpaq_size(train)
    assert 0 <= after < 4 < 30 < alone < len(val)  # a line it has read 40 times costs (almost) nothing after train


def test_zpaq_codes_train_and_train_plus_val_with_the_same_tables(monkeypatch):
    # -m5 sizes zpaq's tables by its input: the Quijote's training text alone (1.95 MB) gets blocks of 2 MiB, with
    # its validation (2.17 MB) 4 MiB, and size(train + val) − size(train) credited val with what the larger tables
    # save on train (1.560 bits/char instead of 1.713). Both archives must be made with the tables of the larger.
    assert [compare_module.zpaq_block(n) for n in (0, 1_951_283, 2_168_310)] == [0, 1, 2]
    methods = []
    monkeypatch.setattr(compare_module, "archive_size", lambda before, data, suffix, after: methods.append(after) or 1)
    monkeypatch.setattr(compare_module.shutil, "which", lambda program: program if program == "zpaq" else None)
    monkeypatch.setattr(compare_module, "COMPRESSORS", {})  # zpaq's calls only: no 4 MB for zlib, bz2 and xz
    split = SimpleNamespace(train="a" * 1_951_283, val="b" * 217_027)
    compare_module.compressor_rows(split)
    assert [after[1].split(",")[0] for after in methods] == ["x2", "x2"]  # train + val, then train alone


def test_compare_refuses_an_unknown_model(tmp_path, corpus_file, capsys):
    code, _, err = run_cli(
        ["compare", "--corpus", str(corpus_file), "--models", "ngram,gpt5", "--out", str(tmp_path / "c")], capsys
    )
    one_line_error(code, err)
    assert "gpt5" in err and not (tmp_path / "c").exists()


def probabilities(stdout: str, block: int = 0) -> list[float]:
    table = stdout.split("candidato")[block + 1].split("\n\n")[0]
    return [
        float(line.split()[1].replace(",", "."))
        for line in table.strip().split("\n")[1:]
        if not line.strip().startswith("(")
    ]


@pytest.mark.parametrize("kind", ["transformer", "ngram", "lstm"])
def test_probe_scores_whole_words_and_the_short_context(
    trained_run, trained_lstm_run, tmp_path, corpus_file, capsys, kind
):
    run = str(trained_lstm_run.dir if kind == "lstm" else trained_run.dir)
    if kind == "ngram":
        run = str(tmp_path / "ng")
        assert (
            run_cli(
                ["train", "--corpus", str(corpus_file), "--model", "ngram", "--order", "4", "--out", run, "--quiet"],
                capsys,
            )[0]
            == 0
        )
    code, stdout, _ = run_cli(
        [
            "probe",
            run,
            "--context",
            "Más vale pájaro en mano que ciento. No hay mal que por",
            "--candidates",
            "bien",
            "mal",
            "nunca",
            "--also-short",
        ],
        capsys,
    )
    assert code == 0
    for block in (0, 1):
        probs = probabilities(stdout, block)
        assert len(probs) == 3 and abs(sum(probs) - 1) < 2e-3
    assert "bits/carácter" in stdout and "Sólo la última frase: «No hay mal que por»" in stdout
    code, stdout, _ = run_cli(["probe", run, "--example", "coche"], capsys)  # its characters are replaced
    assert code == 0 and "concesionario" in stdout and "sustituido" in stdout
    assert abs(sum(probabilities(stdout)) - 1) < 2e-3


def test_probe_bad_input(trained_run, capsys):
    for args in (["--context", "No hay"], ["--context", "No hay", "--candidates", "mal"], ["--example", "moto"]):
        code, _, err = run_cli(["probe", str(trained_run.dir), *args], capsys)
        one_line_error(code, err)


def test_generate_several_temperatures_side_by_side(trained_run, capsys):
    code, stdout, _ = run_cli(
        [
            "generate",
            str(trained_run.dir),
            "--prompt",
            "No hay ",
            "--temperature",
            "0.2",
            "0.7",
            "1.2",
            "--seed",
            "4",
            "--max-chars",
            "40",
        ],
        capsys,
    )
    assert code == 0
    head = stdout.split("\n")[0]
    assert head.count("|") == 2 and "temperatura 0.2" in head and "temperatura 1.2" in head
    code, _, err = run_cli(["generate", str(trained_run.dir), "--temperature", "0.7", "0"], capsys)
    one_line_error(code, err)


def test_train_model_lstm_from_the_command_line(tmp_path, corpus_file, capsys):
    out = tmp_path / "l"
    code, _, err = run_cli(
        ["train", "--corpus", str(corpus_file), "--model", "lstm", "--steps", "5", "--out", str(out), "--quiet", *TINY],
        capsys,
    )
    one_line_error(code, err)  # TINY sets n_heads and d_ff: keys an LSTM does not have, named as such
    assert "'n_heads' es una clave de otro modelo" in err and not out.exists()
    lstm_keys = [
        arg for pair in zip(TINY[::2], TINY[1::2]) if not pair[1].startswith(("n_heads", "d_ff")) for arg in pair
    ]  # ("--set", "key=value") pairs an LSTM has
    code, stdout, _ = run_cli(
        [
            "train",
            "--corpus",
            str(corpus_file),
            "--model",
            "lstm",
            "--steps",
            "5",
            "--out",
            str(out),
            "--quiet",
            *lstm_keys,
        ],
        capsys,
    )
    assert code == 0
    assert load_run(out).config.model.kind == "lstm"
