"""How far back a model looks (inspect/memory.py): measured, and exactly zero where a model cannot see."""

import numpy as np
import pytest
import torch

from taller.data.tokenizers import CharTokenizer
from taller.inspect.memory import memory_curve
from taller.models.bigram import Bigram, BigramConfig
from taller.models.ngram import NGram, NGramConfig
from taller.models.transformer import Transformer, TransformerConfig

TEXT = "el perro de san roque no tiene rabo porque ramón ramírez se lo ha cortado. " * 20


def ids_and_vocab():
    tok = CharTokenizer.from_text(TEXT)
    return np.array(tok.encode(TEXT)), tok.vocab_size


def test_a_bigram_only_remembers_the_last_character():
    ids, V = ids_and_vocab()
    model = Bigram(BigramConfig(vocab_size=V)).fit(ids)
    curve = memory_curve(model, ids, V, reach=12, windows=16)
    assert curve[0] > 0.05 and (curve[1:] == 0).all()


@pytest.mark.parametrize("order", [2, 3, 5])
def test_an_ngram_remembers_exactly_n_minus_1_characters(order):
    ids, V = ids_and_vocab()
    model = NGram(NGramConfig(vocab_size=V, order=order)).fit(ids)
    curve = memory_curve(model, ids, V, reach=12, windows=16)
    assert (curve[: order - 1] > 0).all() and (curve[order - 1 :] == 0).all()


def test_a_transformer_looks_across_its_whole_window_and_no_further():
    ids, V = ids_and_vocab()
    torch.manual_seed(0)
    model = Transformer(
        TransformerConfig(vocab_size=V, block_size=10, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0)
    )
    for p in model.parameters():  # large random weights: every position matters a little
        torch.nn.init.normal_(p, std=0.3)
    curve = memory_curve(model, ids, V, reach=30, windows=8)
    assert len(curve) == 10 and (curve > 0).all()  # reach is cut to the window
