"""Choosing the next character: the maths of temperature, top-k, top-p and greedy; the generate command's checks of
those flags; and `taller corpus list` / `taller corpus show`."""

import math
from collections import Counter

import pytest
import torch
from conftest import PROVERBS, TOK, one_line_error, random_model, run_cli

from taller.sampling import filter_logits, generate

NEG_INF = float("-inf")


def random_logits(rows: int = 4, vocab: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * 2  # (B, V), all distinct


# --- temperature -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.0, 1.6, 10.0])
def test_temperature_divides_the_logits(temperature):
    logits = random_logits()
    shaped = filter_logits(logits, temperature, 0, 1.0)
    assert torch.allclose(shaped, logits / temperature, atol=1e-6)
    assert torch.allclose(shaped.softmax(-1), (logits / temperature).softmax(-1), atol=1e-6)


def test_a_low_temperature_sharpens_and_a_high_one_flattens():
    probs = {t: filter_logits(random_logits(), t, 0, 1.0).softmax(-1) for t in (0.5, 1.0, 2.0)}
    best = {t: p.max(-1).values for t, p in probs.items()}
    assert torch.all(best[0.5] > best[1.0]) and torch.all(best[1.0] > best[2.0])
    entropy = {t: -(p * p.log()).sum(-1) for t, p in probs.items()}
    assert torch.all(entropy[0.5] < entropy[1.0]) and torch.all(entropy[1.0] < entropy[2.0])


# --- top-k -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 5, 19])
def test_top_k_keeps_exactly_the_k_largest_and_leaves_them_unchanged(k):
    logits = random_logits()
    shaped = filter_logits(logits, 1.0, k, 1.0)
    kept = torch.isfinite(shaped)
    assert kept.sum(-1).tolist() == [k] * 4
    best = torch.topk(logits, k, dim=-1).indices
    for row in range(4):
        assert set(kept[row].nonzero().flatten().tolist()) == set(best[row].tolist())
    assert torch.equal(shaped[kept], logits[kept]) and torch.all(shaped[~kept] == NEG_INF)


@pytest.mark.parametrize("k", [0, 20, 50])
def test_top_k_of_0_or_at_least_the_vocabulary_keeps_everything(k):
    logits = random_logits()
    assert torch.equal(filter_logits(logits, 1.0, k, 1.0), logits)


# --- top-p -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p, kept",
    [(0.45, {2}), (0.55, {2, 0}), (0.79, {2, 0}), (0.85, {2, 0, 3}), (0.97, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3})],
)
def test_top_p_by_hand(p, kept):
    # probabilities 0.3, 0.05, 0.5, 0.15 (in that order): sorted 0.5, 0.3, 0.15, 0.05, running sums 0.5, 0.8, 0.95, 1
    logits = torch.tensor([[0.3, 0.05, 0.5, 0.15]]).log()
    shaped = filter_logits(logits, 1.0, 0, p)
    assert set(torch.isfinite(shaped[0]).nonzero().flatten().tolist()) == kept
    survivors = shaped.softmax(-1)[0]
    total = sum(float(logits.exp()[0, i]) for i in kept)
    for i in kept:  # the survivors keep their proportions, renormalised
        assert math.isclose(float(survivors[i]), float(logits.exp()[0, i]) / total, rel_tol=1e-5)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_of_most_likely_that_reaches_p(p):
    logits = random_logits(rows=8, vocab=30, seed=3)
    probs = logits.softmax(-1)
    kept = torch.isfinite(filter_logits(logits, 1.0, 0, p))
    for row in range(8):
        inside, outside = probs[row][kept[row]], probs[row][~kept[row]]
        assert inside.sum() >= p - 1e-6  # reaches p...
        assert inside.sum() - inside.min() < p  # ...and without its least likely member it would not: the smallest
        assert len(outside) == 0 or inside.min() > outside.max()  # the most likely ones
        assert torch.equal(filter_logits(logits, 1.0, 0, p)[row][kept[row]], logits[row][kept[row]])


def test_top_p_applies_to_the_tempered_distribution_after_top_k():
    logits = random_logits(rows=1, vocab=20, seed=5)
    order = logits[0].argsort(descending=True)
    # temperature first: at T = 0.1 the best character alone holds far more than 0.9
    assert torch.isfinite(filter_logits(logits, 0.1, 0, 0.9)).sum() == 1
    # top-k first, then top-p over the k survivors renormalised: p = 0.999 keeps all of them, never more
    assert torch.isfinite(filter_logits(logits, 1.0, 3, 0.999)).sum() == 3
    kept = filter_logits(logits, 1.0, 3, 0.5)
    top3 = logits[0, order[:3]].softmax(-1)  # the k best, renormalised
    need = int((top3.cumsum(-1) < 0.5).sum()) + 1
    assert set(torch.isfinite(kept[0]).nonzero().flatten().tolist()) == set(order[:need].tolist())


# --- greedy and sampling through generate ----------------------------------------------------------------------------


def test_greedy_takes_the_arg_max_at_every_step_whatever_the_temperature():
    m = random_model()
    samples = generate(m, TOK, "abc", 3, max_chars=20, greedy=True, stop=None)
    assert len({s.text for s in samples}) == 1 and len(samples[0].text) == 23  # no randomness: three equal rows
    text = samples[0].text
    with torch.inference_mode():
        for k in range(20):
            logits = m(torch.tensor([TOK.encode(text[: 3 + k])]))[0, -1]
            assert text[3 + k] == TOK.pieces[int(logits.argmax())], k
    hot = generate(m, TOK, "abc", 1, max_chars=20, greedy=True, stop=None, temperature=5.0, top_k=7, top_p=0.5, seed=1)
    assert hot[0].text == text  # greedy ignores the sampling knobs
    assert generate(m, TOK, "abc", 2, max_chars=20, top_k=1, seed=3, stop=None)[1].text == text  # top-k 1 is greedy


def test_sampling_with_top_k_only_ever_picks_one_of_the_k_best():
    m = random_model()
    samples = generate(m, TOK, "abc", 16, max_chars=25, top_k=3, temperature=1.5, seed=2, stop=None)
    picks = Counter()
    for s in samples:
        for step in s.steps:  # step.top: the model's own 5 best (temperature 1), in order
            rank = [c for c, _ in step.top].index(step.token)
            assert rank < 3
            picks[rank] += 1
    assert len(picks) == 3  # and not always the best: all three ranks were drawn


# --- the generate command's checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--temperature", "0"], "--temperature=0 debe ser positiva"),
        (["--temperature", "-0.5"], "--temperature=-0.5 debe ser positiva"),
        (["--temperature", "0.8", "0"], "--greedy"),
        (["--top-p", "0"], "--top-p=0.0 debe estar en (0, 1]"),
        (["--top-p", "1.5"], "--top-p=1.5 debe estar en (0, 1]"),
        (["--top-p", "-0.2"], "--top-p"),
        (["--top-k", "-1"], "--top-k=-1 no puede ser negativo"),
        (["--top-k", "dos"], "--top-k"),
        (["--temperature", "caliente"], "--temperature"),
    ],
)
def test_generate_refuses_bad_sampling_flags_with_one_line(trained_run, capsys, flags, fragment):
    code, out, err = run_cli(["generate", str(trained_run.dir), "--prompt", "No hay ", *flags], capsys)
    line = one_line_error(code, err)
    assert fragment in line and out == ""


def test_generate_accepts_the_edges_of_the_sampling_flags(trained_run, capsys):
    for flags in (["--top-p", "1"], ["--top-k", "0"], ["--top-p", "0.01"], ["--temperature", "0.01"]):
        code, out, err = run_cli(
            ["generate", str(trained_run.dir), "--prompt", "No hay ", "--seed", "1", *flags], capsys
        )
        assert code == 0 and out.startswith("No hay ") and err == "", flags
    a = run_cli(["generate", str(trained_run.dir), "--prompt", "No hay ", "--top-k", "1", "--seed", "1"], capsys)[1]
    b = run_cli(["generate", str(trained_run.dir), "--prompt", "No hay ", "--greedy"], capsys)[1]
    assert a == b  # top-k 1 is greedy, whatever the seed


# --- taller corpus list / show --------------------------------------------------------------------------------------


def test_corpus_list_says_where_each_corpus_is(tmp_path, monkeypatch, capsys):
    data = tmp_path / "datos"
    data.mkdir()
    (data / "refranes.txt").write_text("\n".join(PROVERBS) + "\n", encoding="utf-8")
    monkeypatch.setenv("TALLER_DATA", str(data))
    monkeypatch.setenv("TALLER_CACHE", str(tmp_path / "cache"))  # nothing downloaded before
    code, out, _ = run_cli(["corpus", "list"], capsys)
    assert code == 0
    lines = out.split("\n")
    assert lines[0].startswith("refranes ") and "4.995 refranes" in lines[0]
    assert lines[1].strip() == f"→ {data / 'refranes.txt'}"
    assert lines[2].startswith("quijote ") and "Cervantes" in lines[2]
    assert lines[3].strip() == "→ no está en este equipo (se descargará al usarlo)"
    assert "taller train --corpus mi_texto.txt" in out
    assert run_cli(["corpus", "lista"], capsys)[1] == out  # the Spanish alias


def describe_lines(out: str) -> dict[str, str]:
    return {line.split(":")[0]: line.split(":", 1)[1].strip() for line in out.split("\n")[:5]}


def test_corpus_show_of_a_file(tmp_path, capsys):
    text = "\n".join(PROVERBS * 2) + "\n"  # 24 lines: a corpus of lines
    path = tmp_path / "dichos.txt"
    path.write_text(text, encoding="utf-8")
    code, out, _ = run_cli(["corpus", "show", str(path)], capsys)
    assert code == 0
    head = describe_lines(out)
    assert head["Corpus"] == f"dichos   (fuente: {path})"
    assert head["Caracteres"] == f"{len(text):,}".replace(",", ".") and head["Líneas (no vacías)"] == "24"
    assert head["Vocabulario"] == f"{len(set(text))} caracteres distintos"
    assert head["Tipo"].startswith("una entrada por línea")
    frequent = out.split("Caracteres más frecuentes:\n")[1].split("\n\n")[0].split("\n")
    counts = Counter(text).most_common(15)
    assert len(frequent) == 15 and frequent[0].split() == [
        "␣",
        str(counts[0][1]),
        f"{100 * counts[0][1] / len(text):.2f}",
        "%",
    ]
    assert [int(line.split()[1]) for line in frequent] == [n for _, n in counts]
    examples = [line.strip() for line in out.split("Algunas líneas:\n")[1].strip().split("\n")]
    assert len(examples) == 5 and all(e in PROVERBS for e in examples)
    assert run_cli(["corpus", "ver", str(path)], capsys)[1] == out  # the Spanish alias

    prose = tmp_path / "prosa.txt"  # a few long lines: continuous text
    prose.write_text(
        "En un lugar de la Mancha, de cuyo nombre no quiero acordarme.\nNo ha mucho tiempo.\n", encoding="utf-8"
    )
    assert describe_lines(run_cli(["corpus", "show", str(prose)], capsys)[1])["Tipo"].startswith("texto continuo")


def test_corpus_show_refuses_what_is_not_a_corpus(tmp_path, capsys):
    one_line_error(*run_cli(["corpus", "show", str(tmp_path / "falta.txt")], capsys)[::2])
    code, _, err = run_cli(["corpus", "show", "refranitos"], capsys)
    assert "refranitos" in one_line_error(code, err)


def test_corpus_show_refranes(corpora, capsys, monkeypatch):
    monkeypatch.setenv("TALLER_DATA", str(corpora.folder))
    path = corpora.folder / "refranes.txt"
    text = path.read_text(encoding="utf-8")
    code, out, _ = run_cli(["corpus", "show", "refranes"], capsys)
    assert code == 0
    head = describe_lines(out)
    assert head["Corpus"] == f"refranes   (fuente: {path})"
    assert head["Caracteres"] == f"{len(text):,}".replace(",", ".") and head["Líneas (no vacías)"] == (
        "4.995" if corpora.real else "123"
    )
    assert head["Vocabulario"] == f"{len(set(text))} caracteres distintos" and head["Tipo"].startswith("una entrada")
    examples = [line.strip() for line in out.split("Algunas líneas:\n")[1].strip().split("\n")]
    known = set(text.split("\n"))
    assert len(examples) == 5 and all(e in known for e in examples) and examples[0] == text.split("\n")[0]
