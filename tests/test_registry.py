"""The registry of model kinds: each kind's [model] section is its own, and the rest of taller asks the registry."""

import dataclasses
import tomllib

import pytest
import torch
from conftest import one_line_error, run_cli

from taller.apps.cli import build_parser
from taller.config import Config
from taller.errors import TallerError
from taller.models import KINDS, build_model, kind_named


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_builds_from_its_own_section(name):
    kind = KINDS[name]
    cfg = kind.config(vocab_size=12)
    assert cfg.kind == name and kind_named(name) is kind
    if kind.combines:  # a mix is built over other runs' models: two count models here
        cfg.runs = "a,b"
    model = build_model(cfg)
    assert isinstance(model, torch.nn.Module)
    if kind.combines:
        model.attach(
            [
                build_model(KINDS["bigram"].config(vocab_size=12)).fit(torch.randint(0, 12, (200,)).numpy())
                for _ in range(2)
            ]
        )
    if kind.language_model:  # the contract of left-to-right models: (B, T) ids -> (B, T, V) logits
        if kind.counted:
            model.fit(torch.randint(0, 12, (200,)).numpy())
        assert model(torch.randint(0, 12, (2, 5))).shape == (2, 5, 12)


def test_a_transformer_section_has_only_transformer_keys():
    keys = set(Config().to_dict()["model"])
    assert {"d_model", "n_heads", "block_size", "attention"} <= keys
    assert not keys & {"order", "window", "negatives", "min_count", "subsample", "d_embed"}  # other kinds' keys


def test_a_key_of_another_kind_is_named_with_its_kind():
    cfg = Config()
    with pytest.raises(TallerError, match=r"'order' es una clave de otro modelo \(ngram, ngram-clasificador\)"):
        cfg.set("order", 3)
    cfg.set("kind", "ngram")
    cfg.set("order", 3)
    assert cfg.model.order == 3 and not hasattr(cfg.model, "d_model")


def test_switching_kind_keeps_the_keys_both_kinds_have():
    cfg = Config.preset("base")
    cfg.set_kind("lstm")
    assert type(cfg.model).__name__ == "LSTMConfig"
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.block_size) == (128, 3, 64)  # the base preset's
    cfg.validate()


def test_compare_sets_a_key_only_for_the_models_that_have_it():
    cfg = Config.preset("ngram")
    cfg.apply_overrides(["d_model=64", "order=5", "lr=0.01"], skip_other_kinds=True)
    assert cfg.model.order == 5 and cfg.train.lr == 0.01
    with pytest.raises(TallerError, match="clave de otro modelo"):
        cfg.apply_overrides(["d_model=64"])


def test_a_saved_config_with_every_kinds_keys_still_loads(tmp_path):
    """taller 0.1 wrote all kinds' keys in every config.toml: a run folder skips them, a user's file refuses them."""
    old = {
        "model": {"kind": "lstm", "vocab_size": 30, "d_model": 32, "order": 8, "window": 5, "n_heads": 4},
        "train": {"lr": 0.002},
    }
    path = tmp_path / "config.toml"
    path.write_text(
        "[model]\n"
        + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in old["model"].items())
        + "[train]\nlr = 0.002\n"
    )
    cfg = Config.load(path, saved=True)
    assert cfg.model.kind == "lstm" and cfg.model.d_model == 32 and cfg.train.lr == 0.002
    with pytest.raises(TallerError, match="clave de otro modelo"):
        Config.load(path)
    cfg.save(tmp_path / "again.toml")
    assert set(tomllib.loads((tmp_path / "again.toml").read_text())["model"]) == {
        f.name for f in dataclasses.fields(cfg.model)
    }


def test_the_command_line_offers_the_registrys_kinds():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    model = next(a for a in train._actions if a.dest == "model")
    assert list(model.choices) == list(KINDS)


def test_an_unknown_kind_and_an_impossible_command_are_one_line(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('[model]\nkind = "gpt5"\n')
    code, _, err = run_cli(["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")], capsys)
    one_line_error(code, err)
    assert "model.kind='gpt5' no existe" in err and "transformer" in err and not (tmp_path / "r").exists()
    code, _, err = run_cli(["train", "--order", "3", "--out", str(tmp_path / "r")], capsys)
    one_line_error(code, err)
    assert "clave de otro modelo (ngram, ngram-clasificador)" in err and not (tmp_path / "r").exists()
