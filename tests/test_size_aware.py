"""Defaults fitted to the text: dropout and the average chosen from how many times the training will read it, and the
run keeping its best weights."""

import json
import math
import shlex
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config

import taller
from taller.apps.cli import main
from taller.config import Config
from taller.models import build_model, set_dropout
from taller.models.kind import BY_PASSES, REGULARISE_BY_PASSES, by_passes, guessed_tokens_per_s
from taller.runs.checkpoint import load_tensors
from taller.text import short
from taller.threads import WARMUP
from taller.training.average import WeightAverage
from taller.training.next_token import NextToken
from taller.training.passes import MEASURED_AT, PassesCheck
from taller.training.verdict import mix_command


@pytest.mark.parametrize(
    "epochs, dropout, ema",
    [(1, 0.0, 0.0), (3, 0.0, 0.0), (4, 0.0, 0.99), (14, 0.0, 0.99), (15, 0.1, 0.99), (18, 0.1, 0.99), (40, 0.2, 0.99)],
)
def test_dropout_and_the_average_follow_the_passes(epochs, dropout, ema):
    cfg = Config.preset("base")
    assert cfg.model.dropout == cfg.train.ema == BY_PASSES
    cfg.train.epochs = epochs
    said = cfg.fit_to_text(1_000_000)  # --epochs: the passes whatever the size
    assert (cfg.model.dropout, cfg.train.ema) == (dropout, ema) == by_passes(epochs)
    assert said.startswith(f"dropout {short(dropout)}; ")
    assert f"(unas {epochs},0 veces: {epochs} épocas; --set dropout=X y --set ema=X los fijan)" in said
    limits = [limit for limit, _, _ in REGULARISE_BY_PASSES]
    assert limits == sorted(limits) and limits[-1] == math.inf  # every number of passes finds its row


def test_a_budget_in_seconds_is_read_at_the_speed_guessed_from_the_model():
    cfg = Config.preset("base")
    cfg.model.vocab_size, cfg.train.max_time = 100, 180.0
    speed = guessed_tokens_per_s(cfg.model)  # about 10,000 for base: the slowest of our machines
    assert 8_000 < speed < 12_000
    passes, why = cfg.expected_passes(1_000_000)
    assert passes == pytest.approx(180 * speed / 1_000_000)
    assert why.startswith("180 s a unos ") and "tokens/s según el tamaño del modelo" in why
    assert cfg.expected_passes(200_000)[0] == pytest.approx(5 * passes)  # a fifth of the text: read five times more


def test_a_dropout_given_by_the_user_is_kept():
    cfg = Config.preset("base")
    cfg.set("dropout", "0.05")
    cfg.set("ema", "0")
    assert cfg.fit_to_text(10_000) is None and cfg.model.dropout == 0.05 and cfg.train.ema == 0


def test_a_model_built_without_a_text_has_no_dropout_yet():
    cfg = Config.preset("base").model
    cfg.vocab_size = 20
    model = build_model(cfg)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert cfg.dropout == BY_PASSES  # the configuration itself is left for training to decide


def test_training_chooses_the_dropout_writes_it_and_says_so(tmp_path, corpus_file):
    said = []
    taller.train(
        tiny_config(corpus_file, dropout=-1, max_steps=5),
        tmp_path / "run",
        progress=False,
        log=lambda *a, **k: said.append(" ".join(map(str, a))),
    )
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert "dropout = 0.2" in saved and "ema = 0.99" in saved  # 1,000 epochs: the last row of the table
    assert any(
        line.startswith("Según las veces que leeré el texto: dropout 0,2; media de los pesos 0,99") for line in said
    )


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
    assert cfg.model.dropout == 0.2 and objective.chosen.startswith("dropout 0,2; ")  # 1,000 epochs
    assert all(m.p == 0.2 for m in objective.model.modules() if isinstance(m, torch.nn.Dropout))


def test_a_network_that_trails_the_8gram_says_so_and_the_command_it_prints_mixes_them(tmp_path, corpus_file):
    said = []
    run = tmp_path / "red"
    taller.train(
        tiny_config(corpus_file, max_steps=3, samples=0),  # 3 steps: far behind the 8-gram
        run,
        progress=False,
        log=lambda *a, **k: said.append(" ".join(map(str, a))),
    )
    net = [line for line in said if line.startswith("La red sola (")]
    assert len(net) == 1 and "queda por detrás del 8-grama" in net[0]
    command = net[0].split("Mézclalas con: ")[1]
    assert command == mix_command(run)
    for part in command.split(" && "):  # runnable as printed
        argv = shlex.split(part)
        assert argv[0] == "taller"
        main(argv[1:] + ["--quiet"])
    mix = json.loads((tmp_path / "red-mezcla" / "state.json").read_text())
    ngram = Config.load(tmp_path / "red-8grama" / "config.toml", saved=True)
    assert ngram.model.kind == "ngram" and ngram.data == Config.load(run / "config.toml", saved=True).data  # same text
    assert mix["val_bpc"] < json.loads((run / "state.json").read_text())["val_bpc"]


def test_the_first_steps_measured_correct_the_guess(tmp_path):
    cfg = Config.preset("base")
    cfg.model.vocab_size, cfg.train.max_time = 40, 60.0
    check = PassesCheck.before(cfg, resume=False)
    cfg.fit_to_text(10_000)  # guessed: read about 600 times (the last row)
    assert (cfg.model.dropout, cfg.train.ema) == (0.2, 0.99)
    model = build_model(cfg.model)
    set_dropout(model, cfg.model.dropout)
    trainer = SimpleNamespace(
        step=0,
        train_time=0.0,
        model=model,
        average=WeightAverage(model, 0.99),
        objective=SimpleNamespace(epochs_done=lambda step: step / 1_000),  # 1,000 steps an epoch
        writer=True,
        out=tmp_path,
        cfg=cfg,
    )
    said = []
    for step in range(1, MEASURED_AT + 1):  # after the warm-up, steps of 0.02 s: 3,000 steps in 60 s, 3 epochs
        trainer.step, trainer.train_time = step, trainer.train_time + (1.0 if step <= WARMUP else 0.02)
        said.append(check.after_step(trainer, None))
    assert said[:-1] == [None] * (MEASURED_AT - 1)
    assert said[-1] == (
        "Medidos los primeros pasos (0,020 s cada uno), leeré el texto unas 3,0 veces, no las estimadas: sigo con "
        "dropout 0 y sin media de los pesos (--set dropout=X y --set ema=X los fijan)."
    )
    assert (cfg.model.dropout, cfg.train.ema, trainer.average) == (0.0, 0.0, None)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    saved = Config.load(tmp_path / "config.toml", saved=True)
    assert (saved.model.dropout, saved.train.ema) == (0.0, 0.0)  # what a --resume goes on with


def test_dropout_given_or_epochs_leave_nothing_to_measure():
    cfg = Config.preset("base")
    cfg.train.max_time = 60.0
    cfg.set("dropout", "0.1")
    cfg.set("ema", "0.9")
    assert PassesCheck.before(cfg, resume=False) is None
    epochs = Config.preset("base")
    assert PassesCheck.before(epochs, resume=False) is None  # --epochs: the passes are known
