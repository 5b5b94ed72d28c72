"""What argparse says, in Spanish without touching argparse itself, and numbers written the Spanish way."""

import argparse

import pytest
from conftest import one_line_error, run_cli

from taller.apps.cli import build_parser
from taller.apps.cli.parser import spanish_error
from taller.text import number, spanish_list, thousands

MISTAKES = [  # (argv, the whole line the user reads)
    (["corpus"], "faltan estos argumentos: ORDEN. Prueba `taller corpus --help`."),
    (["--nada"], "argumentos no reconocidos: --nada. Prueba `taller --help`."),
    (
        ["score", "r", "--optimizer", "x"],
        "argumento --optimizer: opción no válida: 'x' (elige entre 'sgd', 'adam'). Prueba `taller score --help`.",
    ),
    (["train", "--set"], "argumento --set: espera un valor. Prueba `taller train --help`."),
    (
        ["generate", "r", "--temperature"],
        "argumento --temperature: espera al menos un valor. Prueba `taller generate --help`.",
    ),
    (
        ["embeddings", "r", "--analogy", "a", "b"],
        "argumento --analogy: espera 3 valores. Prueba `taller embeddings --help`.",
    ),
    (
        ["train", "--seed", "x"],
        "argumento --seed: valor semilla (entero entre 0 y 2**63-1) no válido: 'x'. Prueba `taller train --help`.",
    ),
    (["serve", "--port", "x"], "argumento --port: valor int no válido: 'x'. Prueba `taller serve --help`."),
    (
        ["train", "--epochs", "2", "--max-time", "3"],
        "argumento --max-time: no se puede usar junto con --epochs. Prueba `taller train --help`.",
    ),
    (
        ["generate", "r", "--greedy=1"],
        "argumento --greedy: no lleva valor (sobra '1'). Prueba `taller generate --help`.",
    ),
    (
        ["generate", "r", "--to", "1"],
        "opción ambigua: --to puede ser --top-k, --top-p. Prueba `taller generate --help`.",
    ),
]


@pytest.mark.parametrize("argv, said", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_argparse_mistakes_are_said_in_spanish(argv, said, capsys):
    assert one_line_error(*run_cli(argv, capsys)[::2]) == "error: " + said


def test_a_value_that_looks_like_a_message_is_left_as_typed():
    typed = "invalid x value: y (choose from z)"
    assert (
        spanish_error(f"argument --seed: invalid semilla value: {typed!r}")
        == f"argumento --seed: valor semilla no válido: {typed!r}"
    )
    assert spanish_error("a message argparse may add one day") == "a message argparse may add one day"


def test_the_help_is_spanish_and_argparse_is_left_as_it_was(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and out.startswith("uso: taller train")
    assert "\nopciones:\n" in out and "-h, --help  " in out and "muestra esta ayuda y termina" in out
    assert "\nargumentos:\n" in run_cli(["generate", "--help"], capsys)[1]
    assert "muestra la versión y termina" in run_cli(["--help"], capsys)[1]
    plain = argparse.ArgumentParser(prog="otro")  # another program in the same process keeps argparse's English
    assert plain.format_usage().startswith("usage: otro") and "show this help message" in plain.format_help()
    assert build_parser().format_usage().startswith("uso: taller")


def test_every_alias_reaches_the_same_handler():
    parser = build_parser()
    pairs = [
        ("train", "entrenar", []),
        ("generate", "generar", ["r"]),
        ("fill", "rellenar", ["r", "--text", "_"]),
        ("decompress", "descomprimir", ["r", "f"]),
        ("serve", "servir", []),
    ]
    for english, spanish, rest in pairs:
        handler = parser.parse_args([english, *rest]).func
        assert handler is parser.parse_args([spanish, *rest]).func and handler.__name__ == "cmd_" + english
    assert parser.parse_args(["corpus", "lista"]).func is parser.parse_args(["corpus", "list"]).func
    assert parser.parse_args([]).func is None  # no command: main prints the help


def test_numbers_are_written_the_spanish_way():
    assert number(1234567.891) == "1.234.567,89" and number(0.5, 3) == "0,500" and number(-1234.5, 1) == "-1.234,5"
    assert thousands(12345.6) == "12.346" and thousands(999) == "999" and thousands(0) == "0"
    assert spanish_list(["a", "b", "c"]) == "a, b y c" and spanish_list(["a"]) == "a" and spanish_list([]) == ""
