"""Size-aware defaults: dropout chosen from the training text's size, and the run keeping its best weights."""

import json

import pytest
import torch
from conftest import tiny_config

import taller
from taller.config import Config
from taller.models import build_model
from taller.models.kind import BY_SIZE, DROPOUT_BY_SIZE
from taller.runs.checkpoint import load_tensors
from taller.text import short
from taller.training.next_token import NextToken


@pytest.mark.parametrize(
    "tokens, dropout",
    [(10_000, 0.2), (49_999, 0.2), (200_000, 0.1), (999_999, 0.1), (1_000_000, 0.0), (1_900_000, 0.0)],
)
def test_the_dropout_by_size_follows_its_table(tokens, dropout):
    cfg = Config.preset("base")
    assert cfg.model.dropout == BY_SIZE
    said = cfg.model.fit_to_text(tokens)
    assert cfg.model.dropout == dropout
    assert (
        said.startswith(f"dropout {short(dropout)} (")
        and "tokens de entrenamiento" in said
        and "--set dropout=" in said
    )
    assert [limit for limit, _ in DROPOUT_BY_SIZE] == sorted(limit for limit, _ in DROPOUT_BY_SIZE)


def test_a_dropout_given_by_the_user_is_kept():
    cfg = Config.preset("base")
    cfg.set("dropout", "0.05")
    assert cfg.model.fit_to_text(10_000) is None and cfg.model.dropout == 0.05


def test_a_model_built_without_a_text_has_no_dropout_yet():
    cfg = Config.preset("base").model
    cfg.vocab_size = 20
    model = build_model(cfg)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert cfg.dropout == BY_SIZE  # the configuration itself is left for training to decide


def test_training_chooses_the_dropout_writes_it_and_says_so(tmp_path, corpus_file):
    said = []
    taller.train(
        tiny_config(corpus_file, dropout=-1, max_steps=5),
        tmp_path / "run",
        progress=False,
        log=lambda *a, **k: said.append(" ".join(map(str, a))),
    )
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert "dropout = 0.2" in saved  # 1,300 characters: the smallest row of the table
    assert any("Según el tamaño del texto: dropout 0,2" in line for line in said)


def scripted_scores(monkeypatch, losses: list[float]):
    """The epochs' validation scores as given (the final whole-text score stays real)."""
    real, script = NextToken.evaluate, iter(losses)

    def evaluate(self, whole: bool = False):
        return real(self, whole) if whole else {"val_loss": next(script), "val_bpc": 0.0}

    monkeypatch.setattr(NextToken, "evaluate", evaluate)


@pytest.mark.parametrize("keep", [True, False])
def test_the_run_keeps_the_weights_of_its_best_validation(tmp_path, corpus_file, monkeypatch, keep):
    scripted_scores(monkeypatch, [3.0, 2.0, 2.5, 2.8, 2.9, 2.9, 2.9])  # best at the second epoch, then worse
    said = []
    run = taller.train(
        tiny_config(corpus_file, max_steps=40, keep_best=keep),
        tmp_path / "run",
        progress=False,
        log=lambda *a, **k: said.append(" ".join(map(str, a))),
    )
    folder = tmp_path / "run"
    state = json.loads((folder / "state.json").read_text())
    best, meta = load_tensors(folder / "best.safetensors")
    model, _ = load_tensors(folder / "model.safetensors")
    assert state["best_step"] == int(meta["step"]) == 2 * state["steps_per_epoch"]
    assert state["step"] == 40
    same = all(torch.equal(best[k], model[k]) for k in best)
    assert same == keep
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in model.items())  # the run in memory is the file
    assert any(line.startswith(f"Me quedo con los pesos del paso {state['best_step']}") for line in said) == keep


def test_a_classifier_chooses_its_dropout_from_its_labelled_texts_too(tmp_path):
    from taller.training.classify import Classify
    from taller.training.distributed import Context

    labelled = tmp_path / "etiquetado.tsv"
    labelled.write_text(
        "".join(f"{'a' if i % 2 else 'b'}\tuna línea corta número {i}\n" for i in range(100)), encoding="utf-8"
    )
    cfg = tiny_config(labelled, samples=0)
    cfg.set_kind("bert-clasificador")
    cfg.set("dropout", "-1")
    objective = Classify(cfg, tmp_path / "clf", Context(), resume=False)
    assert cfg.model.dropout == 0.2 and objective.chosen.startswith("dropout 0,2 (")
    assert all(m.p == 0.2 for m in objective.model.modules() if isinstance(m, torch.nn.Dropout))
