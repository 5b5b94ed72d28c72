"""The two-sided probe's pairs (inspect/pairs.py): the built-in file, and a malformed file refused."""

from conftest import one_line_error, run_cli

from taller.inspect.pairs import PAIRS_FILE, read_pairs


def test_the_built_in_pairs_are_twenty_or_more_with_two_answers_each():
    pairs = read_pairs(PAIRS_FILE)
    assert len(pairs) >= 20 and all(a != b and a.isalpha() and b.isalpha() for a, b in (p.answers for p in pairs))
    assert all(p.endings[0] != p.endings[1] for p in pairs)


def test_a_malformed_line_is_refused_with_its_number(trained_run, tmp_path, capsys):
    bad = tmp_path / "parejas.tsv"
    bad.write_text(
        "# mis parejas\nSancho pidió\t, porque tenía sed.\tagua\t, porque tenía sueño.\tcama\n"
        "Don Quijote tomó la\t y arremetió.\tlanza\n",
        encoding="utf-8",
    )
    line = one_line_error(*run_cli(["probe", str(trained_run.dir), "--pairs", str(bad)], capsys)[::2])
    assert "línea 3" in line and "5 campos" in line
