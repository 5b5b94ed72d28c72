"""The lesson "¿Escribir como Cervantes?": its data options, its LSTM, the n-gram, the samplers."""

import math

import numpy as np
import pytest
import torch
from conftest import PROVERBS, tiny_config

import taller
from taller.config import Config
from taller.data.batches import ShuffledWindows
from taller.data.corpora import prepare_corpus
from taller.data.split import split_text
from taller.data.tokenizers import CharTokenizer
from taller.errors import TallerError
from taller.models import LSTM, NGram, build_model
from taller.models.lstm import LSTMConfig
from taller.models.ngram import NGramConfig
from taller.runs.folder import load_run
from taller.sampling import generate


def test_the_cervantes_preset_builds_the_lessons_model():
    cfg = Config.preset("cervantes")
    cfg.model.vocab_size = 48  # the lesson's vocabulary
    model = build_model(cfg.validate().model)
    assert isinstance(model, LSTM)
    sizes = {name: p.numel() for name, p in model.named_parameters()}
    assert sum(sizes.values()) == 372_784
    assert model.embedding.weight.shape == (48, 64) and model.output.weight.shape == (48, 128)
    lstm = model.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.dropout) == (64, 128, 3, 0.3)
    assert sum(v for k, v in sizes.items() if k.startswith("lstm") and k.endswith("l0")) == 99_328
    t = cfg.train
    assert (t.batch_size, t.lr, t.min_lr, t.weight_decay, t.grad_clip, t.epochs, t.sampler, t.stride) == (
        256,
        1e-3,
        1e-3,
        0.0,
        5.0,
        10,
        "shuffled",
        1,
    )
    assert cfg.model.block_size == 100 and cfg.data.max_chars == 100_000


def test_data_options_cut_between_markers_lowercase_and_join(tmp_path):
    path = tmp_path / "libro.txt"
    path.write_text("Prólogo que sobra.\nCAPÍTULO I\nEn un Lugar\nde la Mancha.\nFin", encoding="utf-8")
    cfg = Config()
    cfg.data.corpus, cfg.data.start_marker, cfg.data.lowercase, cfg.data.join_lines = str(path), "CAPÍTULO", True, True
    cfg.data.end_marker = (
        "Fin de la obra"  # absent: as the lesson's text.find() = -1, the slice drops the last character
    )
    assert prepare_corpus(cfg.data).text == "capítulo i en un lugar de la mancha. fi"
    cfg.data.end_marker = "Fin"
    assert prepare_corpus(cfg.data).text == "capítulo i en un lugar de la mancha. "
    cfg.data.start_marker = "Epílogo"
    with pytest.raises(TallerError, match="start_marker"):
        prepare_corpus(cfg.data)


def test_split_after_trains_on_exactly_max_chars_and_validates_on_what_follows():
    text = "".join(chr(97 + i % 26) for i in range(1000))
    s = split_text(text, lines=False, val_fraction=0.1, kind="after", max_chars=500)
    assert s.train == text[:500] and s.val == text[500:550]
    assert split_text(text, lines=False, kind="tail", max_chars=500).train == text[:450]
    with pytest.raises(TallerError, match="max_chars"):
        split_text(text, lines=False, kind="after", max_chars=990)


def test_the_lessons_text_from_the_quijote(quijote_corpora, monkeypatch):
    monkeypatch.setenv("TALLER_DATA", str(quijote_corpora.folder))
    # The real book (CI), else the tests' small book told 33 times (a fresh clone): its length and its characters.
    length, start, chars = (
        (2_071_775, "primera parte del ingenioso hidalgo", 48)
        if quijote_corpora.real
        else (117_628, "primera parte del ingenioso hidalgo de las pruebas", 38)
    )
    data = Config.preset("cervantes").data
    corpus = prepare_corpus(data)
    assert len(corpus.text) == length and corpus.text.startswith(start)
    s = split_text(
        corpus.text, lines=corpus.lines, val_fraction=data.val_fraction, kind=data.split, max_chars=data.max_chars
    )
    assert len(s.train) == 100_000 and len(s.val) == 10_000
    assert CharTokenizer.from_text(s.train + s.val).vocab_size == len(set(s.train)) == chars


def test_shuffled_windows_show_every_window_once_per_epoch_and_resume_in_place():
    ids = np.arange(50, dtype=np.int64)
    b = ShuffledWindows(ids, block_size=10, batch_size=8, device=torch.device("cpu"), seed=3)
    assert b.steps_per_epoch == math.ceil(40 / 8)
    starts = []
    for _ in range(b.steps_per_epoch):
        x, y = b.next()
        assert torch.equal(y, x + 1)  # targets shifted by one
        starts += x[:, 0].tolist()
    assert sorted(starts) == list(range(40))
    second = [b.next()[0] for _ in range(3)]
    assert [s[:, 0].tolist() for s in second] != [starts[i * 8 : (i + 1) * 8] for i in range(3)]  # a new order
    again = ShuffledWindows(ids, block_size=10, batch_size=8, device=torch.device("cpu"), seed=3)
    again.seek(b.steps_per_epoch + 1)
    assert torch.equal(again.next()[0], second[1])


def lstm(**kw) -> LSTM:
    torch.manual_seed(0)
    return LSTM(LSTMConfig(vocab_size=20, block_size=8, d_model=24, d_embed=12, n_layers=2, dropout=0.0, **kw)).eval()


def test_lstm_step_by_step_gives_the_same_logits_as_the_whole_sequence():
    m = lstm()
    x = torch.randint(0, 20, (3, 30))
    whole = m(x)  # (B, T, V)
    assert whole.shape == (3, 30, 20)
    logits, state = m.start(x[:, :5])
    steps = [logits]
    for t in range(5, 30):
        logits, state = m.step(x[:, t : t + 1], state)
        steps.append(logits)
    assert torch.allclose(torch.stack(steps, dim=1), whole[:, 4:], atol=1e-5)


def test_lstm_generation_reads_the_whole_prompt_without_cropping():
    m = lstm()
    tok = CharTokenizer(list("abcdefghijklmnopqrst"))
    prompt = "abcdefghij" * 5  # far longer than the training window of 8
    cached = generate(m, tok, prompt, 2, max_chars=20, seed=1, stop=None)
    rerun = generate(m, tok, prompt, 2, max_chars=20, seed=1, stop=None, use_cache=False)
    assert [s.text for s in cached] == [s.text for s in rerun]
    assert m.block_size is None


def fitted_ngram(order: int, text: str, extra: int = 3) -> tuple[NGram, list[str]]:
    chars = sorted(set(text))
    model = NGram(NGramConfig(order=order, vocab_size=len(chars) + extra))  # + characters never seen
    return model.fit(np.array([chars.index(c) for c in text])), chars


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_ngram_probabilities_sum_to_one_for_every_context(order):
    text = "\n".join(PROVERBS)
    model, chars = fitted_ngram(order, text)
    V = model.V
    ids = np.array([chars.index(c) for c in text])
    rng = np.random.default_rng(0)
    seen = np.lib.stride_tricks.sliding_window_view(ids, order - 1)  # every context of the text
    unseen = rng.integers(0, V, size=(200, order - 1))  # mostly never seen, some with never-seen characters
    start = np.where(np.arange(order - 1) < 1, -1, unseen)  # the text had not begun
    for contexts in (seen, unseen, start):
        contexts = np.unique(contexts, axis=0) if order > 1 else np.zeros((1, 0), np.int64)
        hist = np.repeat(contexts, V, axis=0)
        p = model.prob(hist, np.tile(np.arange(V), len(contexts))).reshape(len(contexts), V)
        assert (p > 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


def test_ngram_forward_matches_its_text_scores_and_survives_saving():
    text = "\n".join(PROVERBS)
    model, chars = fitted_ngram(4, text)
    ids = np.array([chars.index(c) for c in text])
    logp = model(torch.from_numpy(ids)[None])[0]  # (T, V)
    picked = logp[:-1].gather(1, torch.from_numpy(ids[1:])[:, None])[:, 0].double().numpy()
    np.testing.assert_allclose(picked, model.log_probs(ids), atol=1e-5)
    copy = NGram(model.cfg)
    copy.load_state_dict(model.state_dict())
    assert np.array_equal(copy.log_probs(ids), model.log_probs(ids))
    # more context, less surprise on the text it counted
    lower, _ = fitted_ngram(2, text)
    assert -model.log_probs(ids).mean() < -lower.log_probs(ids).mean() - 0.5


def test_ngram_through_train_writes_a_run_that_generates(tmp_path, corpus_file):
    run = taller.train(tiny_config(corpus_file, kind="ngram", order=4, samples=2), tmp_path / "ng", progress=False)
    names = {p.name for p in run.dir.iterdir()}
    assert {
        "config.toml",
        "tokenizer.json",
        "model.safetensors",
        "state.json",
        "metrics.jsonl",
        "parameters.txt",
        "samples.txt",
        "table.txt",
    } <= names
    assert 0 < run.state["val_bpc"] < math.log2(run.tokenizer.vocab_size) and run.state["counts"] > 0
    assert "Total:" in (run.dir / "parameters.txt").read_text(encoding="utf-8")
    loaded = load_run(run.dir)
    a = [s.text for s in loaded.generate("No hay ", 2, seed=5)]
    assert a == [s.text for s in run.generate("No hay ", 2, seed=5)] and all(s.startswith("No hay ") for s in a)
    with pytest.raises(TallerError, match="sin --resume"):
        taller.train(Config.load(run.dir / "config.toml"), run.dir, resume=True, progress=False)


def test_lstm_through_train_with_shuffled_windows(tmp_path, corpus_file):
    cfg = tiny_config(
        corpus_file,
        kind="lstm",
        sampler="shuffled",
        stride=8,
        batch_size=16,
        max_steps=0,
        epochs=2,
        plot_every=1,
        samples=1,
    )
    run = taller.train(cfg, tmp_path / "lstm", progress=False)
    n_train = len(split_text(corpus_file.read_text(encoding="utf-8"), lines=True).train)
    assert run.state["steps_per_epoch"] == math.ceil(len(range(0, n_train - 16, 8)) / 16)  # every 8th window once
    assert run.state["epoch"] == 2 and run.state["step"] == 2 * run.state["steps_per_epoch"]
    text = (run.dir / "parameters.txt").read_text(encoding="utf-8")
    assert "LSTM" in text and f"Total: {sum(p.numel() for p in run.model.parameters()):,}".replace(",", ".") in text
    assert {"epoch_000.png", "epoch_001.png", "epoch_002.png", "table.txt"} <= {p.name for p in run.dir.iterdir()}
