"""BERT's whole-word and span masking (training/masked.py): the hidden share, words hidden whole, the val blanks."""

import pytest
import torch
from conftest import PROVERBS, one_line_error, run_cli, tiny_flags

from taller.data.tokenizers import CharTokenizer
from taller.training.masked import IGNORE, mask_tokens, masked_val, word_table, word_units

TEXT = "\n".join(PROVERBS * 40)
TOK = CharTokenizer.from_text(TEXT)
TABLE = word_table(TOK.pieces)
MASK = TOK.vocab_size


def windows(n: int, T: int = 64, seed: int = 0) -> torch.Tensor:
    ids = torch.tensor(TOK.encode(TEXT))
    starts = torch.randint(0, len(ids) - T, (n,), generator=torch.Generator().manual_seed(seed))
    return torch.stack([ids[s : s + T] for s in starts])  # (n, T)


def whole(chosen: torch.Tensor, units: torch.Tensor) -> bool:
    """Every word is either hidden in all its characters or in none."""
    inside = units >= 0
    hidden = torch.zeros(int(units.max()) + 1).index_add_(0, units[inside], chosen[inside].float())
    size = torch.bincount(units[inside])
    return bool(((hidden == 0) | (hidden == size)).all())


def test_words_are_letters_in_a_row_and_spaces_belong_to_none():
    x = torch.tensor([TOK.encode("No hay rosa, sin")])
    assert word_units(x, TABLE).tolist() == [[0, 0, -1, 1, 1, 1, -1, 2, 2, 2, 2, -1, -1, 3, 3, 3]]


@pytest.mark.parametrize("masking", ["words", "spans"])
def test_the_hidden_share_is_the_mask_rate_and_a_hidden_word_is_hidden_whole(masking):
    x = windows(300 if masking == "words" else 1000)  # spans: about one per window, so more windows
    g = torch.Generator().manual_seed(1)
    inputs, targets = mask_tokens(x, 0.15, MASK, TOK.vocab_size, g, masking, TABLE)
    chosen = targets != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.01  # within one point of the rate
    assert torch.equal(targets[chosen], x[chosen]) and torch.equal(inputs[~chosen], x[~chosen])
    units = word_units(x, TABLE)
    assert whole(chosen, units)
    masked = inputs == MASK
    assert whole(masked, units)  # the 80/10/10 rule drawn once per word: a [MASK]ed word shows none of its letters
    share = masked.sum().item() / chosen.sum().item()
    assert 0.75 < share < 0.85
    if masking == "words":
        assert not (chosen & (units < 0)).any()  # only letters are hidden
    else:
        assert (chosen & (units < 0)).any()  # a span of several words hides the spaces between them


def test_the_validation_blanks_are_whole_words_and_fixed():
    ids = torch.tensor(TOK.encode(TEXT[:4000])).numpy()
    chars = torch.ones(len(ids), dtype=torch.int32).numpy()
    a = masked_val(ids, chars, 64, 0.15, MASK, 7, "words", TABLE)
    b = masked_val(ids, chars, 64, 0.15, MASK, 7, "words", TABLE)
    assert torch.equal(a.inputs, b.inputs)
    chosen = a.targets != IGNORE
    windows_ = torch.from_numpy(ids[: len(ids) // 64 * 64]).view(-1, 64)
    assert bool((a.inputs[chosen] == MASK).all()) and whole(chosen, word_units(windows_, TABLE))
    assert abs(chosen.float().mean().item() - 0.15) < 0.02


def test_an_unknown_masking_is_refused_in_one_line(corpus_file, tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line_error(
        *run_cli(
            ["train", "--model", "bert", "--corpus", str(corpus_file), "--out", str(out), *tiny_flags(masking="bogus")],
            capsys,
        )[::2]
    )
    assert "model.masking=bogus" in line and "words" in line and not out.exists()


def test_mixed_masking_hides_whole_words_in_some_windows_single_characters_in_others():
    x = windows(400)
    g = torch.Generator().manual_seed(2)
    inputs, targets = mask_tokens(x, 0.15, MASK, TOK.vocab_size, g, "mixed", TABLE)
    chosen, units = targets != IGNORE, word_units(x, TABLE)
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    by_words = [
        whole(chosen[b : b + 1], units[b : b + 1]) and not (chosen[b] & (units[b] < 0)).any() for b in range(400)
    ]
    assert 150 < sum(by_words) < 300  # about half the windows hide whole words; the others, single characters
    assert (chosen & (units < 0)).any()  # (a single character may be a space)
    ids = torch.tensor(TOK.encode(TEXT[:4000])).numpy()
    chars = torch.ones(len(ids), dtype=torch.int32).numpy()
    mixed, words = (masked_val(ids, chars, 64, 0.15, MASK, 7, m, TABLE) for m in ("mixed", "words"))
    assert torch.equal(mixed.inputs, words.inputs)  # judged by whole hidden words
