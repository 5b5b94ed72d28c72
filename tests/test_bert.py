"""BERT: the Transformer's blocks reading both sides, the masked-token objective, filling blanks, refusals."""

import json
import math
import shutil

import pytest
import torch
from conftest import PROVERBS, one_line_error, run_cli, tiny_config

import taller
from taller.config import Config
from taller.data.tokenizers import CharTokenizer
from taller.errors import TallerError
from taller.inspect.classify import read_confusion
from taller.inspect.fill import fill, rank_candidates
from taller.inspect.pairs import PAIRS_FILE, read_pairs
from taller.inspect.word_blanks import auto_candidates
from taller.models import build_model
from taller.runs.folder import Run
from taller.training.distributed import Context
from taller.training.masked import IGNORE, mask_tokens, masked_val
from taller.training.text_to_text import TextToText


def tiny(kind: str, vocab: int = 20, attention: str = "fused"):
    cfg = Config()
    cfg.set_kind(kind)
    for key, value in dict(
        block_size=16, d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.0, attention=attention
    ).items():
        cfg.set(key, value)
    cfg.model.vocab_size = vocab
    torch.manual_seed(0)
    return cfg, build_model(cfg.model).eval()


@pytest.mark.parametrize("attention", ["fused", "explicit"])
def test_bert_reads_what_comes_after_and_gpt_does_not(attention):
    x = torch.randint(0, 20, (1, 12))
    later = x.clone()
    later[0, -1] = (x[0, -1] + 1) % 20  # only the last character changes
    for kind, causal in (("bert", False), ("transformer", True)):
        _, model = tiny(kind, attention=attention)
        with torch.no_grad():
            first, changed = model(x)[0, 0], model(later)[0, 0]  # the output at the first position
        assert torch.equal(first, changed) == causal, kind
    _, bert = tiny("bert")
    (weights, *_) = bert.attention_maps(x)  # the readable path: the whole matrix, no triangle of zeros
    assert weights.shape == (1, 2, 12, 12) and bool((weights[0, :, 0, 1:] > 0).all())


def test_the_mask_token_is_one_id_past_the_tokenizers():
    cfg, model = tiny("bert", vocab=20)
    assert (
        cfg.model.mask_id == 20
        and model.embedding.num_embeddings == 21
        and model(torch.zeros(1, 3).long()).shape[-1] == 21
    )


def test_masking_proportions_on_a_large_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50, (400, 500), generator=g)  # 200.000 positions
    inputs, targets = mask_tokens(x, 0.15, mask_id=50, vocab_size=50, g=g)
    chosen = targets != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.005
    assert torch.equal(targets[chosen], x[chosen]) and torch.equal(inputs[~chosen], x[~chosen])  # the rest untouched
    n = chosen.sum().item()
    masked = (inputs[chosen] == 50).sum().item() / n
    kept = (inputs[chosen] == x[chosen]).sum().item() / n  # 10% kept, plus the random draws that hit the same token
    random = 1 - masked - kept
    assert abs(masked - 0.8) < 0.01 and abs(kept - (0.1 + 0.1 / 50)) < 0.01 and abs(random - 0.1 * 49 / 50) < 0.01
    assert inputs.max().item() == 50 and (inputs[chosen] != 50).any()


def test_validation_blanks_are_the_same_every_time():
    ids = torch.randint(0, 30, (1000,)).numpy()
    chars = torch.ones(1000, dtype=torch.int32).numpy()
    a, b = masked_val(ids, chars, 64, 0.15, 30, seed=7), masked_val(ids, chars, 64, 0.15, 30, seed=7)
    assert torch.equal(a.inputs, b.inputs) and a.inputs.shape == (15, 64)
    chosen = a.targets != IGNORE
    assert bool((a.inputs[chosen] == 30).all()) and 0.1 < chosen.float().mean().item() < 0.2


def untrained_run(text: str) -> Run:
    cfg, model = tiny("bert", vocab=len(set(text)))
    return Run(None, cfg, CharTokenizer.from_text(text), model, {})


def test_fill_fills_exactly_the_blanks_and_leaves_the_rest():
    run = untrained_run("\n".join(PROVERBS))
    filled = fill(run, "Más vale ___ que nunca.")
    assert len(filled.steps) == 3 and "_" not in filled.text
    assert filled.text.startswith("Más vale ") and filled.text.endswith(" que nunca.") and len(filled.text) == 23
    assert sorted(s.position for s in filled.steps) == [9, 10, 11]
    assert filled.steps[0].text.count("_") == 2  # each step shows the blanks still open
    assert all(0 < s.probability <= 1 and s.top[0][1] == s.probability for s in filled.steps)
    with pytest.raises(TallerError, match="ningún hueco"):
        fill(run, "Más vale tarde")


def test_candidates_are_ranked_with_probabilities_that_sum_to_one():
    run = untrained_run("\n".join(PROVERBS))
    scored = rank_candidates(run, "Más vale ___ que nunca.", ["tarde", "pronto", "nunca"])
    assert [c.word for c in scored] == ["tarde", "pronto", "nunca"] and [c.chars for c in scored] == [5, 6, 5]
    assert abs(sum(c.probability for c in scored) - 1) < 1e-9 and all(c.log_prob < 0 for c in scored)
    with pytest.raises(TallerError, match="exactamente un hueco"):
        rank_candidates(run, "Más _ vale _", ["a", "b"])


def test_a_bert_run_scores_its_blanks_and_is_refused_where_it_makes_no_sense(bert_run, capsys):
    state = json.loads((bert_run.dir / "state.json").read_text())
    vocab = bert_run.tokenizer.vocab_size  # 38 characters: a uniform guess fills 2.6% of the blanks at 5.25 bits each
    assert state["finished"] and state["val_accuracy"] > 0.1 and 0 < state["val_masked_bpc"] < math.log2(vocab)
    assert "val_bpc" not in state  # not a left-to-right model: no bits per character of the text
    assert not (bert_run.dir / "samples.txt").exists()
    for command in (
        ["generate", str(bert_run.dir)],
        ["classify", str(bert_run.dir), "--text", "hola"],
    ):
        line = one_line_error(*run_cli(command, capsys)[::2])
        assert "es un BERT" in line and "taller fill" in line
    code, out, _ = run_cli(["explain", str(bert_run.dir)], capsys)
    assert code == 0 and (bert_run.dir / "attention.png").exists() and "memoria" in out
    code, out, _ = run_cli(["fill", str(bert_run.dir), "--text", "No hay ___ sin espinas."], capsys)
    assert code == 0 and out.strip().split("\n")[-1].startswith("No hay ") and "_" not in out.strip().split("\n")[-1]


def test_fill_candidates_auto_prints_the_best_training_words(bert_run, capsys):
    code, out, _ = run_cli(
        ["fill", str(bert_run.dir), "--text", "No hay ____ sin espinas.", "--candidates", "auto"], capsys
    )
    lines = out.strip().split("\n")
    assert code == 0 and "palabras de 4 letras del entrenamiento" in lines[0]
    shown = [line.split()[0] for line in lines[2:-1]]
    words = auto_candidates(bert_run, 4)
    assert sorted(shown) == sorted(words[:10]) if len(words) <= 10 else set(shown) <= set(words)
    assert lines[-1] == f"No hay {shown[0]} sin espinas."


def test_fill_refuses_a_left_to_right_run(trained_run, capsys):
    line = one_line_error(*run_cli(["fill", str(trained_run.dir), "--text", "a_b"], capsys)[::2])
    assert "lee de izquierda a derecha" in line and "--model bert" in line


def test_the_two_sided_probe_puts_a_gpt_beside_a_bert(bert_run, trained_run, capsys):
    code, out, _ = run_cli(["probe", str(trained_run.dir), str(bert_run.dir), "--example", "coche"], capsys)
    assert code == 0 and out.count("respuesta:") == 2 and "porque ya no tiene arreglo" in out
    gpt = out.split(str(trained_run.dir))[1].split(str(bert_run.dir))[0]
    assert "no cambia con el final" in gpt  # the left-to-right model cannot see the ending
    rows = [line.split() for line in gpt.split("\n") if line.strip().startswith(("taller", "desguace"))]
    assert rows and all(r[1] == r[2] for r in rows)


def test_the_pairs_probe_gives_a_left_to_right_model_half_of_them(bert_run, trained_run, capsys):
    code, out, _ = run_cli(["probe", str(trained_run.dir), str(bert_run.dir), "--example", "quijote"], capsys)
    gpt, bert = out.strip().split("\n")[-2:]
    n = 2 * len(read_pairs(PAIRS_FILE))
    assert code == 0 and gpt.startswith("[1]") and f": {n // 2} de {n} = 50,0 %" in gpt  # the ending is never read
    assert bert.startswith("[2]") and "lee a los dos lados" in bert and out.count("✓") + out.count("✗") == 2 * n


def test_resume_continues_a_bert_run(bert_run, tmp_path):
    shutil.copytree(bert_run.dir, tmp_path / "run")  # the shared run stays as it is
    cfg = Config.load(tmp_path / "run" / "config.toml", saved=True)
    cfg.train.max_steps = 50
    run = taller.train(cfg, tmp_path / "run", resume=True, progress=False)
    assert json.loads((run.dir / "state.json").read_text())["step"] == 50


# --- the classifier: fine-tuned from a BERT run, or from scratch -------------------------------------------------

SUMMER, WINTER = (
    ["sol", "playa", "calor", "arena", "verano", "helado"],
    ["nieve", "frío", "invierno", "hielo", "bufanda", "abrigo"],
)


@pytest.fixture
def labelled_file(tmp_path):
    g = torch.Generator().manual_seed(3)
    lines = []
    for i in range(240):
        label, words = ("verano", SUMMER) if i % 2 else ("invierno", WINTER)
        picks = torch.randint(len(words), (int(torch.randint(3, 7, (1,), generator=g)),), generator=g)
        lines.append(f"{label}\t{' '.join(words[int(k)] for k in picks)}")
    path = tmp_path / "etiquetado.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def classifier_config(corpus, **overrides):
    cfg = tiny_config(corpus, **{"max_steps": 60, "samples": 0, "batch_size": 16, "lr": 3e-3, **overrides})
    cfg.set_kind("bert-clasificador")
    return cfg


def test_a_classifier_learns_a_synthetic_two_label_text(labelled_file, tmp_path, capsys):
    run = taller.train(classifier_config(labelled_file), tmp_path / "clf", progress=False)
    state = json.loads((run.dir / "state.json").read_text())
    assert state["labels"] == ["invierno", "verano"] and state["val_texts"] == 24 and state["train_texts"] == 216
    labels, counts = read_confusion(run.dir)  # beside state.json, never in it
    assert state["val_accuracy"] > 0.9 and labels == state["labels"] and sum(map(sum, counts)) == 24
    assert "confusion" not in state
    capsys.readouterr()  # (the training's own lines)
    code, out, _ = run_cli(["classify", str(run.dir), "--text", "playa arena sol"], capsys)
    lines = out.strip().split("\n")
    assert code == 0 and lines[1].split()[0] == "verano" and lines[2].split()[0] == "invierno"
    assert abs(sum(float(line.split()[1].rstrip("%")) for line in lines[1:]) - 100) < 0.2
    line = one_line_error(*run_cli(["fill", str(run.dir), "--text", "a_b"], capsys)[::2])
    assert "clasificador" in line and "taller classify" in line


def test_fine_tuning_starts_from_the_bert_runs_encoder_tensor_by_tensor(bert_run, labelled_file, tmp_path):
    from taller.training.classify import Classify
    from taller.training.distributed import Context

    cfg = classifier_config(labelled_file, block_size=64, d_model=64)  # the pretrained run's size wins
    cfg.set("init", str(bert_run.dir))
    objective = Classify(cfg, tmp_path / "ft", Context(), resume=False)
    encoder, pretrained = objective.model.encoder.state_dict(), bert_run.model.state_dict()
    assert encoder.keys() == pretrained.keys() and len(encoder) > 10
    for name, tensor in pretrained.items():
        assert torch.equal(encoder[name], tensor), name
    assert (cfg.model.block_size, cfg.model.d_model) == (
        16,
        32,
    ) and objective.tokenizer.chars == bert_run.tokenizer.chars


def test_train_with_a_task_and_init_from_the_command_line(bert_run, labelled_file, tmp_path, capsys):
    out = tmp_path / "ft"
    code, stdout, err = run_cli(
        [
            "train",
            "--model",
            "bert",
            "--task",
            "clasificar",
            "--init",
            str(bert_run.dir),
            "--corpus",
            str(labelled_file),
            "--steps",
            "3",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert Config.load(out / "config.toml", saved=True).model.init == str(bert_run.dir) and "acierta el" in stdout
    line = one_line_error(
        *run_cli(["train", "--model", "bert", "--task", "resumir", "--out", str(tmp_path / "x")], capsys)[::2]
    )
    assert "clasificar" in line
    line = one_line_error(*run_cli(["train", "--init", str(bert_run.dir), "--out", str(tmp_path / "x")], capsys)[::2])
    assert "--task" in line
    bad = tmp_path / "malo.tsv"
    bad.write_text("a\tuno\nsin tabulador\n", encoding="utf-8")
    line = one_line_error(
        *run_cli(["train", "--task", "clasificar", "--corpus", str(bad), "--out", str(tmp_path / "x")], capsys)[::2]
    )
    assert "línea 2" in line and not (tmp_path / "x" / "state.json").exists()


# --- T5: encoder, decoder and cross-attention; span corruption; fill with spans ----------------------------------


def test_t5_cross_attention_is_answer_length_by_input_length():
    cfg, model = tiny("t5")
    src, tgt = torch.randint(0, 20, (2, 13)), torch.randint(0, 20, (2, 5))
    assert model(src, tgt).shape == (2, 5, cfg.model.n_ids)
    maps = model.cross_attention_maps(src, tgt)
    assert len(maps) == cfg.model.n_dec_layers and all(m.shape == (2, 2, 5, 13) for m in maps)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 5))
    later = tgt.clone()
    later[:, -1] = (tgt[:, -1] + 1) % 20
    with torch.no_grad():  # the decoder writes left to right: a later answer token changes nothing before it
        assert torch.equal(model(src, tgt)[:, :-1], model(src, later)[:, :-1])


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_t5s_encoder_learns_at_its_own_fraction_of_the_learning_rate(optimizer):
    from taller.training.optim import make_optimizer, set_learning_rate, slowed_parameters

    cfg, model = tiny("t5")
    cfg.train.optimizer, cfg.model.encoder_lr = optimizer, 0.25
    opt = make_optimizer(model, cfg)
    set_learning_rate(opt, 1e-3)
    encoder = {id(p) for p in [*model.blocks.parameters(), *model.norm.parameters()]}
    lr_of = {
        id(p): g["lr"] / (cfg.train.muon_lr_ratio if g.get("muon") else 1.0)
        for g in opt.param_groups
        for p in g["params"]
    }
    assert len(lr_of) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    assert all(lr_of[id(p)] == pytest.approx(2.5e-4 if id(p) in encoder else 1e-3) for p in model.parameters())
    assert any(id(p) not in encoder for p in model.embedding.parameters())  # the shared embedding: full rate
    slowed = slowed_parameters(model, opt)  # what the health checkup is told: the encoder is slow on purpose
    assert {id(p) for n, p in model.named_parameters() if n in slowed} == encoder
    assert set(slowed.values()) == {0.25 * (cfg.train.muon_lr_ratio if optimizer == "muon" else 1.0)}


def test_the_classifiers_encoder_may_learn_slower_than_its_new_head():
    from taller.training.optim import make_optimizer, set_learning_rate

    cfg, model = tiny("bert-clasificador")
    cfg.model.encoder_lr = 0.25
    opt = make_optimizer(model, cfg)
    set_learning_rate(opt, 1e-3)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    encoder = {id(p) for p in model.encoder.parameters()}
    assert len(lr_of) == sum(1 for _ in model.parameters())
    assert all(lr_of[id(p)] == pytest.approx(2.5e-4 if id(p) in encoder else 1e-3) for p in model.parameters())
    assert {id(p) for p in model.head.parameters()} and not encoder & {id(p) for p in model.head.parameters()}
    cfg.model.encoder_lr = 1.5
    with pytest.raises(TallerError, match="encoder_lr"):
        cfg.model.check(cfg.data)


def test_span_corruption_hides_spans_the_answer_gives_back():
    from taller.training.spans import corrupt

    cfg, _ = tiny("t5")
    m, g = cfg.model, torch.Generator().manual_seed(1)
    ids = torch.randint(0, 20, (64,), generator=g).tolist()
    src, answer = corrupt(ids, m, g)
    assert answer[-1] == m.end_id and answer[0] == m.sentinel(0) and src.count(m.sentinel(0)) == 1
    spans, k = {}, None  # put each span back behind its sentinel: the original window
    for token in answer[:-1]:
        if token >= m.vocab_size:
            k = token
            spans[k] = []
        else:
            spans[k].append(token)
    assert [t for s in src for t in (spans[s] if s in spans else [s])] == ids
    assert len(ids) - len(src) + len(spans) == sum(map(len, spans.values())) == round(64 * m.mask_rate)


def test_t5_fill_puts_each_written_span_in_its_blank():
    text = "\n".join(PROVERBS)
    cfg, model = tiny("t5", vocab=len(set(text)))
    tok, m = CharTokenizer.from_text(text), cfg.model
    run = Run(None, cfg, tok, model, {})
    written = [m.sentinel(0), *tok.encode("tarde"), m.sentinel(1), *tok.encode("nunca")]
    model.answer = lambda src: [(t, 0.5) for t in written]  # what a trained decoder would write
    filled = fill(run, "Más vale _ que __.")
    assert filled.text == "Más vale tarde que nunca."
    assert len(filled.steps) == len(written) and filled.steps[0].token == "<X0>"


def test_t5_learns_a_task_written_as_text_from_its_pretrained_weights(labelled_file, tmp_path, capsys):
    from taller.training.distributed import Context
    from taller.training.text_to_text import TextToText

    corpus = tmp_path / "texto.txt"
    corpus.write_text(labelled_file.read_text(encoding="utf-8").replace("\t", " "), encoding="utf-8")
    cfg = tiny_config(corpus, max_steps=2, samples=0)
    cfg.set_kind("t5")
    pretrained = taller.train(cfg, tmp_path / "t5", progress=False)
    task = classifier_config(labelled_file, max_steps=150)
    task.set_kind("t5-tareas")
    task.set("init", str(pretrained.dir))
    objective = TextToText(task, tmp_path / "unused", Context(), resume=False)
    for name, tensor in pretrained.model.state_dict().items():  # the whole T5: encoder, decoder, cross-attention
        assert torch.equal(objective.model.state_dict()[name], tensor), name
    run = taller.train(task, tmp_path / "t5c", progress=False)
    assert json.loads((run.dir / "state.json").read_text())["val_accuracy"] > 0.9
    capsys.readouterr()  # (the training's own lines)
    code, out, _ = run_cli(["classify", str(run.dir), "--text", "nieve y frío"], capsys)
    assert code == 0 and out.split("\n")[1].split()[0] == "invierno"


def test_a_t5_classifier_starts_its_encoder_from_a_bert(bert_run, labelled_file, tmp_path):
    task = classifier_config(labelled_file, d_model=8)
    task.set_kind("t5-tareas")
    task.set("init", str(bert_run.dir))
    objective = TextToText(task, tmp_path / "unused", Context(), resume=False)
    t5, bert = objective.model, bert_run.model
    assert t5.cfg.d_model == bert.cfg.d_model == 32 and t5.cfg.vocab_size == bert.cfg.vocab_size  # the BERT's size
    mine = {**t5.blocks.state_dict(), **{f"norm.{k}": v for k, v in t5.norm.state_dict().items()}}
    its = {**bert.blocks.state_dict(), **{f"norm.{k}": v for k, v in bert.norm.state_dict().items()}}
    assert mine.keys() == its.keys() and all(torch.equal(mine[k], its[k]) for k in its)  # the encoder: the BERT's
    V = t5.cfg.vocab_size
    assert torch.equal(t5.embedding.weight[:V], bert.embedding.weight[:V])
    assert len(t5.decoder) == task.model.n_dec_layers and t5.output.out_features == t5.cfg.n_ids  # its own, anew
    assert math.isfinite(objective.loss(t5, objective.next_batch()).item())
