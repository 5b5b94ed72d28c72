"""The model protocol: every kind declares what its models offer (Kind fields, models/protocols.py), and the models
really implement exactly that; eval mode is switched one way and given back; attention maps leave the model as it
was; distributed batches come through a parameter."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from taller.config import Config, average_for
from taller.data.batches import Batches, ShuffledWindows
from taller.evaluate import log_distributions, scored_targets, val_text
from taller.models import KINDS, Kind, ModelConfig, build_model
from taller.models.kind import OBJECTIVES, by_passes
from taller.models.modes import evaluating
from taller.models.protocols import PROTOCOLS, offered
from taller.training import loop

V = 20


def tiny(kind: str) -> torch.nn.Module:
    """A small model of `kind`, untrained (a mix of two parts, not attached)."""
    cfg = Config()
    cfg.set_kind(kind)
    for key, value in dict(
        block_size=16, d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.0, n_labels=2, runs="a,b"
    ).items():
        if hasattr(cfg.model, key):
            setattr(cfg.model, key, value)
    cfg.model.vocab_size = V
    torch.manual_seed(0)
    return build_model(cfg.model)


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_declares_exactly_the_protocols_its_models_implement(name):
    model, declared = tiny(name), offered(KINDS[name])
    assert {p.__name__ for p in PROTOCOLS.values() if isinstance(model, p)} == {p.__name__ for p in declared}


def test_what_a_kind_declares_works_on_a_tiny_model():
    x = torch.randint(0, V, (1, 9))
    for name in (n for n, k in KINDS.items() if k.shows_attention):
        model = tiny(name).eval()
        maps = model.attention_maps(x)
        assert len(maps) == 2 and maps[0].shape == (1, 2, 9, 9), name
        assert torch.allclose(maps[1].sum(-1), torch.ones(1, 2, 9)), name  # each row: where one position looks
    for name in (n for n, k in KINDS.items() if k.encoder_decoder):
        maps = tiny(name).eval().cross_attention_maps(x, x[:, :4])
        assert maps[0].shape == (1, 2, 4, 9), name
    for name in (n for n, k in KINDS.items() if k.traces_state):
        trace = tiny(name).trace(x)
        assert trace["estado"].shape == (9, 32), name
    for name in (n for n, k in KINDS.items() if k.shows_embedding):
        assert tiny(name).embedding.weight.shape[1] == 32, name
    for name in (n for n, k in KINDS.items() if k.slower_parts):
        model = tiny(name)
        ratios = model.lr_ratios()
        assert (
            ratios
            and set(ratios) <= {id(p) for p in model.parameters()}
            and set(ratios.values()) == {model.cfg.encoder_lr}
        ), name
    for name in (n for n, k in KINDS.items() if k.count_table):
        table = tiny(name).table()
        assert table.shape == (V, V) and torch.allclose(table.sum(1), torch.ones(V, dtype=table.dtype)), name


def test_the_loops_table_covers_every_declared_objective_and_an_unknown_one_fails_when_declared():
    fitted_elsewhere = {"counts", "mix"}  # training/counting.py and training/mixing.py, not the loop
    assert set(loop.OBJECTIVES) == set(OBJECTIVES) - fitted_elsewhere
    assert {k.objective for k in KINDS.values()} <= set(OBJECTIVES)
    with pytest.raises(ValueError, match="objective='magia'.*next_token"):
        Kind(name="nuevo", title="nuevo", config=ModelConfig, build=torch.nn.Identity, objective="magia")


def test_a_kind_declares_whether_it_starts_from_a_pretrained_run():
    # `--init RUN` is offered by the declaration, never by probing the config: and the declaration must match it
    assert sorted(n for n, k in KINDS.items() if k.fine_tunes) == [
        "bert-clasificador",
        "bert-tildes",
        "t5-tareas",
        "t5-tildes",
    ]
    tagger = KINDS["bert-tildes"]
    with pytest.raises(ValueError, match="fine_tunes"):
        Kind(name="nuevo", title="nuevo", config=tagger.config, build=torch.nn.Identity, objective="next_token")


def test_evaluating_switches_to_eval_and_gives_back_the_mode_it_found():
    model = tiny("transformer").train()
    with evaluating(model):
        assert not model.training and not any(m.training for m in model.modules())
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with evaluating(model):
        pass
    assert not model.training
    model.train()
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError("boom")
    assert model.training  # given back after an exception too


def test_scoring_gives_back_the_training_mode():
    model = tiny("transformer").train()
    ids = np.arange(40) % V
    logp = log_distributions(model, ids, 16)
    assert model.training and logp.shape == (39, V)
    list(
        scored_targets(
            model,
            val_text(ids, np.ones(40, dtype=np.int64), 16),
            torch.device("cpu"),
            torch.autocast("cpu", enabled=False),
        )
    )
    assert model.training


@pytest.mark.parametrize("name", ["transformer", "t5"])
def test_attention_maps_leave_the_model_unchanged_and_need_no_lock(name):
    model = tiny(name).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    held = {(n, k) for n, m in model.named_modules() for k, v in vars(m).items() if isinstance(v, torch.Tensor)}
    texts = [torch.randint(0, V, (1, 5 + i)) for i in range(8)]
    alone = [model.attention_maps(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:  # several requests at once (the server's threads), no lock
        together = list(pool.map(model.attention_maps, texts))
    for a, b in zip(alone, together):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    after = {(n, k) for n, m in model.named_modules() for k, v in vars(m).items() if isinstance(v, torch.Tensor)}
    assert after == held  # no module keeps the maps it computed


@pytest.mark.parametrize("sampler", [Batches, ShuffledWindows])
def test_each_rank_reads_its_own_block_of_the_global_batch(sampler):
    ids, cpu = np.arange(500) % V, torch.device("cpu")
    whole = sampler(ids, 8, 6, cpu, seed=3)
    ranks = [sampler(ids, 8, 6, cpu, seed=3, share=(r, 3)) for r in range(3)]
    for _ in range(4):
        x, y = whole.next()
        blocks = [b.next() for b in ranks]
        assert torch.equal(torch.cat([b[0] for b in blocks]), x) and torch.equal(torch.cat([b[1] for b in blocks]), y)
        assert [len(b[0]) for b in blocks] == [2, 2, 2]


def test_one_rule_by_passes_picks_dropout_and_the_average():
    rows = [(0.0, 0.0), (0.0, 0.0), (0.0, 0.99), (0.1, 0.99), (0.1, 0.99), (0.2, 0.99), (0.2, 0.99)]
    assert [by_passes(n) for n in (1, 3.9, 4, 15, 39.9, 40, 1e6)] == rows
    train = Config().train
    train.ema = -1.0
    assert average_for(train, 20.0) == "media de los pesos 0,99" and train.ema == 0.99
