"""Temperature you can see: each step records the distribution actually sampled from beside the model's own, and
`--show-probs`, table.txt, the explorer and `explain --temperature` show both; `generate --stop TEXT`."""

import pytest
import torch
from conftest import TOK, copy_run, one_line_error, random_model, run_cli
from fastapi.testclient import TestClient

from taller.apps.web.app import create_app
from taller.data.tokenizers import CharTokenizer
from taller.inspect.temperature import at_temperatures, entropy_bits
from taller.sampling import generate


def first_steps(temperature=1.0, **options):
    """The first step of 8 samples after "abc": the same context, so the same model distribution in each."""
    return [
        s.steps[0]
        for s in generate(
            random_model(), TOK, "abc", 8, max_chars=3, seed=0, stop=None, temperature=temperature, **options
        )
    ]


def test_a_low_temperature_sharpens_and_a_high_one_flattens_what_is_recorded():
    model = first_steps()[0]
    assert model.sampled == pytest.approx([p for _, p in model.top])  # temperature 1: the model's own
    cold, hot = first_steps(0.5)[0], first_steps(2.0)[0]
    assert cold.top == hot.top == model.top  # the model's column never changes
    assert cold.sampled[0] > model.sampled[0] > hot.sampled[0]  # the best takes more when cold, less when hot
    ratios = [q / p for (_, p), q in zip(model.top, cold.sampled)]
    assert ratios == sorted(ratios, reverse=True)  # p^(1/T), renormalised: the gaps widen


def test_top_k_leaves_k_tokens_and_greedy_one():
    for step in first_steps(top_k=2):
        assert sum(q > 0 for q in step.sampled) == 2 and sum(step.sampled[:2]) == pytest.approx(1)
        best = [p for _, p in step.top[:2]]
        assert step.sampled[:2] == pytest.approx([p / sum(best) for p in best])  # the two best, renormalised
    for step in first_steps(greedy=True, temperature=0.7):
        assert step.sampled == [1.0, 0.0, 0.0, 0.0, 0.0] and step.token == step.top[0][0]


def test_the_entropy_of_the_shown_distribution_follows_the_temperature(trained_run, tmp_path, capsys):
    dists = at_temperatures(trained_run, "No hay ", [0.5, 1.0, 2.0])
    entropy = {t: entropy_bits(p) for t, p in dists.items()}
    assert entropy[0.5] < entropy[1.0] < entropy[2.0]
    assert torch.allclose(dists[1.0], torch.softmax(torch.log(dists[0.5]) * 0.5, -1), atol=1e-4)  # (p^2)^(1/2)
    run = copy_run(trained_run.dir, tmp_path / "run")  # explain draws into the run folder: a copy of the shared one
    png = run / "temperature.png"
    png.unlink(missing_ok=True)
    code, out, err = run_cli(["explain", str(run), "--text", "No hay ", "--temperature", "0.5", "1", "2"], capsys)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and "temperature.png" in out
    shown = [
        float(part.split(":")[1].split()[0].replace(",", "."))
        for part in out.split("Entropía del siguiente carácter: ")[1].split("\n")[0].split(" · ")
    ]
    assert shown == pytest.approx([entropy[0.5], entropy[1.0], entropy[2.0]], abs=0.006)
    assert "--temperature=0 debe ser positiva" in one_line_error(
        *run_cli(["explain", str(run), "--temperature", "1", "0"], capsys)[::2]
    )
    assert "como mucho 8" in one_line_error(*run_cli(["explain", str(run), "--temperature", *"123456789"], capsys)[::2])


def test_show_probs_and_the_table_carry_both_columns(trained_run, capsys, tmp_path):
    table = tmp_path / "t.txt"
    code, out, _ = run_cli(
        [
            "generate",
            str(trained_run.dir),
            "--prompt",
            "No hay ",
            "--temperature",
            "0.5",
            "--top-k",
            "3",
            "--seed",
            "1",
            "--show-probs",
            "--table",
            str(table),
        ],
        capsys,
    )
    assert code == 0 and "modelo → muestreo" in out and "temperatura 0.5 · top-k 3" in out
    rows = [r.split("\t") for r in table.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["Posición", "Carácter", "Modelo", "Muestreo"] and len(rows) > 5
    for i in range(1, len(rows), 5):
        model, drawn = [float(r[2]) for r in rows[i : i + 5]], [float(r[3]) for r in rows[i : i + 5]]
        assert drawn[0] >= model[0] and drawn[3:] == [0.0, 0.0]  # colder, and only the 3 best can be drawn
        assert sum(drawn[:3]) == pytest.approx(1, abs=1e-3)
    run_cli(
        ["generate", str(trained_run.dir), "--prompt", "No hay ", "--seed", "1", "--table", str(table), "--force"],
        capsys,
    )
    rows = [r.split("\t") for r in table.read_text(encoding="utf-8").splitlines()[1:]]
    assert all(r[2] == r[3] for r in rows)  # plain sampling: both columns agree


def test_the_explorer_shows_the_distribution_drawn_from(trained_run):
    client = TestClient(create_app(trained_run.dir), base_url="http://127.0.0.1")
    plain = client.post("/api/predict", json={"run": trained_run.dir.name, "text": "No hay "}).json()
    assert "rest_sampled" not in plain and all("sampled" not in b for b in plain["bars"])
    cold = client.post(
        "/api/predict", json={"run": trained_run.dir.name, "text": "No hay ", "temperature": 0.5, "top_k": 4}
    ).json()
    assert [b["prob"] for b in cold["bars"]] == pytest.approx([b["prob"] for b in plain["bars"]])
    drawn = [b["sampled"] for b in cold["bars"]]
    assert drawn[0] > cold["bars"][0]["prob"] and drawn[4:] == [0.0] * 6 and sum(drawn) == pytest.approx(1, abs=1e-5)
    assert cold["rest_sampled"] == pytest.approx(0, abs=1e-6)
    bad = client.post("/api/predict", json={"run": trained_run.dir.name, "text": "No", "top_p": 0})
    assert bad.status_code == 400 and "top_p" in bad.json()["error"]
    line = client.post(
        "/api/sample", json={"run": trained_run.dir.name, "text": "No", "mode": "line", "stop": " ", "temperature": 0.5}
    ).json()
    assert " " not in line["added"]


DOT = CharTokenizer(list("abcdefghijklmnopqr ."))  # TOK with a full stop in the place of its newline


@pytest.mark.parametrize("stop", [".", "a", "ha", "a ."])
def test_generation_ends_at_the_first_stop(stop):
    """The same draws with and without the stop: the stopped text is the free one cut before its first stop."""
    free = generate(random_model(), DOT, "abc", 6, max_chars=150, seed=4, stop=None)
    cut = generate(random_model(), DOT, "abc", 6, max_chars=150, seed=4, stop=stop)
    assert sum(stop in f.generated for f in free) >= 2
    for f, c in zip(free, cut):
        assert c.generated == f.generated.split(stop)[0]
        if stop in f.generated:
            assert "".join(s.token for s in c.steps).endswith(stop)  # the stop's tokens are recorded, not written
        else:
            assert len(c.steps) == 150


def test_generate_stop_flag(trained_run, capsys):
    args = ["generate", str(trained_run.dir), "--prompt", "No", "--seed", "3", "--max-chars", "300"]
    free = run_cli([*args, "--stop", ""], capsys)[1]  # no stop: across the lines, up to --max-chars
    assert free.count("\n") > 2 and "." in free
    assert run_cli([*args, "--stop", "."], capsys)[1] == free.split(".")[0] + "\n"
    first_line = free.split("\n")[0] + "\n"
    assert run_cli(args, capsys)[1] == first_line  # without --stop: the run's own, the end of the line
    assert run_cli([*args, "--stop", "\\n"], capsys)[1] == first_line
