"""One hidden word told its length: the training vocabulary as candidates, ranked by each family
(inspect/word_blanks)."""

import dataclasses

import pytest
from conftest import PROVERBS
from test_bert import tiny

import taller
from taller.config import Config
from taller.data.tokenizers import BpeTokenizer, CharTokenizer
from taller.errors import TallerError
from taller.inspect.fill import answer_log_prob, hidden_word_log_likelihood, pseudo_log_likelihood
from taller.inspect.word_blanks import auto_candidates, rank_words
from taller.runs.folder import Run

TEXT = "\n".join(PROVERBS * 3) + "\n"


def untrained(kind: str, corpus, masking: str = "words", tokenizer=None) -> Run:
    cfg, model = tiny(kind, vocab=len(set(TEXT)))
    cfg.data.corpus = str(corpus)
    if kind == "bert":
        cfg.model.masking = masking
    return Run(None, cfg, tokenizer or CharTokenizer.from_text(TEXT), model, {})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("blanks") / "dichos.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_the_candidates_are_the_training_words_of_the_blanks_length(corpus):
    run = untrained("bert", corpus)
    words = auto_candidates(run, 4)
    assert words[0] == "hace" or len(words) > 1 and all(len(w) == 4 for w in words)  # the most frequent first
    assert "rosa" in words and "sordo" not in words and len(set(words)) == len(words)
    assert auto_candidates(run, 4, limit=2) == words[:2]
    with pytest.raises(TallerError, match="palabras de 30 letras"):
        auto_candidates(run, 30)


@pytest.mark.parametrize("masking", ["words", "chars"])
def test_a_bert_scores_all_the_candidates_at_once_as_it_scores_each_one(corpus, masking):
    run = untrained("bert", corpus, masking)
    text, words, m = "hay ____ sin", ["rosa", "peor", "bien"], run.config.model  # shorter than the window (16)
    scored = rank_words(run, text, words)
    by = hidden_word_log_likelihood if masking == "words" else pseudo_log_likelihood
    for c in scored:
        ids = run.tokenizer.encode(text.replace("____", c.word))
        assert c.log_prob == pytest.approx(by(run.model, ids, [4, 5, 6, 7], m.mask_id, m.vocab_size), abs=1e-5)
    assert sum(c.probability for c in scored) == pytest.approx(1)


def test_a_t5_scores_all_the_candidates_at_once_as_it_scores_each_one(corpus):
    run = untrained("t5", corpus)
    m, tok = run.config.model, run.tokenizer
    scored = rank_words(run, "hay ____ sin", ["rosa", "peor"])
    src = tok.encode("hay ") + [m.sentinel(0)] + tok.encode(" sin")
    for c in scored:
        answer = [m.sentinel(0), *tok.encode(c.word), m.end_id]
        assert c.log_prob == pytest.approx(answer_log_prob(run.model, src, answer, m.start_id), abs=1e-5)


def test_counting_fills_the_word_it_has_counted_reading_both_sides(corpus, tmp_path):
    cfg = Config.preset("ngram")
    cfg.data = dataclasses.replace(cfg.data, corpus=str(corpus), split="tail")
    cfg.model.order, cfg.train.samples = 5, 0
    run = taller.train(cfg, tmp_path / "ngram", progress=False, log=lambda *a: None)
    words = auto_candidates(run, 4)
    scored = rank_words(run, "No hay ____ sin espinas.", words)
    assert max(scored, key=lambda c: c.probability).word == "rosa" and len(scored) == len(words)
    # only the right side tells «que» from «mal» after «No hay»: the characters after the blank are scored
    best = max(rank_words(run, "No hay ___ que por bien no venga.", auto_candidates(run, 3)), key=lambda c: c.log_prob)
    assert best.word == "mal"


def test_candidates_auto_needs_characters(corpus):
    bpe = BpeTokenizer.train(TEXT, 300)
    run = untrained("bert", corpus, tokenizer=bpe)
    with pytest.raises(TallerError, match="modelo de caracteres"):
        auto_candidates(run, 4)
