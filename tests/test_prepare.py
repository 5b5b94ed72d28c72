"""`taller prepare`: a text streamed into a token file, and training that reads its windows from disk."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import PROVERBS, run_cli, tiny_config

import taller
from taller.data import prepare as prepare_module
from taller.data.batches import Batches
from taller.data.corpora import read_text_file
from taller.data.prepare import prepare
from taller.data.prepared import TokenFile, open_prepared, read_meta
from taller.data.tokenizers import BpeTokenizer, CharTokenizer, load_tokenizer, smallest_dtype
from taller.runs.metrics import read_metrics


def test_the_smallest_dtype_that_holds_the_vocabulary():
    assert [smallest_dtype(v).name for v in (1, 256, 257, 65536, 65537, 1_114_112)] == [
        "uint8",
        "uint8",
        "uint16",
        "uint16",
        "uint32",
        "uint32",
    ]


def test_streamed_chunks_give_back_the_text_exactly(tmp_path, monkeypatch):
    # A BOM, Windows newlines, accents, ñ and a character beyond 16 bits, read 5 bytes at a time: multi-byte
    # characters and \r\n pairs are cut between chunks.
    text = "\ufeffEl señor\r\nÁngel🙂 dijo: «¡ñu!»\r\n" * 40 + "fin\r"
    source = tmp_path / "t.txt"
    source.write_bytes(text.encode("utf-8"))
    monkeypatch.setattr(prepare_module, "CHUNK", 5)
    meta = prepare(source, tmp_path / "p", progress=False, log=lambda *a: None)
    expected = read_text_file(source)  # what training on the text file would see
    tokenizer = CharTokenizer.load(tmp_path / "p" / "tokenizer.json")
    assert tokenizer.chars == CharTokenizer.from_text(expected).chars
    ids = np.fromfile(tmp_path / "p" / "tokens.bin", dtype=meta["dtype"])
    assert meta["dtype"] == "uint8" and meta["count"] == len(ids) == meta["characters"] == len(expected)
    assert tokenizer.decode(ids) == expected
    assert meta["count"] - meta["split"] == round(len(expected) * 0.1)  # val: the last tenth (capped at 250,000)
    assert meta["source"]["bytes"] == source.stat().st_size and len(meta["source"]["sha256"]) == 64


def test_windows_read_from_disk_are_the_windows_of_the_text(tmp_path):
    source = tmp_path / "t.txt"
    source.write_text("\n".join(PROVERBS * 5) + "\n", encoding="utf-8")
    prepare(source, tmp_path / "p", progress=False, log=lambda *a: None)
    cfg = tiny_config(tmp_path / "p")
    _, _, tokenizer, train, val = open_prepared(cfg.data)
    in_memory = tokenizer.encode_array(read_text_file(source))[: len(train)]
    disk = train.batches(cfg, torch.device("cpu"), 8)
    memory = Batches(in_memory, cfg.model.block_size, 8, torch.device("cpu"), seed=cfg.train.seed + 1)
    for _ in range(5):  # the same generator draws the same starts: the same windows, read from disk
        (xd, yd), (xm, ym) = disk.next(), memory.next()
        assert xd.shape == (8, 16) and torch.equal(xd, xm) and torch.equal(yd, ym)
    assert np.array_equal(val, tokenizer.encode_array(read_text_file(source))[len(train) :])


def test_training_from_a_prepared_folder_equals_training_from_the_text(tmp_path):
    source = tmp_path / "libro.txt"
    source.write_text(("En un lugar de la Mancha, de cuyo nombre no quiero acordarme. " * 20)[:1200], encoding="utf-8")
    prepare(source, tmp_path / "p", progress=False, log=lambda *a: None)
    settings = dict(split="tail", max_steps=12, log_every=1, samples=1, prompt="En ", mix_slice=0.0)  # (nothing is
    # left for a mix from a prepared folder: a mix reads text)
    text = taller.train(tiny_config(source, **settings), tmp_path / "a", progress=False)
    disk = taller.train(tiny_config(tmp_path / "p", **settings), tmp_path / "b", progress=False)
    assert read_metrics(text.dir)[-1]["val_loss"] == read_metrics(disk.dir)[-1]["val_loss"]
    assert [m.get("train_loss") for m in read_metrics(text.dir)] == [
        m.get("train_loss") for m in read_metrics(disk.dir)
    ]
    assert disk.state["split"] == "prepared" and (tmp_path / "b" / "samples.txt").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no existe el fichero"),
        (b"", "está vacío"),
        (b"  \n\t\n", "sólo tiene espacios"),
        (b"PK\x03\x04\x00\x00binario", "parece un fichero binario"),
        ("año".encode("latin-1"), "no es texto UTF-8"),
    ],
)
def test_bad_input_is_one_spanish_line_and_exit_2(tmp_path, capsys, content, message):
    source = tmp_path / "x.txt"
    if content is not None:
        source.write_bytes(content)
    code, _, err = run_cli(["prepare", "--corpus", str(source), "--out", str(tmp_path / "p"), "--quiet"], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "p" / "tokens.bin").exists()


def test_damaged_prepared_folders_are_refused_before_training(tmp_path, capsys):
    source = tmp_path / "t.txt"
    source.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    assert run_cli(["prepare", "--corpus", str(source), "--out", str(tmp_path / "p"), "--quiet"], capsys)[0] == 0
    code, _, err = run_cli(["prepare", "--corpus", str(source), "--out", str(tmp_path / "p"), "--quiet"], capsys)
    assert code == 2 and "ya existe" in err
    meta = read_meta(tmp_path / "p")
    first = TokenFile(tmp_path / "p" / "tokens.bin", smallest_dtype(meta["vocab_size"]), 0, 10).read(0, 10)
    assert (
        load_tokenizer(tmp_path / "p" / "tokenizer.json").decode(first) == PROVERBS[0][:10]
    )  # intact before the damage

    def train_error():
        code, _, err = run_cli(
            ["train", "--corpus", str(tmp_path / "p"), "--out", str(tmp_path / "run"), "--steps", "1"], capsys
        )
        return code, err

    tokens = tmp_path / "p" / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-3])  # truncated
    code, err = train_error()
    assert code == 2 and "incompleto" in err and "taller prepare" in err
    (tmp_path / "p" / "meta.json").write_text("{no es json", encoding="utf-8")
    code, err = train_error()
    assert code == 2 and "no es JSON válido" in err
    (tmp_path / "p" / "meta.json").write_text(json.dumps({**meta, "split": meta["count"]}), encoding="utf-8")
    assert "split=" in train_error()[1]
    (tmp_path / "p" / "meta.json").unlink()
    code, err = train_error()
    assert code == 2 and "no un corpus preparado" in err
    assert not (tmp_path / "run").exists()


def test_a_given_vocabulary_must_cover_the_text(tmp_path, capsys):
    source = tmp_path / "t.txt"
    source.write_text("\n".join(PROVERBS) + "\n", encoding="utf-8")
    CharTokenizer.from_text("No hay mal que por bien\n").save(tmp_path / "tokenizer.json")
    code, _, err = run_cli(
        [
            "prepare",
            "--corpus",
            str(source),
            "--out",
            str(tmp_path / "p"),
            "--quiet",
            "--tokenizer-file",
            str(tmp_path / "tokenizer.json"),
        ],
        capsys,
    )
    assert code == 2 and "no están en el vocabulario dado" in err and "'v'" in err and err.count("\n") == 1
    assert not (tmp_path / "p" / "tokens.bin").exists() and not (tmp_path / "p" / "meta.json").exists()


def test_a_prepared_folder_with_a_bpe_vocabulary_scores_bits_per_character(tmp_path):
    source = tmp_path / "t.txt"
    source.write_text("\n".join(PROVERBS * 6) + "\n", encoding="utf-8")
    BpeTokenizer.train(source.read_text(encoding="utf-8"), 300).save(tmp_path / "bpe.json")
    meta = prepare(
        source, tmp_path / "p", tokenizer=load_tokenizer(tmp_path / "bpe.json"), progress=False, log=lambda *a: None
    )
    assert meta["tokenizer"] == "bpe" and meta["vocab_size"] == 300 and meta["dtype"] == "uint16"
    run = taller.train(tiny_config(tmp_path / "p", max_steps=6), tmp_path / "run", progress=False)
    final = read_metrics(run.dir)[-1]
    chars_per_token = run.state["val_chars_per_token"]
    assert run.state["tokenizer"] == "bpe" and chars_per_token > 1.5  # merges: several characters per token
    assert final["val_bpc"] == pytest.approx(final["val_loss"] / math.log(2) / chars_per_token, rel=1e-9)


def test_a_prepared_folder_keeps_its_tokenizer_and_is_not_for_compare(tmp_path, capsys):
    source = tmp_path / "t.txt"
    source.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    prepare(source, tmp_path / "p", progress=False, log=lambda *a: None)
    code, _, err = run_cli(
        ["train", "--corpus", str(tmp_path / "p"), "--tokenizer", "bpe", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "ya está tokenizado (char)" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()
    code, _, err = run_cli(
        [
            "compare",
            "--corpus",
            str(tmp_path / "p"),
            "--models",
            "transformer",
            "--max-time",
            "1",
            "--out",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    assert code == 2 and "carpeta preparada" in err and not (tmp_path / "c").exists()


def test_a_folder_named_like_a_built_in_corpus_does_not_hide_it(tmp_path, monkeypatch):
    from taller.data.prepared import is_prepared

    monkeypatch.chdir(tmp_path)
    (tmp_path / "refranes").mkdir()
    (tmp_path / "mios").mkdir()
    assert not is_prepared("refranes") and is_prepared("./refranes") and is_prepared("mios")


def test_the_streamed_line_check_agrees_with_looks_like_lines():
    import random

    from taller.data.corpora import looks_like_lines
    from taller.data.prepare import LineShape

    rng = random.Random(0)
    proverbs = "\n".join(PROVERBS * 3)
    for _ in range(2000):
        text = "".join(rng.choice(["a", "b", " ", "\n", "\n\n", "x" * 400]) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.4:  # a corpus of lines, with an ending that may or may not spoil it
            text = proverbs + rng.choice(["", "\n", "\n\n\n", " \n", "\n\nfin", "\n" + "y" * 1001])
        shape, i = LineShape(), 0
        while i < len(text):  # fed in random pieces, as chunks cut lines anywhere
            step = rng.randint(1, 9)
            shape.feed(text[i : i + step])
            i += step
        assert shape.result() == looks_like_lines(text), repr(text[-60:])


def test_a_prepared_corpus_of_lines_is_trained_as_lines(tmp_path):
    source, prose = tmp_path / "dichos.txt", tmp_path / "prosa.txt"
    source.write_text("\n".join(PROVERBS * 4) + "\n", encoding="utf-8")
    prose.write_text(" ".join(PROVERBS * 4) + "\n", encoding="utf-8")  # one line of 1,500+ characters
    assert prepare(prose, tmp_path / "q", progress=False, log=lambda *a: None)["lines"] is False
    assert prepare(source, tmp_path / "p", progress=False, log=lambda *a: None)["lines"] is True
    run = taller.train(tiny_config(tmp_path / "p", max_steps=4, samples=2), tmp_path / "run", progress=False)
    assert run.state["line_corpus"] is True
