"""Mixing runs (models/mix.py, training/mixing.py) and learning while reading (training/adapt.py)."""

import dataclasses
import hashlib
import tomllib

import numpy as np
import pytest
import tomli_w
import torch
from conftest import PROVERBS, copy_run, one_line_error, run_cli, tiny_config

import taller
from taller.config import Config
from taller.data.corpora import prepare_corpus
from taller.data.split import mix_slice_length, split_corpus
from taller.errors import TallerError
from taller.models.ngram import NGram, NGramConfig
from taller.runs.folder import load_run
from taller.training import adapt
from taller.training.adapt import Adaptation, score_run
from taller.training.mixing import bands_for


def fit_ngrams_and_mix(root, text: str) -> taller.Run:
    """A 2-gram and a 4-gram of `text`, and their mix; split=after: train is exactly the first 1,000 characters."""
    corpus = root / "texto.txt"
    corpus.write_text(text, encoding="utf-8")
    parts = []
    for order in (2, 4):
        cfg = Config.preset("ngram")
        cfg.data.corpus, cfg.data.split, cfg.data.max_chars, cfg.data.val_fraction = str(corpus), "after", 1000, 0.3
        cfg.model.order, cfg.train.samples = order, 0
        parts.append(taller.train(cfg, root / f"ng{order}", progress=False, log=lambda *a: None).dir)
    mix = Config.preset("mix")
    mix.model.runs, mix.model.held_out, mix.train.samples = ",".join(map(str, parts)), 0.2, 0
    taller.train(mix, root / "mix", progress=False, log=lambda *a: None)
    return load_run(root / "mix")


def test_the_mixer_never_sees_the_validation_text(tmp_path):
    """Two texts with the same training part and different validation parts: the same table, different scores."""
    lines = PROVERBS * 4
    train = "\n".join(lines)[:1000]
    tail_a = "\n".join(lines[::-1])[:400]  # the same characters, in another order
    tail_b = "\n".join(sorted(lines))[:400]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = fit_ngrams_and_mix(tmp_path / "a", train + tail_a), fit_ngrams_and_mix(tmp_path / "b", train + tail_b)
    assert a.tokenizer.pieces == b.tokenizer.pieces
    assert torch.equal(a.model.weights, b.model.weights)  # fitted on train alone
    assert not torch.equal(a.model.weights, torch.full_like(a.model.weights, 0.5))  # (it did learn something)
    assert a.state["val_bpc"] != b.state["val_bpc"]  # ... and scored on two different validation texts


def test_a_mix_is_a_language_model_like_any_other(mix_run, trained_run, tmp_path, capsys):
    assert mix_run.model.block_size == trained_run.model.block_size and len(mix_run.parts) == 2
    x = torch.tensor([trained_run.tokenizer.encode("No hay mal que p")])
    logp = mix_run.model(x)  # (1, T, V) log-probabilities
    assert logp.shape == (1, 16, trained_run.tokenizer.vocab_size)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1, 16), atol=1e-5)
    first, state = mix_run.model.start(x[:, :5])  # the incremental path gives the same numbers
    for t in range(5, 16):
        assert torch.allclose(first, logp[:, t - 1], atol=1e-4)
        first, state = mix_run.model.step(x[:, t : t + 1], state)
    samples = mix_run.generate("No hay ", 2, seed=0, max_chars=40)
    assert all(s.text.startswith("No hay ") for s in samples)
    assert "confianza" in (mix_run.dir / "parameters.txt").read_text(encoding="utf-8")
    # explain draws into the run folder: a copy of the shared one, with its parts beside it (it names them as ../run)
    mine = copy_run(mix_run.dir.parent, tmp_path / "copia") / mix_run.dir.name
    code, out, err = run_cli(["explain", str(mine)], capsys)
    assert code == 0 and (mine / "mixing.png").stat().st_size > 1000, err


def test_a_mix_refuses_parts_that_changed_or_read_another_text(mix_run, trained_lstm_run, tmp_path):
    cfg = Config.preset("mix")
    cfg.model.runs = f"{mix_run.parts[0].dir},{trained_lstm_run.dir}"  # another corpus file (another path)
    with pytest.raises(TallerError, match="mismo texto"):
        taller.train(cfg, tmp_path / "m", progress=False, log=lambda *a: None)
    copy = tmp_path / "copia"
    copy.mkdir()
    for f in mix_run.dir.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    saved = tomllib.loads((mix_run.dir / "config.toml").read_text(encoding="utf-8"))
    for parts, works in (
        ([mix_run.parts[0].dir, mix_run.parts[1].dir], True),
        ([mix_run.parts[0].dir, trained_lstm_run.dir], False),
    ):  # another run in the n-gram's place
        saved["model"]["runs"] = ",".join(str(p.resolve()) for p in parts)
        (copy / "config.toml").write_text(tomli_w.dumps(saved), encoding="utf-8")
        if works:
            assert len(load_run(copy).parts) == 2
        else:
            with pytest.raises(TallerError, match="ha cambiado desde que se ajustó"):
                load_run(copy)


def test_adapt_learns_while_reading_and_leaves_the_weights_on_disk(trained_run, mix_run, capsys):
    files = [trained_run.dir / "model.safetensors", mix_run.dir / "model.safetensors"]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    in_memory = {k: v.clone() for k, v in trained_run.model.state_dict().items()}
    scores = score_run(trained_run, Adaptation("sgd", 0.05))
    assert scores.static.bpc == pytest.approx(trained_run.state["val_bpc"], abs=1e-4)  # the training's own figure
    assert (
        scores.adapted.chars == scores.static.chars and scores.adapted.bpc < scores.static.bpc
    )  # it learnt: fewer bits
    code, out, _ = run_cli(["score", str(mix_run.dir), "--adapt", "--optimizer", "adam"], capsys)
    assert code == 0 and "estático" in out and "--adapt" in out
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before
    assert all(torch.equal(v, trained_run.model.state_dict()[k]) for k, v in in_memory.items())


def test_an_ngram_learns_while_reading_by_counting_and_a_bigram_is_refused(tmp_path, capsys, monkeypatch):
    """Validation: a stretch of text the training never had, said over and over. Read and counted (here every 200
    characters), the repeats become nearly certain; the static n-gram stays as unsure as at first."""
    rng = np.random.default_rng(0)
    train = "".join(rng.choice(list("abcdefgh "), 3000))
    phrase = "".join(rng.choice(list("abcdefgh "), 150))
    corpus = tmp_path / "eco.txt"
    corpus.write_text(train + phrase * 12, encoding="utf-8")
    for kind in ("ngram", "bigram"):
        assert (
            run_cli(
                [
                    "train",
                    "--corpus",
                    str(corpus),
                    "--model",
                    kind,
                    "--quiet",
                    "--out",
                    str(tmp_path / kind),
                    "--set",
                    "split=after",
                    "--set",
                    "max_chars=3000",
                    "--set",
                    "val_fraction=0.49",
                ],
                capsys,
            )[0]
            == 0
        )
    monkeypatch.setattr(adapt, "COUNT_EVERY", 200)
    scores = score_run(load_run(tmp_path / "ngram"), Adaptation())
    assert scores.static.chars == scores.adapted.chars == 1469
    assert scores.static.bpc > 2.5 and scores.adapted.bpc < 0.5 * scores.static.bpc
    code, _, err = run_cli(["score", str(tmp_path / "bigram"), "--adapt"], capsys)
    assert "seguir contando" in one_line_error(code, err)
    code, _, err = run_cli(["score", str(tmp_path / "ngram"), "--lr", "0.1"], capsys)
    assert "--adapt" in one_line_error(code, err)


def test_an_ngram_that_reads_on_counts_as_if_it_had_read_everything_at_once():
    """fit(a + b) == fit(a), then read(b) after it: fitting is reading from nothing. (The training text's very first
    characters recur later here; had they not, a model that reads on would miss one continuation of one k-gram per
    order, the text's first, which no file records.)"""
    rng = np.random.default_rng(3)
    for vocab, order in ((5, 4), (7, 3), (4, 6)):
        start = rng.integers(0, vocab, order + 2)
        a = np.concatenate([start, rng.integers(0, vocab, 500), start])
        b = rng.integers(0, vocab, 400)
        at_once = NGram(NGramConfig(vocab_size=vocab, order=order)).fit(np.concatenate([a, b]))
        read_on = NGram(NGramConfig(vocab_size=vocab, order=order)).fit(a).read(np.concatenate([a, b]), len(a))
        for k in range(order):
            assert np.array_equal(at_once.keys[k], read_on.keys[k]) and np.array_equal(
                at_once.counts[k], read_on.counts[k]
            )


def test_the_ngram_gives_all_next_characters_at_once_as_it_gives_one():
    ids = np.random.default_rng(1).integers(0, 7, size=400)
    model = NGram(NGramConfig(order=3, vocab_size=7)).fit(ids)
    history = np.array([[-1, -1], [-1, 3], [2, 5], [6, 6]])
    full = model.distributions(history)  # (4, 7)
    one_by_one = np.array([[model.prob(h[None], np.array([c]))[0] for c in range(7)] for h in history])
    assert np.allclose(full, one_by_one) and np.allclose(full.sum(1), 1)


def test_a_network_leaves_the_mixs_slice_unread_and_a_mix_warns_of_one_that_read_it(trained_run, tmp_path):
    """By default a network never trains on the end of its training text where a mix fits its table (a mix of a
    network that memorised the slice would trust it too much there); one that did read it is mixed with a warning."""
    train_tokens = len(
        trained_run.tokenizer.encode_array(
            split_corpus(prepare_corpus(trained_run.config.data), trained_run.config.data).train
        )
    )
    assert trained_run.state["mix_slice_tokens"] == mix_slice_length(train_tokens) == int(train_tokens * 0.05)
    reader = taller.train(
        tiny_config(trained_run.config.data.corpus, max_steps=5, mix_slice=0.0),
        tmp_path / "lee",
        progress=False,
        log=lambda *a: None,
    )
    assert reader.state["mix_slice_tokens"] == 0
    said = []
    for name, parts in (("bien", trained_run.dir), ("aviso", reader.dir)):
        ngram = Config.preset("ngram")
        ngram.data, ngram.train.samples = dataclasses.replace(trained_run.config.data), 0
        taller.train(ngram, tmp_path / f"ng-{name}", progress=False, log=lambda *a: None)
        mix = Config.preset("mix")
        mix.model.runs, mix.train.samples, mix.model.fit_steps = f"{parts},{tmp_path / f'ng-{name}'}", 0, 5
        lines = []
        taller.train(mix, tmp_path / f"mix-{name}", progress=False, log=lines.append)
        said.append([line for line in lines if line.startswith("Aviso")])
    assert said[0] == [] and len(said[1]) == 1 and "--set mix_slice=0.05" in said[1][0]


def test_a_small_slice_fits_a_smaller_table():
    """Each weight needs about TOKENS_PER_WEIGHT tokens of the slice: 300 refranes' 601 tokens fit one set of
    weights, the Quijote's 94,982 the whole table of 4 bands × 4 bands."""
    assert [bands_for(n, 2, 4) for n in (601, 2_000, 4_000, 16_000, 94_982)] == [1, 1, 2, 4, 4]
    assert bands_for(94_982, 3, 4) == 3 and bands_for(94_982, 2, 2) == 2
