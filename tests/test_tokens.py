"""Word and BPE tokens: round trips, exact bits per character, a BPE run end to end, and every refusal."""

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import PROVERBS, one_line_error, run_cli, tiny_flags
from hypothesis import given, settings
from hypothesis import strategies as st

from taller.apps.compare import PROGRAMS
from taller.config import Config
from taller.data.tokenizers import BpeTokenizer, CharTokenizer, WordTokenizer, load_tokenizer
from taller.errors import TallerError
from taller.evaluate import LN2, bits_per_char, evaluate, val_text
from taller.inspect.tokens import tokenize_text

TEXT = "\n".join(PROVERBS * 3) + "\n"
BPE = BpeTokenizer.train(TEXT, 300)
WORDS = WordTokenizer.train(TEXT, 60)
TINY = tiny_flags(d_model=32, d_ff=64, eval_chars=200, samples=2, prompt="No hay ", report="true")  # a report of tokens


# --- tokenizers -----------------------------------------------------------------------------------------------------


def test_word_tokenizer_keeps_frequent_words_and_spells_the_rest():
    assert WORDS.vocab_size == 60 and WORDS.words[0] == "que"  # the most frequent word of the proverbs
    ids = WORDS.encode("que no venga")
    assert WORDS.pieces[ids[0]] == "que" and WORDS.pieces[ids[1]] == " "
    spelled = WORDS.encode("zorro")  # not among the words: one token per character
    assert len(spelled) == 5 and WORDS.decode(spelled) == "zorro"
    assert WORDS.token_chars("que zorro")[1].tolist() == [3, 1, 1, 1, 1, 1, 1]
    # «�» is what <unk> decodes to: a sample that contains it reads back as <unk>, it is not an unknown character.
    assert WORDS.unknown("que \ufffd") == [] and WORDS.encode("\ufffd", unknown="error") == [WORDS.unk_id]
    with pytest.raises(TallerError, match="nunca vio"):
        WORDS.encode("que 日", unknown="error")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=sorted(set(TEXT)), max_size=120))
def test_word_round_trip_within_the_vocabulary(text):
    ids, chars = WORDS.token_chars(text)
    assert WORDS.decode(ids) == text and chars.sum() == len(text)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=120))
def test_bpe_round_trip_and_character_counts_on_arbitrary_unicode(text):
    ids, chars = BPE.token_chars(text)
    assert BPE.decode(ids) == text
    assert chars.sum() == len(text) and (chars >= 0).all() and len(chars) == len(ids)


def test_bpe_is_byte_level_and_learns_from_the_text():
    assert BPE.vocab_size == 300 and BPE.unknown("日本 🙂") == []
    assert len(BPE.encode("No hay ")) < len("No hay ")  # merged pieces: fewer tokens than characters
    assert BpeTokenizer.train(TEXT, 256).encode("ab") == [BPE.encode("a")[0], BPE.encode("b")[0]]  # bytes only
    ids, chars = BPE.token_chars("¿")  # two bytes: the token that finishes the character counts it
    assert BPE.decode(ids) == "¿" and chars.tolist()[-1] == 1 and chars.sum() == 1


@pytest.mark.parametrize("tok", [CharTokenizer.from_text(TEXT), WORDS, BPE], ids=["char", "word", "bpe"])
def test_save_and_load_every_kind(tmp_path, tok):
    tok.save(tmp_path / "tokenizer.json")
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert back.kind == tok.kind and back.vocab_size == tok.vocab_size
    assert back.encode("No hay mal") == tok.encode("No hay mal") and back.pieces == tok.pieces


def hostile_bpe(change) -> str:
    d = json.loads(BPE.to_json())
    change(d["tokenizer"])
    return json.dumps(d)


@pytest.mark.parametrize(
    "content",
    [
        "{",
        "[]",
        '{"type": "gpt2"}',
        '{"type": "word", "chars": ["a"], "words": ["a b"]}',
        '{"type": "word", "chars": ["a"], "words": "ab"}',
        '{"type": "bpe"}',
        '{"type": "bpe", "tokenizer": 3}',
        hostile_bpe(lambda t: t["model"].update(type="WordPiece")),
        hostile_bpe(lambda t: t.update(normalizer={"type": "Lowercase"})),
        hostile_bpe(lambda t: t.update(added_tokens=[{"id": 0, "content": "<s>"}])),
        hostile_bpe(lambda t: t["model"]["vocab"].update({"zz": 10**9})),
        hostile_bpe(lambda t: t["model"]["vocab"].pop("Ġ")),
        hostile_bpe(lambda t: t["model"].update(merges=[["no", "such"]] * 3)),
        hostile_bpe(lambda t: t.update(pre_tokenizer={"type": "Whitespace"})),
        hostile_bpe(lambda t: t.update(pre_tokenizer="ByteLevel")),
    ],
    ids=lambda c: c[:20],
)
def test_malformed_tokenizer_json_is_refused(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content, encoding="utf-8")
    with pytest.raises(TallerError):
        load_tokenizer(tmp_path / "tokenizer.json")


# --- bits per character ---------------------------------------------------------------------------------------------


class Uniform(torch.nn.Module):
    """Logits of zeros: every one of V tokens has probability 1/V, so each token costs ln V nats."""

    def __init__(self, V):
        super().__init__()
        self.V, self.w = V, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.V) + 0 * self.w


def test_bits_per_char_is_total_nats_over_ln2_over_characters():
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
    chars = np.array([5, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4])  # the first token is context only: its 5 never count
    score = evaluate(
        Uniform(4), val_text(ids, chars, block_size=4), torch.device("cpu"), torch.autocast("cpu", enabled=False)
    )
    assert score.tokens == 10 and score.chars == 22
    assert score.loss == pytest.approx(math.log(4))  # nats per token
    assert score.bpc == pytest.approx(10 * math.log(4) / math.log(2) / 22)  # = 20 bits / 22 characters
    assert bits_per_char(22 * LN2, 22) == pytest.approx(1.0)


def test_a_char_run_reports_loss_over_ln2(trained_run):
    s = trained_run.state
    assert s["val_bpc"] == pytest.approx(s["val_loss"] / LN2) and s["val_chars_per_token"] == 1.0


# --- a BPE run end to end -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """One BPE model, trained through `taller compare` with a `:bpe` spec; its run folder serves the other tests."""
    from taller.apps.cli import main

    root = tmp_path_factory.mktemp("bpe")
    corpus = root / "dichos.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    code = None
    try:
        main(
            [
                "compare",
                "--corpus",
                str(corpus),
                "--models",
                "transformer:bpe",
                "--max-time",
                "0.3",
                "--out",
                str(root / "cmp"),
                "--quiet",
                "--set",
                "tokenizer_vocab=280",
                *TINY,
            ]
        )
    except SystemExit as e:
        code = e.code
    assert code is None
    return root / "cmp" / "transformer-bpe", corpus


def test_bpe_training_writes_tokens_and_bits_per_character(bpe_run):
    out, _ = bpe_run
    tok = load_tokenizer(out / "tokenizer.json")
    assert tok.kind == "bpe" and tok.vocab_size == 280
    state = json.loads((out / "state.json").read_text())
    assert state["tokenizer"] == "bpe" and state["val_chars_per_token"] > 1.2 and state["train_time"] >= 0.3
    assert state["val_bpc"] == pytest.approx(state["val_loss"] / LN2 / state["val_chars_per_token"])
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val_bpc" in m for m in metrics if "val_loss" in m)
    assert (out / "table.txt").read_text(encoding="utf-8").startswith("Muestra\tPosición\tToken\tModelo\tMuestreo")
    assert (out / "report.html").exists()


def test_bpe_run_generates_and_tokenizes(bpe_run, capsys):
    out, _ = bpe_run
    code, stdout, _ = run_cli(
        [
            "generate",
            str(out),
            "--prompt",
            "No hay ",
            "--seed",
            "1",
            "--max-chars",
            "30",
            "--table",
            str(out / "t.txt"),
        ],
        capsys,
    )
    assert code == 0 and stdout.startswith("No hay ") and len(stdout.split("\n")[0]) <= len("No hay ") + 30
    code, stdout, _ = run_cli(["tokenize", str(out), "--text", "No hay mal ¿qué?"], capsys)
    assert code == 0 and "\x1b[" not in stdout  # not a terminal: plain, with separators
    assert "No│␣hay" in stdout or "No│␣h" in stdout
    assert "caracteres por token" in stdout and "ids: " in stdout and "\\xc2" in stdout


def test_tokenize_colours_tokens_apart_in_a_terminal():
    shown = tokenize_text(BPE, "No hay mal", colour=True)
    assert shown.count("\x1b[30;48;5;") == len(BPE.encode("No hay mal"))
    assert "153m" in shown and "222m" in shown  # alternating backgrounds
    assert "caracteres por token" in tokenize_text(CharTokenizer.from_text(TEXT), "No hay") and "1,00" in tokenize_text(
        CharTokenizer.from_text(TEXT), "No hay"
    )


def test_char_only_features_refuse_token_runs(bpe_run, tmp_path, capsys):
    out, corpus = bpe_run
    code, _, err = run_cli(
        ["probe", str(out), "--context", "No hay mal que por", "--candidates", "bien", "mal"], capsys
    )
    one_line_error(code, err)
    assert "carácter a carácter" in err and "--tokenizer char" in err
    code, _, err = run_cli(
        ["train", "--corpus", str(corpus), "--model", "ngram", "--tokenizer", "bpe", "--out", str(tmp_path / "ng")],
        capsys,
    )
    one_line_error(code, err)
    assert "n-grama" in err and not (tmp_path / "ng").exists()
    code, _, err = run_cli(
        ["compare", "--corpus", str(corpus), "--models", "transformer,ngram:bpe", "--out", str(tmp_path / "c")], capsys
    )
    one_line_error(code, err)
    assert not (tmp_path / "c").exists()
    (tmp_path / "texto.txt").write_text("No hay mal que por bien no venga.\n", encoding="utf-8")
    code, _, err = run_cli(["compress", str(out), str(tmp_path / "texto.txt"), "--cm"], capsys)
    assert "--cm necesita una ejecución de caracteres" in one_line_error(code, err) and "bpe" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texto.txt"]  # no .tllr written


def test_explain_and_serve_show_tokens(bpe_run):
    from fastapi.testclient import TestClient

    from taller.apps.web.app import create_app
    from taller.inspect.inside import attention_for
    from taller.runs.folder import load_run

    out, _ = bpe_run
    run = load_run(out)
    pieces, maps = attention_for(run, "No hay mal")
    assert "".join(pieces) == "No hay mal" and maps[0].shape[-1] == len(pieces)
    client = TestClient(create_app(out.parent), base_url="http://localhost")  # the server answers loopback names only
    answer = client.post("/api/predict", json={"run": out.name, "text": "No hay 日本"})
    assert answer.status_code == 200 and len(answer.json()["bars"]) == 10


def test_resume_keeps_the_run_tokenizer(bpe_run, capsys):
    out, _ = bpe_run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for change in (["--tokenizer", "word"], ["--set", "tokenizer_vocab=400"], ["--set", "d_model=64"]):
        code, _, err = run_cli(["train", "--out", str(out), "--resume", "--steps", "99", *change], capsys)
        one_line_error(code, err)
        assert "--resume" in err and ("data.tokenizer" in err or "model.d_model" in err)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched


def test_malformed_tokenizer_json_in_a_run_exits_2(bpe_run, tmp_path, capsys):
    out, _ = bpe_run
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text(hostile_bpe(lambda t: t.update(post_processor={"type": "TemplateProcessing"})))
    code, _, err = run_cli(["tokenize", str(bad), "--text", "hola"], capsys)
    one_line_error(code, err)


def test_compare_with_a_bpe_model(bpe_run):
    out, _ = bpe_run
    rows = list(csv.DictReader((out.parent / "compare.csv").open(encoding="utf-8")))
    programs = [name for name, (program, _, _) in PROGRAMS.items() if shutil.which(program)]  # 7z, zpaq: installed?
    assert [r["model"] for r in rows] == ["transformer:bpe-280", "zlib", "bz2", "lzma"] + programs + [
        "cm (sólo contar)"
    ]
    assert float(rows[0]["file_bpc"]) > float(rows[0]["val_bpc"])  # its val text, compressed: a real file
    bpe = rows[0]
    assert float(bpe["chars_per_token"]) > 1.2
    assert float(bpe["val_bpc"]) == pytest.approx(float(bpe["val_loss"]) / LN2 / float(bpe["chars_per_token"]))
    assert "car/token" in (out.parent / "compare.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "pairs, fragment",
    [
        (["tokenizer=sílabas"], "data.tokenizer"),
        (["tokenizer=bpe", "tokenizer_vocab=100"], "256"),
        (["tokenizer=word", "tokenizer_vocab=1"], "2000"),
        (["epochs=0", "max_time=5"], "al menos 1"),
    ],
)
def test_impossible_tokenizer_settings_are_explained(pairs, fragment):
    cfg = Config()
    cfg.apply_overrides(pairs)
    with pytest.raises(TallerError, match=fragment):
        cfg.validate()


def test_a_token_sample_respects_max_chars(bpe_run):
    from taller.runs.folder import load_run

    run = load_run(bpe_run[0])
    for sample in run.generate("No hay ", 3, max_chars=9, seed=2, stop=None):
        assert len(sample.generated) <= 9 and 1 <= len(sample.steps) <= 9  # no step for text that was cut off
        assert sample.unit == "Token"
