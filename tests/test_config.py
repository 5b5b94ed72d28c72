import pytest

from taller.config import Config, list_presets
from taller.errors import TallerError


def test_presets_load_and_validate():
    assert {"base", "seed"} <= set(list_presets())
    seed = Config.preset("seed").validate()
    assert (seed.model.d_model, seed.model.n_heads, seed.model.d_ff, seed.model.n_layers) == (128, 4, 256, 2)
    assert (seed.model.dropout, seed.model.block_size) == (0.2, 16)
    Config.preset("base").validate()


def test_set_converts_types_and_accepts_bare_or_dotted_keys():
    cfg = Config()
    cfg.apply_overrides(["d_model=256", "train.lr=1e-3", "tie_weights=true", "corpus=quijote"])
    assert cfg.model.d_model == 256 and cfg.train.lr == 1e-3 and cfg.model.tie_weights is True
    assert cfg.data.corpus == "quijote"


@pytest.mark.parametrize(
    "pairs, fragment",
    [
        (["d_model=130", "n_heads=4"], "no es divisible"),
        (["lr=-0.1"], "train.lr"),
        (["colour=red"], "clave desconocida 'colour'"),
        (["d_model=grande"], "debe ser un entero"),
        (["dropout=1.5"], "model.dropout"),
        (["n_layers=200", "d_model=8192", "d_ff=65536"], "millones de parámetros"),
        (["d_model"], "clave=valor"),
        (["lr=nan"], "train.lr"),
    ],
)
def test_impossible_configurations_are_explained(pairs, fragment):
    cfg = Config()
    with pytest.raises(TallerError) as e:
        cfg.apply_overrides(pairs)
        cfg.validate()
    assert fragment in str(e.value)


def test_toml_round_trip(tmp_path):
    cfg = Config.preset("seed")
    cfg.set("d_model", 64)
    cfg.save(tmp_path / "c.toml")
    assert Config.load(tmp_path / "c.toml") == cfg


def test_bad_toml_is_explained(tmp_path):
    (tmp_path / "c.toml").write_text("[model\nd_model = 3")
    with pytest.raises(TallerError, match="TOML"):
        Config.load(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("[modelo]\nd_model = 3")
    with pytest.raises(TallerError, match="sección desconocida"):
        Config.load(tmp_path / "d.toml")


def test_another_kind_keeps_what_was_chosen_but_not_the_old_kinds_defaults():
    cfg = Config()
    cfg.set_kind("bert-clasificador")
    cfg.set("d_model", 48)
    cfg.set_kind("t5-tareas")  # both have encoder_lr: the classifier's default 1 is nobody's choice
    assert cfg.model.d_model == 48 and cfg.model.encoder_lr == 0.1
    cfg.set("encoder_lr", 0.5)
    cfg.set_kind("bert-clasificador")  # a value someone set goes along
    assert cfg.model.encoder_lr == 0.5 and cfg.model.d_model == 48
    cfg = Config.preset("base")  # the preset chose 3 layers: an RNN (whose own default is 1) keeps them
    cfg.set_kind("rnn")
    assert cfg.model.n_layers == 3


def test_compare_refuses_a_pretrained_run_for_a_kind_that_starts_from_none():
    from taller.apps.compare_labels import label_config

    with pytest.raises(TallerError, match="no empieza desde otra ejecución"):
        label_config("ngram=runs/x", "etiquetado.tsv", 10, ())
