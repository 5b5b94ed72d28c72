"""The plain RNN and the LSTM written by hand equal PyTorch's fused ones; the bigram is a table of probabilities."""

import math

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_cli

from taller.data.tokenizers import CharTokenizer
from taller.models.bigram import Bigram, BigramConfig
from taller.models.lstm import LSTM, LSTMConfig
from taller.models.rnn import RNN, RNNConfig
from taller.sampling import generate


@pytest.mark.parametrize("model_class, config_class", [(RNN, RNNConfig), (LSTM, LSTMConfig)])
@pytest.mark.parametrize("layers", [1, 3])
def test_the_explicit_recurrence_equals_the_fused_one(model_class, config_class, layers):
    torch.manual_seed(layers)
    cfg = config_class(vocab_size=13, d_model=24, d_embed=10, n_layers=layers, dropout=0.0)
    model = model_class(cfg).eval()
    x = torch.randint(0, 13, (4, 17))  # (B, T)
    fused, fused_state = model.run(x)
    cfg.recurrence = "explicit"
    explicit, explicit_state = model.run(x)
    assert torch.allclose(fused, explicit, atol=1e-5)
    for a, b in zip(*(s if isinstance(s, tuple) else (s,) for s in (fused_state, explicit_state))):
        assert a.shape == (layers, 4, 24) and torch.allclose(a, b, atol=1e-5)
    again, _ = model.run(x, explicit_state)  # carrying a state on (generation) agrees too
    cfg.recurrence = "fused"
    assert torch.allclose(model.run(x, fused_state)[0], again, atol=1e-5)


def test_the_explicit_recurrence_learns_like_the_fused_one():
    """The gradients agree too: the readable path can be trained, not only read."""
    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=9, d_model=12, n_layers=2, dropout=0.0)
    model, x = RNN(cfg), torch.randint(0, 9, (3, 11))
    grads = []
    for path in ("fused", "explicit"):
        cfg.recurrence = path
        model.zero_grad()
        model(x).logsumexp(-1).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


@pytest.mark.parametrize("model_class, config_class", [(RNN, RNNConfig), (LSTM, LSTMConfig)])
def test_the_trace_is_what_the_fused_layers_output(model_class, config_class):
    """What explain draws (recurrent.png) is the network's real state: the last layer's h, step by step."""
    torch.manual_seed(1)
    model = model_class(config_class(vocab_size=9, d_model=12, n_layers=2, dropout=0.0)).eval()
    x = torch.randint(0, 9, (1, 15))
    trace = model.trace(x)
    h, _ = model.core(model.embedding(x))  # (1, T, H): the fused path's last layer
    assert torch.allclose(trace["estado"], h[0], atol=1e-5)
    gates = [name for name in trace if name.startswith("puerta")]
    assert len(gates) == (3 if model_class is LSTM else 0)
    assert all(trace[g].shape == (15, 12) and 0 <= trace[g].min() and trace[g].max() <= 1 for g in gates)


def synthetic_bigram(k: float = 0.0) -> tuple[Bigram, CharTokenizer]:
    """After 'a' comes 'b' 70 times and 'c' 30 times; after 'b' and 'c' always 'a'."""
    text = "ab" * 70 + "ac" * 30 + "a"
    tok = CharTokenizer.from_text(text)
    model = Bigram(BigramConfig(vocab_size=tok.vocab_size, smoothing=k)).fit(np.array(tok.encode(text)))
    return model, tok


@pytest.mark.parametrize("k", [0.0, 1.0, 5.0])
def test_the_bigram_table_rows_are_distributions(k):
    model, tok = synthetic_bigram(k)
    table = model.table()
    assert torch.allclose(table.sum(dim=1), torch.ones(tok.vocab_size, dtype=table.dtype))
    a, b, c = (tok.encode(ch)[0] for ch in "abc")
    assert table[a, b] == pytest.approx((70 + k) / (100 + 3 * k))  # add-k, exactly
    assert table[b, a] == pytest.approx((70 + k) / (70 + 3 * k))


def test_bigram_samples_follow_its_counts():
    """2,000 one-character continuations of 'a': a χ² test against 0.7 / 0.3 (df = 1; 10.83 is p = 0.001)."""
    model, tok = synthetic_bigram()
    samples = generate(model, tok, "a", n=2000, max_chars=1, seed=0, stop=None, top=0)
    seen = {ch: sum(s.generated == ch for s in samples) for ch in "abc"}
    assert seen["a"] == 0 and seen["b"] + seen["c"] == 2000
    chi2 = sum((seen[ch] - 2000 * p) ** 2 / (2000 * p) for ch, p in (("b", 0.7), ("c", 0.3)))
    assert chi2 < 10.83


def test_bigram_scores_a_text_by_its_table():
    model, tok = synthetic_bigram(k=1.0)
    ids = np.array(tok.encode("abac"))
    expected = [math.log(71 / 103), math.log(71 / 73), math.log(31 / 103)]
    assert model.log_probs(ids) == pytest.approx(expected)
    assert torch.allclose(
        model(torch.from_numpy(ids[None, :-1]))[0].gather(1, torch.from_numpy(ids[1:, None])).squeeze(1),
        torch.tensor(expected, dtype=torch.float32),
    )


def test_bigram_and_rnn_runs_through_the_command_line(corpus_file, tmp_path, capsys):
    bigram, rnn = tmp_path / "bg", tmp_path / "rnn"
    assert (
        run_cli(["train", "--corpus", str(corpus_file), "--model", "bigram", "--quiet", "--out", str(bigram)], capsys)[
            0
        ]
        == 0
    )
    assert (bigram / "parameters.txt").read_text(encoding="utf-8").startswith("Tabla de bigramas")
    code, out, _ = run_cli(["explain", str(bigram)], capsys)
    assert code == 0 and (bigram / "bigram.png").exists() and "bigram.png" in out
    one_line_error(*run_cli(["train", "--out", str(bigram), "--resume"], capsys)[::2])
    code, _, _ = run_cli(
        [
            "train",
            "--corpus",
            str(corpus_file),
            "--model",
            "rnn",
            "--steps",
            "8",
            "--epochs",
            "50",
            "--set",
            "block_size=8",
            "--set",
            "d_model=16",
            "--set",
            "plot_every=0",
            "--set",
            "samples=1",
            "--quiet",
            "--out",
            str(rnn),
        ],
        capsys,
    )
    assert code == 0
    code, out, _ = run_cli(["generate", str(rnn), "--prompt", "No ", "--greedy", "--max-chars", "10"], capsys)
    assert code == 0 and out.startswith("No ")
