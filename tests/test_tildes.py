"""«Tildes»: accents stripped and put back — the task's data, the lookup, the noisy channel, the BERT tagger, the
command."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import PROVERBS, one_line_error, run_cli, tiny_config
from fastapi.testclient import TestClient

import taller
from taller.apps.web.app import create_app
from taller.config import Config, DataConfig
from taller.data.accents import (
    ACUTE,
    DIAERESIS,
    NONE,
    Lookup,
    apply_marks,
    form_table,
    marks_of,
    strip,
    word_scores,
    words,
)
from taller.data.corpora import prepare_corpus
from taller.data.split import split_corpus
from taller.data.tokenizers import CharTokenizer
from taller.errors import TallerError
from taller.inspect import tildes as tildes_module
from taller.inspect.tildes import allowed_marks, char_ids, fix_text, marked, noisy_channel, write_text
from taller.models import build_model
from taller.models.bert import TaggerConfig
from taller.training.tildes import form_loss, starting_run


def test_strip_takes_off_acute_and_diaeresis_and_keeps_the_enye():
    text = "Él está aquí; ¿Qué? PINGÜINO, niño, Ángel"
    assert strip(text) == "El esta aqui; ¿Que? PINGUINO, niño, Angel"
    assert len(strip(text)) == len(text)
    marks = marks_of(text)
    assert marks[0] == ACUTE and marks[text.index("Ü")] == DIAERESIS and marks[text.index("ñ")] == NONE
    assert apply_marks(strip(text), marks) == text  # the marks are the whole answer


def test_a_mark_a_letter_cannot_carry_leaves_it_bare():
    assert apply_marks("bau", [ACUTE, DIAERESIS, DIAERESIS]) == "baü"  # b: no acute; a: no diaeresis; u: ü
    assert apply_marks("ñAU", [ACUTE, ACUTE, DIAERESIS]) == "ñÁÜ"


def test_the_lookup_writes_each_words_most_frequent_training_form():
    lookup = Lookup("está está esta sí sí si Si mas más más más")
    assert lookup.fix("esta si mas nunca") == "está sí más nunca"  # a word never seen stays as it is
    assert lookup.fix("Si") == "Si" and lookup.candidates("esta") == ["está", "esta"]
    assert not lookup.ambiguous("esta")  # 3 occurrences: fewer than 10
    many = Lookup("esta " * 19 + "está")  # 20 occurrences, the second form at exactly 5 %
    assert many.ambiguous("esta") and not Lookup("esta " * 20 + "está").ambiguous("esta")


def test_word_scores_count_words_errors_and_the_ambiguous_ones():
    lookup = Lookup("esta " * 10 + "está " * 10 + "casa")
    scores = word_scores("esta casa, esta casa", "está casa, esta casa", lookup)
    assert scores == {"words": 4, "errors": 1, "accuracy": 0.75, "ambiguous": 2, "ambiguous_accuracy": 0.5}


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    """A 6-gram of a text where «esta» and «está» differ only by the word after them; the lookup writes «está»."""
    root = tmp_path_factory.mktemp("tildes-ngram")
    train = "esta casa es grande.\n" * 4 + "está cansado hoy.\n" * 6
    corpus = root / "texto.txt"
    corpus.write_text(train * 9 + "esta casa es grande.\nestá cansado hoy.\n" * 2, encoding="utf-8")
    cfg = Config.preset("ngram")
    cfg.data.corpus, cfg.data.split, cfg.model.order, cfg.train.samples = str(corpus), "tail", 6, 0
    run = taller.train(cfg, root / "ngram", progress=False, log=lambda *a: None)
    return run, Lookup(train * 9)


def test_the_noisy_channel_reads_the_word_after(channel):
    run, lookup = channel
    text = "esta casa es grande.\nesta cansado hoy.\n"
    assert lookup.fix(text) == "está casa es grande.\nestá cansado hoy.\n"  # the lookup cannot tell them apart
    assert noisy_channel(run, lookup, text) == "esta casa es grande.\nestá cansado hoy.\n"
    assert noisy_channel(run, lookup, "Nada") == "Nada"  # nothing to choose


def tiny_tagger(vocab: str, bias: list[float]):
    """An untrained tagger whose head answers `bias` everywhere (its weights zeroed): which marks come out is then
    decided by what each letter can carry."""
    cfg = TaggerConfig(vocab_size=len(vocab), block_size=8, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor(bias))
    return model, CharTokenizer(sorted(set(vocab)))


def test_the_tagger_never_puts_an_impossible_mark_and_keeps_the_length():
    text = "pinguino y bcd, Uva a la AUA rapido"  # longer than the window: overlapping windows answer
    model, tok = tiny_tagger(text, [0.0, 10.0, -10.0])  # acute wherever allowed
    assert fix_text(model, tok, text) == "píngúínó y bcd, Úvá á lá ÁÚÁ rápídó"
    model, tok = tiny_tagger(text, [0.0, -10.0, 10.0])  # diaeresis wherever allowed, else none (0 > -10)
    assert fix_text(model, tok, text) == "pingüino y bcd, Üva a la AÜA rapido"
    model, tok = tiny_tagger(text, [10.0, 0.0, 0.0])  # none everywhere: the input itself
    assert fix_text(model, tok, text) == text
    assert fix_text(model, tok, "ñandú ¿x?") == "ñandu ¿x?"  # unknown characters keep their place


def test_the_noisy_channel_adds_a_taggers_scores_to_the_language_models(channel):
    run, lookup = channel
    text = "esta casa es grande.\nesta cansado hoy.\n"
    model, tok = tiny_tagger(text, [50.0, -50.0, -50.0])  # sure that no letter carries a mark: -100 for «está»
    assert noisy_channel(run, lookup, text, tagger=SimpleNamespace(model=model, tokenizer=tok)) == text
    model, tok = tiny_tagger(text, [0.0, 0.0, 0.0])  # undecided: «esta» and «está» score the same, the 6-gram decides
    fixed = noisy_channel(run, lookup, text, tagger=SimpleNamespace(model=model, tokenizer=tok))
    assert fixed == "esta casa es grande.\nestá cansado hoy.\n"


def test_the_channel_weighs_capitals_and_a_taggers_guess_for_a_word_never_seen():
    lookup = Lookup("que dijo qué hora es qué que que. el perro y él")
    assert tildes_module.channel_forms("que", lookup, "qué") == ["que", "qué"]  # its training forms, commonest first
    assert tildes_module.channel_forms("Que", lookup) == ["Que", "Qué"]  # only seen in small letters
    assert tildes_module.channel_forms("cancion", lookup, "canción") == ["cancion", "canción"]  # never seen: a guess
    assert tildes_module.channel_forms("cancion", lookup) == ["cancion"]  # without a tagger, nothing to weigh
    assert tildes_module.channel_forms("perro", lookup, "pérro") == ["perro"]  # seen with one form: that one
    rows = np.array([[-0.1, -2.3, -np.inf], [-0.5, -0.9, -np.inf]])  # (L, N_MARKS): the acute loses everywhere
    assert tildes_module.one_acute(rows) == [0, 0] and tildes_module.one_acute(rows, always=True) == [0, 1]


def test_a_word_seen_in_training_takes_one_of_its_training_forms():
    text = "esta pinguino Esta, rapido"
    model, tok = tiny_tagger(text, [0.0, 10.0, -10.0])  # acute wherever allowed
    lookup = Lookup("esta está está pingüino")
    # «esta»: «está» (the acute on its last letter is the likelier form); «pinguino»: its one form, whatever the tagger
    # says; «Esta»: the forms of «esta»; «rapido», never seen: the tagger's own marks, one acute at most
    assert fix_text(model, tok, text, lookup) == "está pingüino Está, rápido"  # one acute at most
    model, tok = tiny_tagger(text, [10.0, -10.0, -10.0])  # none everywhere: «esta» stays as it is
    assert fix_text(model, tok, text, lookup) == "esta pingüino Esta, rapido"


def test_the_tagger_learns_the_choice_among_a_words_training_forms():
    text = "el él el casa"
    forms, back, truth = form_table(text, Lookup(text))  # «el»: two forms, «el» (twice) and «él»; «casa»: one
    assert forms[:2].tolist() == [[0, 1, -1], [0, 0, -1]] and bool(forms[9:].eq(-1).all())
    assert back[:9].tolist() == [-1, 1, -1, -1, 1, -1, -1, 1, -1] and truth[:9].tolist() == [-1, 0, -1, -1, 1] + [
        -1,
        -1,
        0,
        -1,
    ]
    tok = CharTokenizer(sorted(set(strip(text))))
    x = char_ids(tok, strip(text))[None]  # (1, N)
    allowed = allowed_marks(tok)[x]  # (1, N, N_MARKS): «e» none or acute, «l» and « » none only
    logits = torch.tensor([0.8, 0.2, 0.5]).log().expand(1, len(text), 3)
    loss = form_loss(logits, allowed, forms[None], back[None], truth[None])
    # each form's score is its «e»'s mark: log 0,8 for «el», log 0,2 for «él»; the words: «el», «él», «el»
    assert loss.item() == pytest.approx(-(2 * math.log(0.8) + math.log(0.2)) / 3)
    cut = form_loss(logits[:, 4:], allowed[:, 4:], forms[None, 4:], back[None, 4:], truth[None, 4:])
    assert cut.item() == pytest.approx(-math.log(0.8))  # a window that cuts «él» leaves it out
    assert form_loss(logits[:, 9:], allowed[:, 9:], forms[None, 9:], back[None, 9:], truth[None, 9:]).item() == 0.0


def tagger_config(corpus, **overrides):
    cfg = tiny_config(
        corpus,
        **{
            "max_steps": 200,
            "samples": 0,
            "batch_size": 16,
            "lr": 3e-3,
            "block_size": 32,
            "split": "tail",
            **overrides,
        },
    )
    cfg.set_kind("bert-tildes")
    return cfg


SONG = "la canción del camión y el ratón en el balcón.\n"  # every «o» carries the acute, no other letter does


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory):
    """A tiny tagger trained for 200 steps (seconds) on a text whose rule it can learn that fast."""
    root = tmp_path_factory.mktemp("tildes")
    corpus = root / "cancion.txt"
    corpus.write_text(SONG * 60, encoding="utf-8")
    return taller.train(tagger_config(corpus), root / "run", progress=False, log=lambda *a: None)


def test_a_tagger_learns_the_accents_of_its_text_and_round_trips(tagger_run, capsys):
    state = json.loads((tagger_run.dir / "state.json").read_text())
    assert state["finished"] and state["val_accuracy"] == 1.0 and state["val_words_accuracy"] == 1.0
    assert state["val_words_words"] > 50 and state["step"] == 200
    # on a text that has its accents, stripping and fixing gives the input back
    assert fix_text(tagger_run.model, tagger_run.tokenizer, SONG * 3) == SONG * 3
    text = "el raton y la cancion"
    code, out, _ = run_cli(["tildes", str(tagger_run.dir), "--text", text], capsys)
    assert code == 0 and out == marked(text, "el ratón y la canción") + "\n"
    assert out.split("\n")[1] == "      ^            ^"


def test_tildes_fixes_a_file_and_refuses_what_it_must(tagger_run, tmp_path, capsys):
    source, target = tmp_path / "sin.txt", tmp_path / "con.txt"
    source.write_text("el raton\ndel balcon\n", encoding="utf-8")
    code, out, _ = run_cli(["tildes", str(tagger_run.dir), "--file", str(source), "-o", str(target)], capsys)
    assert code == 0 and target.read_text(encoding="utf-8") == "el ratón\ndel balcón\n" and "2 letras" in out
    for args, expected in (
        (["--file", str(source), "-o", str(source)], "entrada"),
        (["--file", str(source), "-o", str(tagger_run.dir / "config.toml")], "ejecución"),
        (["--file", str(source), "-o", str(target)], "--force"),
        (["--text", "   "], "vacío"),
        (["--file", str(source)], "-o"),
        (["--file", str(tmp_path / "no.txt"), "-o", str(tmp_path / "b.txt")], "no existe"),
    ):
        line = one_line_error(*run_cli(["tildes", str(tagger_run.dir), *args], capsys)[::2])
        assert expected in line, line
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x00\x01\xff" * 10)
    line = one_line_error(
        *run_cli(["tildes", str(tagger_run.dir), "--file", str(binary), "-o", str(tmp_path / "c.txt")], capsys)[::2]
    )
    assert "binario" in line and not (tmp_path / "c.txt").exists()


def test_tildes_reads_a_bounded_file(tagger_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tildes_module, "TEXT_LIMIT", 100)
    big = tmp_path / "grande.txt"
    big.write_text("esta casa " * 20, encoding="utf-8")
    line = one_line_error(
        *run_cli(["tildes", str(tagger_run.dir), "--file", str(big), "-o", str(tmp_path / "d.txt")], capsys)[::2]
    )
    assert "límite" in line and not (tmp_path / "d.txt").exists()


def test_a_run_that_cannot_fix_accents_is_refused(tmp_path, capsys):
    corpus = tmp_path / "dichos.txt"
    corpus.write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    cfg = tiny_config(corpus, max_steps=2, samples=0)
    cfg.set_kind("bert")
    run = taller.train(cfg, tmp_path / "bert", progress=False, log=lambda *a: None)
    line = one_line_error(*run_cli(["tildes", str(run.dir), "--text", "el dijo que si"], capsys)[::2])
    assert "es un BERT" in line


def test_a_language_model_fixes_accents_through_the_noisy_channel(trained_run, capsys):
    code, out, _ = run_cli(["tildes", str(trained_run.dir), "--text", "Mas vale tarde que nunca."], capsys)
    assert code == 0 and out.split("\n")[0] == "Más vale tarde que nunca."  # «Mas»: one form in its text
    text = "Dime con quien andas y te dire quien eres, a quien madruga Dios le ayuda."  # «quien»: two forms
    code, out, _ = run_cli(["tildes", str(trained_run.dir), "--text", text], capsys)  # longer than its window (16)
    fixed = out.split("\n")[0]
    assert code == 0 and strip(fixed) == text and "te diré qui" in fixed  # «dire»: one form, «diré»


def test_marked_puts_carets_under_the_changed_letters():
    assert marked("el esta\nbien", "él está\nbien") == "él está\n^     ^\nbien"


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    """A tiny T5 de tildes trained for 20 steps: too few to learn, enough to go through the objective and the CLI."""
    root = tmp_path_factory.mktemp("tildes-t5")
    corpus = root / "cancion.txt"
    corpus.write_text(SONG * 30, encoding="utf-8")
    cfg = tiny_config(corpus, max_steps=20, samples=0, block_size=24, split="tail")
    cfg.set_kind("t5-tildes")
    return taller.train(cfg, root / "run", progress=False, log=lambda *a: None)


def test_a_t5_writes_the_input_again_with_marks_only(t5_run, capsys):
    state = json.loads((t5_run.dir / "state.json").read_text())
    assert state["finished"] and state["step"] == 20 and state["val_words_words"] == 30
    text = "Pinguino, bcd; Uva a la AUA rapido y el raton"  # longer than its window of 16: overlapping windows
    fixed = write_text(t5_run.model, t5_run.tokenizer, text)
    assert len(fixed) == len(text) and strip(fixed) == text  # the input's letters, marks at most
    assert all(a == b or a in "áéíóúüÁÉÍÓÚÜ" for a, b in zip(fixed, text))
    # every word of the song has one form in its training text: the constrained writer can only write that
    code, out, _ = run_cli(["tildes", str(t5_run.dir), "--text", "el raton y la cancion del balcon"], capsys)
    assert code == 0 and out.split("\n")[0] == "el ratón y la canción del balcón"


def test_init_takes_the_runs_size_and_keeps_the_new_runs_learning_rate(t5_run):
    cfg = Config.preset("t5-tildes")
    cfg.model.encoder_lr, cfg.model.d_model = 0.5, 999
    starting_run(cfg, str(t5_run.dir))
    assert cfg.model.d_model == t5_run.config.model.d_model  # its size: the weights must fit
    assert cfg.model.encoder_lr == 0.5 != t5_run.config.model.encoder_lr  # how it learns: the new run's --set


def test_a_t5_for_tildes_starts_its_encoder_from_a_bert(bert_run, tmp_path):
    cfg = tiny_config(bert_run.config.data.corpus, max_steps=1, samples=0, split="tail")
    cfg.set_kind("t5-tildes")
    cfg.model.init = str(bert_run.dir)
    t5 = taller.train(cfg, tmp_path / "t5", progress=False, log=lambda *a: None).model
    bert = bert_run.model
    assert t5.cfg.d_model == bert.cfg.d_model and len(t5.blocks) == len(bert.blocks)  # the BERT's size
    for mine, its in [(t5.blocks[0].attention.query, bert.blocks[0].attention.query), (t5.norm, bert.norm)]:
        assert torch.allclose(mine.weight, its.weight, atol=1e-3)  # one step at a tenth of the rate away
    V = t5.cfg.vocab_size
    assert torch.allclose(t5.embedding.weight[:V], bert.embedding.weight[:V], atol=1e-2)  # the decoder learns them
    assert len(t5.decoder) == cfg.model.n_dec_layers  # the decoder: the T5's own, started anew


def test_a_t5_refuses_the_switches_it_does_not_read():
    for switch in ("pos_encoding=rotary", "norm=rmsnorm"):  # what a BERT of another preset would give it by --init
        cfg = Config.preset("t5-tildes")
        cfg.apply_overrides([switch])
        with pytest.raises(TallerError, match="un T5 lee posiciones sinusoidales con LayerNorm"):
            cfg.validate()


def test_init_takes_a_run_of_the_same_task_only(t5_run, tagger_run, tmp_path, capsys):
    args = [
        "train",
        "--model",
        "bert",
        "--task",
        "tildes",
        "--init",
        str(t5_run.dir),
        "--corpus",
        str(tagger_run.config.data.corpus),
        "--out",
        str(tmp_path / "x"),
    ]
    line = one_line_error(*run_cli(args, capsys)[::2])
    assert "T5 de tildes" in line and not (tmp_path / "x").exists()


def test_serve_puts_the_accents_back_in_its_box(tagger_run):
    client = TestClient(create_app(tagger_run.dir.parent), base_url="http://127.0.0.1")
    listed = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed["run"]["tildes"] is True and "etiquetador" in listed["run"]["error"]  # not a language model
    reply = client.post("/api/tildes", json={"run": "run", "text": "el raton del balcon"})
    assert reply.status_code == 200 and reply.json() == {"text": "el ratón del balcón", "changed": [6, 17]}
    empty = client.post("/api/tildes", json={"run": "run", "text": "  "})
    assert empty.status_code == 400 and "vacío" in empty.json()["error"]


def test_a_tagger_saved_before_the_word_loss_learnt_the_letters_only(tagger_run, tmp_path):
    saved = (tagger_run.dir / "config.toml").read_text(encoding="utf-8")
    assert Config.load(tagger_run.dir / "config.toml", saved=True).model.word_loss == 0.3
    old = tmp_path / "config.toml"
    old.write_text("\n".join(line for line in saved.splitlines() if not line.startswith("word_loss")), encoding="utf-8")
    assert Config.load(old, saved=True).model.word_loss == 0.0


def test_compare_tildes_scores_each_model_on_the_same_validation(tmp_path, tagger_run, capsys):
    corpus = tmp_path / "cancion.txt"
    corpus.write_text((SONG + "esta casa es grande.\nestá cansado hoy.\n") * 20, encoding="utf-8")
    out = tmp_path / "cmp"
    tiny = [
        "split=tail",
        "max_steps=20",
        "block_size=16",
        "d_model=32",
        "n_heads=2",
        "n_layers=1",
        "d_ff=64",
        "batch_size=8",
    ]
    code, printed, _ = run_cli(
        [
            "compare",
            "--task",
            "tildes",
            "--corpus",
            str(corpus),
            "--models",
            "lookup,ngram,bert,bert+ngram",
            "--max-time",
            "30",
            *[a for s in tiny for a in ("--set", s)],
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, printed
    rows = (out / "tildes.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("modelo,ejecucion,palabras,errores") and "esta/está" in rows[0]
    assert [r.split(",")[0] for r in rows[1:]] == ["lookup", "ngram", "bert", "bert+ngram"]
    assert (out / "bert" / "state.json").exists() and not (out / "bert+ngram").exists()  # a row, not a run
    assert rows[4].split(",")[1] == f"{out / 'bert'} + {out / 'ngram'}"  # the two runs it joins
    val = split_corpus(prepare_corpus(DataConfig(corpus=str(corpus), split="tail")), DataConfig(split="tail")).val
    lookup = rows[1].split(",")  # «esta» and «está» as often in training: the lookup writes «esta», the first seen
    assert lookup[2] == str(len(words(val))) and lookup[3] == str(val.count("está"))
    assert "palabra ambigua" in printed and "| lookup |" in (out / "tildes.md").read_text(encoding="utf-8")
    # a run trained on another text is refused before anything is written
    line = one_line_error(
        *run_cli(
            [
                "compare",
                "--task",
                "tildes",
                "--corpus",
                str(corpus),
                "--models",
                f"lookup,bert={tagger_run.dir}",
                "--out",
                str(tmp_path / "no"),
            ],
            capsys,
        )[::2]
    )
    assert "otro texto" in line and not (tmp_path / "no").exists()
    args = [
        "compare",
        "--task",
        "tildes",
        "--corpus",
        str(corpus),
        "--set",
        "split=tail",
        "--out",
        str(tmp_path / "no"),
    ]
    line = one_line_error(*run_cli([*args, "--models", "lookup,bert+ngram"], capsys)[::2])
    assert "añade también bert y ngram" in line and not (tmp_path / "no").exists()
    line = one_line_error(*run_cli([*args, "--models", "lookup,mix"], capsys)[::2])
    assert "mix=RUN" in line and "--model mix" in line and not (tmp_path / "no").exists()
    ngram = out / "ngram"
    line = one_line_error(*run_cli([*args, "--models", f"ngram={ngram},bert={ngram},bert+ngram"], capsys)[::2])
    assert "ha de ser un etiquetador" in line and not (tmp_path / "no").exists()
