"""argparse in Spanish: a parser and a help formatter that write argparse's own texts in Spanish.

argparse writes its messages in English; instead of replacing its translation function, the parser translates the
error it is about to print and the formatter writes the usage prefix and the section titles."""

from __future__ import annotations

import argparse
import re

# argparse's error messages (Python 3.11 to 3.13), each as the whole message after «argument X: » and its Spanish
ERRORS = [
    (r"the following arguments are required: (.*)", r"faltan estos argumentos: \1"),
    (r"unrecognized arguments: (.*)", r"argumentos no reconocidos: \1"),
    (r"invalid choice: (.*) \(choose from (.*)\)", r"opción no válida: \1 (elige entre \2)"),
    (r"expected one argument", "espera un valor"),
    (r"expected at least one argument", "espera al menos un valor"),
    (r"expected at most one argument", "espera como mucho un valor"),
    (r"expected (\d+) arguments?", r"espera \1 valores"),
    (r"invalid (.+?) value: (.*)", r"valor \1 no válido: \2"),
    (r"not allowed with argument (.*)", r"no se puede usar junto con \1"),
    (r"ignored explicit argument (.*)", r"no lleva valor (sobra \1)"),
    (r"ambiguous option: (.*?) could match (.*)", r"opción ambigua: \1 puede ser \2"),
]
SECTIONS = {"positional arguments": "argumentos", "options": "opciones"}  # argparse's two group titles


def spanish_error(message: str) -> str:
    """argparse's English error, in Spanish ("argument --seed: invalid int value: 'x'" → "argumento --seed: valor
    int no válido: 'x'"); a message it does not know stays as it is."""
    argument = re.match(r"argument (.+?): ", message)  # (names and metavars never hold ": "; a user's value may)
    head, body = (f"argumento {argument[1]}: ", message[argument.end() :]) if argument else ("", message)
    for pattern, spanish in ERRORS:
        found = re.fullmatch(pattern, body, flags=re.DOTALL)
        if found:
            return head + found.expand(spanish)
    return head + body


class Formatter(argparse.HelpFormatter):
    """Help texts with a Spanish usage prefix and section titles."""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "uso: " if prefix is None else prefix)

    def start_section(self, heading):
        super().start_section(SECTIONS.get(heading, heading))


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that speaks Spanish: its help, its -h line and its errors (one line, exit code 2)."""

    def __init__(self, *args, add_help: bool = True, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, add_help=False, **kwargs)
        if add_help:
            self.add_argument(
                "-h", "--help", action="help", default=argparse.SUPPRESS, help="muestra esta ayuda y termina"
            )

    def error(self, message: str):
        self.exit(2, f"error: {spanish_error(message)}. Prueba `{self.prog} --help`.\n")
