"""The switches of the modern recipe (models/transformer.py, training/optim.py): each does what it claims, and the
presets that name a reference recipe hold it."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

import taller
from taller.config import Config
from taller.data.tokenizers import CharTokenizer
from taller.errors import TallerError
from taller.models.transformer import Transformer, TransformerConfig, bigram_rows, rotary_angles, rotate
from taller.runs.checkpoint import flatten_optimizer, unflatten_optimizer
from taller.runs.folder import load_run
from taller.sampling import generate
from taller.training.optim import Muon, hidden_matrices, learning_rate, make_optimizer, orthogonalise

MODERN = dict(
    pos_encoding="rotary",
    norm="rmsnorm",
    qk_norm=True,
    activation="relu2",
    bias=False,
    bigram_buckets=64,
    value_embeddings=True,
    logit_cap=5.0,
)


def model(seed: int = 0, large: bool = False, **kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=20, block_size=12, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0, **kw)
    m = Transformer(cfg).eval()
    if large:  # weights as a trained model's: predictions depend strongly on every earlier character
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.3)
    return m


# --- positions, norms, activations ------------------------------------------------------------------------------
def test_rotary_scores_depend_only_on_relative_positions():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 8, 16), torch.randn(2, 3, 8, 16)  # (B, H, T, D)
    cos, sin = rotary_angles(32, 16)
    scores = [
        rotate(q, cos[s : s + 8], sin[s : s + 8]) @ rotate(k, cos[s : s + 8], sin[s : s + 8]).transpose(-2, -1)
        for s in (0, 5, 24)
    ]  # the same 8 characters, moved 5 and 24 positions on
    assert torch.allclose(scores[0], scores[1], atol=1e-4) and torch.allclose(scores[0], scores[2], atol=1e-4)
    moved_key = rotate(q, cos[:8], sin[:8]) @ rotate(k, cos[1:9], sin[1:9]).transpose(-2, -1)  # keys one step later
    assert (moved_key - scores[0]).abs().max() > 0.1  # ...is another relative position: other scores
    assert torch.allclose(rotate(q, cos[:8], sin[:8]).norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # a pure rotation


def test_a_rotary_model_sees_order_but_adds_nothing_to_its_input():
    m = model(large=True, pos_encoding="rotary")
    assert not hasattr(m, "pe") and not hasattr(m, "position")
    x, reordered = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]), torch.tensor([[7, 5, 3, 1, 2, 6, 4, 8]])
    assert (m(x)[0, -1] - m(reordered)[0, -1]).abs().max() > 1e-3


def test_qk_norm_gives_every_query_and_key_the_same_length():
    for rope in (False, True):
        m = model(large=True, qk_norm=True, pos_encoding="rotary" if rope else "learned")
        attention, x = m.blocks[0].attention, torch.randn(2, 12, 32) * 3
        angles = (m.rope_cos, m.rope_sin) if rope else None
        q, k, v = attention.heads(x, rope=angles)  # (B, H, T, D)
        root_d = torch.full((2, 4, 12), math.sqrt(8.0))
        assert torch.allclose(q.norm(dim=-1), root_d, atol=1e-4) and torch.allclose(k.norm(dim=-1), root_d, atol=1e-4)
        assert not torch.allclose(v.norm(dim=-1), root_d, atol=1e-2)  # values keep their lengths
    plain = model(large=True).blocks[0].attention.heads(x)[0]
    assert not torch.allclose(plain.norm(dim=-1), root_d, atol=1e-2)


def test_rmsnorm_only_rescales_and_relu2_squares():
    m = model(norm="rmsnorm", activation="relu2")
    x = torch.randn(3, 32) + 5.0  # a mean far from 0: LayerNorm would remove it, RMSNorm keeps it
    assert torch.allclose(m.norm(x), x / x.pow(2).mean(-1, keepdim=True).sqrt(), atol=1e-4)
    h = torch.randn(100)
    assert torch.equal(m.blocks[0].feed_forward.bend(h), F.relu(h) ** 2)
    assert torch.equal(model(activation="relu").blocks[0].feed_forward.bend(h), F.relu(h))


def test_zero_init_blocks_start_as_the_identity_and_the_head_is_untied_unless_asked():
    m = model(zero_init=True)
    x = torch.randn(2, 12, 32)
    assert all(torch.equal(block(x), x) for block in m.blocks)
    assert m.output.weight is not m.embedding.weight
    tied = model(tie_weights=True)
    assert tied.output.weight is tied.embedding.weight


def test_no_bias_means_no_bias_anywhere():
    names = [name for name, _ in model(bias=False).named_parameters()]
    assert names and not [n for n in names if n.endswith(".bias")]
    assert [n for n, _ in model().named_parameters() if n.endswith(".bias")]


def test_the_bigram_embedding_reads_the_pair_and_the_first_character_has_none():
    idx = torch.tensor([[3, 4, 3, 4, 5]])
    rows = bigram_rows(idx, None, 64)
    assert rows[0, 0] == 0 and (rows[0, 1:] > 0).all() and (rows < 64).all()
    assert rows[0, 1] == rows[0, 3] and rows[0, 1] != rows[0, 2]  # the same pair (3, 4) twice; (4, 3) is another
    assert torch.equal(bigram_rows(idx[:, 2:], idx[:, 1:2], 64), rows[:, 2:])  # generation passes the one before
    m, changed = model(large=True, bigram_buckets=64), idx.clone()
    changed[0, 1] = 9  # the input vectors change at positions 1 (its own and its pair) and 2 (its pair) only
    assert torch.equal(m.embed(idx, 0, None)[:, 3:], m.embed(changed, 0, None)[:, 3:])


def test_the_logit_cap_is_a_ceiling():
    capped, free = model(large=True, logit_cap=2.0), model(large=True)
    with torch.no_grad():  # a head sure of itself: logits of ±10 and more
        capped.output.weight.mul_(20), free.output.weight.mul_(20)
    x = torch.randint(0, 20, (4, 12))
    assert free(x).abs().max() > 10 and capped(x).abs().max() <= 2.0
    assert torch.allclose(capped(x), 2.0 * torch.tanh(free(x) / 2.0), atol=1e-6)  # the same weights, capped smoothly


@pytest.mark.parametrize("switches", [{}, MODERN, dict(MODERN, pos_encoding="learned", value_embeddings=False)])
def test_cached_and_uncached_logits_agree_step_by_step_inside_the_window(switches):
    m, x = model(large=True, **switches), torch.randint(0, 20, (3, 12))
    with torch.no_grad():
        full = m(x)  # (B, T, V): every position read with the whole text before it
        logits, state = m.start(x[:, :3])
        steps = [logits]
        for t in range(3, 12):
            logits, state = m.step(x[:, t : t + 1], state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps[:-1], dim=1), full[:, 2:11], atol=1e-4)
    assert torch.allclose(steps[-1], full[:, 11], atol=1e-4)


def test_impossible_switches_are_one_line():
    for pairs, fragment in (
        (["pos_encoding=rotary", "d_model=12", "n_heads=4"], "debe ser par"),
        (["norm=batchnorm"], "model.norm"),
        (["activation=tanh"], "model.activation"),
        (["bigram_buckets=1"], "bigram_buckets"),
        (["logit_cap=-1"], "logit_cap"),
        (["optimizer=sgd"], "train.optimizer"),
        (["schedule=step"], "train.schedule"),
        (["cooldown=0"], "train.cooldown"),
    ):
        cfg = Config()
        with pytest.raises(TallerError, match=fragment):
            cfg.apply_overrides(pairs)
            cfg.validate()


# --- the optimizer and the schedule ---------------------------------------------------------------------------------
def test_newton_schulz_sets_every_singular_value_near_one_in_the_same_directions():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(8, 8))
    v, _ = torch.linalg.qr(torch.randn(12, 12))
    g = u @ torch.diag(torch.logspace(0, -2, 8)) @ v[:8]  # (8, 12), singular values from 1 down to 0.01
    for matrix, exact in ((g, u @ v[:8]), (g.T, (u @ v[:8]).T)):  # wide and tall
        o = orthogonalise(matrix)
        s = torch.linalg.svdvals(o)
        assert o.shape == matrix.shape and s.min() > 0.6 and s.max() < 1.25  # from a 100:1 spread to under 2:1
        assert (o * exact).sum() / (o.norm() * exact.norm()) > 0.95  # and close to U Vᵀ itself


def test_muon_moves_the_hidden_matrices_by_an_orthogonalised_step_and_the_rest_by_adamw():
    m = model(bias=False, pos_encoding="learned")
    hidden = {id(p) for p in hidden_matrices(m)}
    assert id(m.blocks[0].attention.query.weight) in hidden and id(m.blocks[1].feed_forward.down.weight) in hidden
    assert len(hidden) == 2 * 6 and not {id(m.embedding.weight), id(m.output.weight), id(m.position.weight)} & hidden
    cfg = Config()
    cfg.set("optimizer", "muon")
    cfg.set("weight_decay", 0.0)
    opt = make_optimizer(m, cfg)
    assert isinstance(opt, Muon) and [len(g["params"]) for g in opt.param_groups if g["muon"]] == [12]
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(64, 64))
    v, _ = torch.linalg.qr(torch.randn(32, 32))
    up = m.blocks[0].feed_forward.up.weight  # (64, 32)
    before = {name: p.detach().clone() for name, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.randn_like(p)
    up.grad = u[:, :32] @ torch.diag(torch.logspace(0, -2, 32)) @ v  # a gradient with a 100:1 spread of directions
    opt.step()
    step = (before["blocks.0.feed_forward.up.weight"] - up.detach()) / (cfg.train.lr * 0.2 * math.sqrt(64))
    s = torch.linalg.svdvals(step)
    assert s.min() > 0.6 and s.max() < 1.25  # every direction moved by about the same amount
    norm_step = m.norm.weight.detach() - before["norm.weight"]  # AdamW's first step: lr against each gradient's sign
    assert torch.allclose(norm_step, -cfg.train.lr * m.norm.weight.grad.sign(), rtol=1e-3)


def test_muon_state_survives_a_checkpoint():
    a, b = model(), model()
    cfg = Config()
    cfg.set("optimizer", "muon")
    opt_a, opt_b = make_optimizer(a, cfg), make_optimizer(b, cfg)
    x, y = torch.randint(0, 20, (4, 12)), torch.randint(0, 20, (48,))
    for _ in range(2):
        opt_a.zero_grad()
        F.cross_entropy(a(x).view(-1, 20), y).backward()
        opt_a.step()
    b.load_state_dict(a.state_dict())
    tensors, meta = flatten_optimizer(opt_a)
    opt_b.load_state_dict(unflatten_optimizer({k: v.clone() for k, v in tensors.items()}, meta))  # as if from disk
    for m, opt in ((a, opt_a), (b, opt_b)):
        opt.zero_grad()
        F.cross_entropy(m(x).view(-1, 20), y).backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_the_trapezoid_warms_up_holds_then_goes_down_in_a_straight_line():
    cfg = Config()
    for key, value in dict(schedule="trapezoid", lr=1e-2, min_lr=1e-3, warmup_steps=10, cooldown=0.4).items():
        cfg.set(key, value)
    assert learning_rate(cfg, 4, 0.0) == pytest.approx(5e-3)  # warm-up: 5 of 10 steps
    assert learning_rate(cfg, 50, 0.3) == learning_rate(cfg, 50, 0.6) == pytest.approx(1e-2)  # flat until 60%
    assert learning_rate(cfg, 50, 0.8) == pytest.approx(5.5e-3)  # half-way down the last 40%
    assert learning_rate(cfg, 50, 1.0) == pytest.approx(1e-3)


def test_a_modern_run_with_muon_and_a_tied_head_trains_and_resumes_step_for_step(tmp_path, corpus_file):
    switches = dict(MODERN, optimizer="muon", schedule="trapezoid", tie_weights=True, log_every=1, epochs=3, samples=0)
    full = taller.train(tiny_config(corpus_file, max_steps=12, **switches), tmp_path / "full", progress=False)
    taller.train(tiny_config(corpus_file, max_steps=6, **switches), tmp_path / "half", progress=False)
    cfg = Config.load(tmp_path / "half" / "config.toml")
    cfg.train.max_steps = 12
    resumed = taller.train(cfg, tmp_path / "half", resume=True, progress=False)
    uniform = math.log(full.tokenizer.vocab_size)  # a model that learnt nothing
    assert resumed.state["val_loss"] == full.state["val_loss"] and full.state["val_loss"] < uniform
    loaded = load_run(tmp_path / "half")  # the tied matrix was saved twice and is read back as one
    assert loaded.model.output.weight is loaded.model.embedding.weight
    assert torch.equal(loaded.model.output.weight, resumed.model.embedding.weight)


# --- the presets that name a recipe -----------------------------------------------------------------------------------
def test_nanogpt_baby_is_nanogpts_cpu_recipe():
    cfg = Config.preset("nanogpt-baby").validate()
    m, t = cfg.model, cfg.train
    assert (m.n_layers, m.n_heads, m.d_model, m.d_ff, m.block_size, m.dropout) == (4, 4, 128, 512, 64, 0.0)
    assert (m.pos_encoding, m.activation, m.norm, m.bias, m.tie_weights) == (
        "learned",
        "gelu",
        "layernorm",
        False,
        True,
    )
    assert (t.batch_size, t.lr, t.min_lr, t.warmup_steps, t.schedule) == (12, 1e-3, 1e-4, 100, "cosine")
    assert (t.optimizer, t.beta1, t.beta2, t.weight_decay, t.grad_clip) == ("adamw", 0.9, 0.99, 0.1, 1.0)


def test_seed_trains_with_the_original_recipe_and_clasico_is_the_lessons_gpt():
    t, m = Config.preset("seed").train, Config.preset("seed").model
    assert (t.optimizer, t.lr, t.min_lr, t.warmup_steps, t.weight_decay) == ("adamw", 1e-3, 1e-3, 0, 0.0)
    assert (t.batch_size, t.grad_clip, t.beta2, m.activation) == (20, 0.5, 0.999, "relu")
    c = Config.preset("clasico").model
    assert (c.pos_encoding, c.norm, c.activation, c.tie_weights, c.qk_norm, c.zero_init) == (
        "sinusoidal",
        "layernorm",
        "gelu",
        False,
        False,
        False,
    )


def test_a_small_generation_runs_on_one_thread_and_gives_the_threads_back():
    m, seen = model(), []
    m.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate(m, CharTokenizer(list("abcdefghijklmnopqr \n")), "abc", 1, max_chars=5, seed=0, stop=None)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
