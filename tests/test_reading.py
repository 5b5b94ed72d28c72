"""The runs that read both sides (BERT, T5, classifiers) where a GPT goes: `taller report` and `taller compare`."""

import csv
import re

from conftest import PROVERBS, copy_run, one_line_error, run_cli, tiny_config, use_fake_clock

import taller
from taller.inspect.classify import read_confusion
from taller.inspect.fill import fill
from taller.inspect.report_reading import FILL_TEXT
from taller.runs.folder import load_run
from taller.text import number


def test_report_writes_a_page_for_a_bert_a_t5_and_a_classifier(bert_run, counted_run, tmp_path, capsys):
    bert = copy_run(bert_run.dir, tmp_path / "bert")
    counted = copy_run(counted_run.dir, tmp_path / "counted")
    (tmp_path / "dichos.txt").write_text("\n".join(PROVERBS * 3) + "\n", encoding="utf-8")
    cfg = tiny_config(tmp_path / "dichos.txt", max_steps=2, samples=0)
    cfg.set_kind("t5")
    t5 = taller.train(cfg, tmp_path / "t5", progress=False).dir

    line = one_line_error(*run_cli(["report", str(bert), "--against", str(t5)], capsys)[::2])
    assert "--against" in line and not (bert / "report.html").exists()
    for run in (bert, t5, counted):
        code, out, _ = run_cli(["report", str(run)], capsys)
        assert code == 0 and out.strip() == f"Informe en {run / 'report.html'}"
    page = (bert / "report.html").read_text(encoding="utf-8")
    accuracy = number(100 * load_run(bert, can="fills").state["val_accuracy"], 1)
    assert "Puntuaciones" in page and f"<td class='n'>{accuracy} %</td>" in page
    assert "Un hueco relleno paso a paso" in page and fill(load_run(bert, can="fills"), FILL_TEXT).text in page
    assert page.count("data:image/png;base64,") >= 3  # loss curves, attention, embeddings
    page = (t5 / "report.html").read_text(encoding="utf-8")
    assert "Atención cruzada" in page and (t5 / "cross_attention.png").exists() and "Un hueco relleno" in page
    page = (counted / "report.html").read_text(encoding="utf-8")
    labels, counts = read_confusion(counted)
    right, total = sum(counts[i][i] for i in range(len(labels))), sum(map(sum, counts))
    assert "Tabla de confusión" in page and f"{right} de {total} textos apartados" in page
    assert all(f"<th>{label}</th>" in page for label in labels) and "Un hueco relleno" not in page


def test_compare_puts_bert_and_t5_beside_the_others_in_a_fill_table(tmp_path, corpus_file, capsys, monkeypatch):
    use_fake_clock(monkeypatch, 0.25)  # two steps reach the 0.5 s
    out = tmp_path / "cmp"
    tiny = ["d_model=16", "n_layers=1", "block_size=16", "batch_size=8", "eval_chars=200", "plot_every=0", "order=3"]
    code, stdout, _ = run_cli(
        ["compare", "--corpus", str(corpus_file), "--models", "ngram,bert,t5", "--max-time", "0.5", "--out", str(out)]
        + ["--quiet", "--no-memory", "--no-mix"]
        + [f for setting in tiny for f in ("--set", setting)],
        capsys,
    )
    assert code == 0 and (out / "bert" / "model.safetensors").exists() and (out / "t5" / "state.json").exists()
    models = [r["model"] for r in csv.DictReader((out / "compare.csv").open(encoding="utf-8"))]
    assert models[:2] == ["ngram", "zlib"]  # the bits-per-character table: the left-to-right models only
    table = stdout.split("Rellenar huecos:")[1].split("\n\n")[1].split("\n")  # (the main table follows it)
    rows = {line.split()[0]: line for line in table if line.split() and line.split()[0] in ("ngram", "bert", "t5")}
    assert list(rows) == ["ngram", "bert", "t5"]
    for name in ("bert", "t5"):  # its own validation figure, beside the share of hidden words it ranks first
        state = load_run(out / name, can="fills").state
        assert f"{number(100 * state['val_accuracy'], 1)} %" in rows[name]
    assert "—" in rows["ngram"]  # an n-gram has no hidden characters of its own
    shares = {
        name: [float(x.replace(",", ".")) for x in re.findall(r"(\d+(?:,\d+)?) %", line)] for name, line in rows.items()
    }
    assert [len(x) for x in shares.values()] == [2, 3, 3] and all(0 <= x <= 100 for v in shares.values() for x in v)
    assert "## Rellenar huecos" in (out / "compare.md").read_text(encoding="utf-8")


def test_compare_refuses_a_filler_of_tokens_before_training(tmp_path, corpus_file, capsys):
    args = ["compare", "--corpus", str(corpus_file), "--models", "ngram,bert:bpe", "--out", str(tmp_path / "c")]
    line = one_line_error(*run_cli(args, capsys)[::2])
    assert "Rellenar huecos" in line and "bert" in line and not (tmp_path / "c").exists()
