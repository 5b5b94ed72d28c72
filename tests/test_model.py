import pytest
import torch
import torch.nn.functional as F

from taller.data.tokenizers import CharTokenizer
from taller.models import Transformer
from taller.models.transformer import Generation, TransformerConfig, rms
from taller.sampling import generate


def model(**kw) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=20, block_size=12, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0, **kw)
    return Transformer(cfg).eval()


def test_logits_shape():
    m = model()
    assert m(torch.randint(0, 20, (3, 12))).shape == (3, 12, 20)


def test_causal_a_later_character_never_changes_earlier_logits():
    m = model()
    x = torch.randint(0, 20, (2, 12))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 5) % 20
    a, b = m(x), m(y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-4)


def test_position_matters_reordering_the_earlier_characters_changes_the_next_prediction():
    for pos in ("sinusoidal", "learned"):
        m = model(pos_encoding=pos)
        with torch.no_grad():  # at initialisation attention is nearly uniform; random larger weights make it choose,
            for p in m.parameters():  # as training does (the seed's bug stays exactly order-blind even so)
                p.normal_(0, 0.3)
        x = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
        reordered = torch.tensor([[7, 5, 3, 1, 2, 6, 4, 8]])  # same characters, same last one, another order
        a, b = m(x)[0, -1], m(reordered)[0, -1]
        assert (a - b).abs().max() > 1e-3, pos


def test_fused_and_explicit_attention_agree():
    fused, explicit = model(attention="fused"), model(attention="explicit")
    explicit.load_state_dict(fused.state_dict())
    x = torch.randint(0, 20, (4, 12))
    assert torch.allclose(fused(x), explicit(x), atol=1e-5)
    assert torch.allclose(fused(x), fused(x, record=[]), atol=1e-5)  # the path attention maps are read from
    maps = fused.attention_maps(x)
    a = fused.blocks[0].attention  # layer 0 by hand: softmax(q kᵀ / √D) with the future masked
    h = fused.blocks[0].norm1(fused.embedding(x) + fused.pe[:12])  # (B, T, C) what layer 0's attention reads
    scores = a.split_heads(a.query(h)) @ a.split_heads(a.key(h)).transpose(-2, -1) / a.head_dim**0.5  # (B, H, T, T)
    future = torch.ones(12, 12, dtype=torch.bool).triu(1)
    assert torch.allclose(maps[0], scores.masked_fill(future, float("-inf")).softmax(-1), atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (4, 4, 12, 12)
    assert torch.allclose(maps[0].sum(-1), torch.ones(4, 4, 12), atol=1e-5)
    assert maps[0][0, 0].triu(diagonal=1).abs().max() == 0  # nothing looks ahead


def random_model() -> Transformer:
    """Block size 12 with large random weights: unlike a fresh model (logits ≈ uniform, std 0.02), its predictions
    depend strongly on every earlier character, so a cache that lost or misplaced one would show."""
    m = model()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


TOK = CharTokenizer(list("abcdefghijklmnopqr \n"))  # 20 characters, as the models' vocab_size


def test_the_random_model_depends_on_its_whole_context():
    m = random_model()
    x = torch.randint(0, 20, (4, 12))
    y = x.clone()
    y[:, 0] = (y[:, 0] + 7) % 20  # only the first character changes
    assert (m(x)[:, -1] - m(y)[:, -1]).abs().max() > 0.05  # the last prediction, 11 characters later, moves
    assert m(x).softmax(-1).max(-1).values.mean() > 0.1  # far from uniform (1/20)


@pytest.mark.parametrize("prompt_length", [1, 4, 11])
def test_kv_cache_step_logits_equal_a_full_forward_over_the_same_prefix_within_the_window(prompt_length):
    m = random_model()
    x = torch.randint(0, 20, (3, 12))
    with torch.inference_mode():
        logits, state = m.start(x[:, :prompt_length])
        assert torch.allclose(logits, m(x[:, :prompt_length])[:, -1], atol=1e-5)
        for t in range(prompt_length, 12):  # up to a full window
            logits, state = m.step(x[:, t : t + 1], state)
            assert m.state_length(state) == t + 1
            assert torch.allclose(logits, m(x[:, : t + 1])[:, -1], atol=1e-5), t


def step_probs(sample) -> list[tuple[list[int], list[float]]]:
    return [([TOK.index[c] for c, _ in step.top], [p for _, p in step.top]) for step in sample.steps]


def expected_probs(m, ids: list[int]) -> tuple[list[int], list[float]]:
    top = torch.topk(m(torch.tensor([ids]))[0, -1].softmax(-1), 5)
    return top.indices.tolist(), top.values.tolist()


def close(a, b) -> bool:
    return a[0] == b[0] and all(abs(p - q) < 1e-5 for p, q in zip(a[1], b[1]))


def test_generation_with_and_without_cache_agree_while_the_text_fits_the_window():
    m = random_model()
    for seed in range(3):  # prompt 3 + 9 characters = the 12-character window: every step reads the whole text
        a = generate(m, TOK, "abc", 4, max_chars=9, seed=seed, stop=None, use_cache=True)
        b = generate(m, TOK, "abc", 4, max_chars=9, seed=seed, stop=None, use_cache=False)
        assert [s.text for s in a] == [s.text for s in b] and len(a[0].text) == 12
        for sa, sb in zip(a, b):
            assert all(close(p, q) for p, q in zip(step_probs(sa), step_probs(sb)))
    with torch.inference_mode():  # and both are the model's own prediction over the text so far
        for k, probs in enumerate(step_probs(a[0])):
            assert close(probs, expected_probs(m, TOK.encode(a[0].text[: 3 + k])))


def test_past_the_window_the_cache_restarts_from_the_last_half_window():
    """Documents an approximation: once the cache holds a full window (12), generation starts again from the last
    6 characters and grows from there; without a cache every step reads the last 12. So past the window the two
    paths see different contexts (and may write different texts)."""
    m = random_model()
    sample = generate(m, TOK, "abc", 1, max_chars=30, greedy=True, stop=None, use_cache=True)[0]
    ids = TOK.encode(sample.text)
    assert len(ids) == 33
    start, restarts = 0, []
    with torch.inference_mode():
        for k, probs in enumerate(step_probs(sample)):
            end = 3 + k  # the step that writes character `end` reads ids[start:end]
            if end - start > 12:  # the window is full: the cache re-reads the last half window
                start = end - 6
                restarts.append(end)
            assert close(probs, expected_probs(m, ids[start:end])), (k, start, end)
            assert sample.steps[k].token == sample.steps[k].top[0][0]  # greedy: the most likely
            if end > 12 and end - start < 12:  # a shorter context than the uncached path's last 12 characters...
                assert not close(probs, expected_probs(m, ids[end - 12 : end]))  # ...gives other probabilities
    assert restarts == [13, 20, 27]
    uncached = generate(m, TOK, "abc", 1, max_chars=30, greedy=True, stop=None, use_cache=False)[0]
    ids = TOK.encode(uncached.text)
    with torch.inference_mode():
        for k, probs in enumerate(step_probs(uncached)):
            assert close(probs, expected_probs(m, ids[max(0, 3 + k - 12) : 3 + k]))  # always the last 12


RECIPE = dict(pos_encoding="rotary", norm="rmsnorm", qk_norm=True, activation="relu2", bigram_buckets=16)


@pytest.mark.parametrize("switches", [{}, RECIPE, dict(RECIPE, value_embeddings=True, bias=False, logit_cap=3.0)])
def test_the_fast_step_gives_the_readable_forwards_logits_and_fills_the_same_cache(switches):
    m = model(**switches)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    x = torch.randint(0, 20, (3, 12))
    with torch.inference_mode():
        _, fast = m.start(x[:, :2])
        _, readable = m.start(x[:, :2])
        for t in range(2, 12):  # up to a full window, three rows side by side
            logits = fast.read(x[:, t : t + 1])
            assert torch.allclose(logits, m(x[:, t : t + 1], readable.cache)[:, -1], atol=1e-5), t
        assert m.state_length(fast) == m.state_length(readable) == 12
        for a, b in zip(fast.cache, readable.cache):
            assert torch.allclose(a["k"], b["k"], atol=1e-5) and torch.allclose(a["v"], b["v"], atol=1e-5)


def test_the_fast_path_writes_the_readable_paths_text_with_the_same_seed(monkeypatch):
    m = model(**RECIPE)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    fast = [s.text for seed in range(3) for s in generate(m, TOK, "abc", 2, max_chars=30, seed=seed, stop=None)]
    monkeypatch.setattr(Generation, "read", lambda state, idx: state.model(idx, state.cache)[:, -1])
    readable = [s.text for seed in range(3) for s in generate(m, TOK, "abc", 2, max_chars=30, seed=seed, stop=None)]
    assert fast == readable and len(set(fast)) > 1 and len(fast[0]) == 33  # past the 12-character window too


def test_rms_is_f_rms_norm_for_large_and_tiny_vectors():
    x = torch.randn(4, 3, 32)
    for scale in (1e-3, 1.0, 100.0):
        assert torch.allclose(rms(x * scale), F.rms_norm(x * scale, (32,)), atol=1e-5, rtol=1e-5), scale


def test_a_tiny_text_is_learned_to_near_zero_loss():
    torch.manual_seed(0)
    text = "el sol sale por el este. " * 40
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text))
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, block_size=16, d_model=48, n_heads=4, n_layers=2, d_ff=96, dropout=0.0
    )
    m = Transformer(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(250):
        starts = torch.randint(0, len(ids) - 17, (16,))
        w = ids[starts[:, None] + torch.arange(17)]
        loss = F.cross_entropy(m(w[:, :-1]).reshape(-1, tok.vocab_size), w[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the first characters of a window cannot be known (the phrase has period 25 > context start); the rest can
    m.eval()
    w = ids[torch.arange(0, 400, 25)[:, None] + torch.arange(17)]
    losses = F.cross_entropy(m(w[:, :-1]).transpose(1, 2), w[:, 1:], reduction="none")
    assert losses[:, 8:].mean() < 0.05


def test_draw_follows_the_same_random_stream_as_multinomial():
    from taller.sampling import draw

    probs = torch.softmax(torch.randn(3, 20) * 3, dim=-1)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(200):
        assert torch.equal(draw(probs, g1), torch.multinomial(probs, 1, generator=g2)[:, 0])


def test_records_are_optional_and_change_nothing_else():
    m = model()
    tok = CharTokenizer(list("abcdefghijklmnopqr \n"))
    with_top = generate(m, tok, "abc", 2, max_chars=15, seed=3, stop="a")
    without = generate(m, tok, "abc", 2, max_chars=15, seed=3, stop="a", top=0)
    assert [s.text for s in with_top] == [s.text for s in without]
    assert all(len(step.top) == 5 for s in with_top for step in s.steps)
    assert all(step.top == [] for s in without for step in s.steps)
    assert [len(s.steps) for s in with_top] == [len(s.steps) for s in without]
