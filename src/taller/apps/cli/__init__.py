"""The command line, `taller …`: parse, call the library, print. Errors the user can fix end with one line and exit
code 2.

Each group of commands is a module holding its parsers (`add_*`) beside their handlers (`cmd_*`); every sub-parser
names its handler with `set_defaults(func=…)`, so `main` calls `args.func(args)` whatever alias was typed."""

from __future__ import annotations

import os
import sys

from taller._version import __version__
from taller.apps.cli import both_sides, looking, text, tools, training
from taller.apps.cli.parser import Parser
from taller.errors import TallerError


def build_parser() -> Parser:
    p = Parser(prog="taller", description="Construye un modelo de lenguaje desde cero, míralo aprender y mira dentro.")
    p.add_argument("--version", action="version", version=f"taller {__version__}", help="muestra la versión y termina")
    p.set_defaults(func=None)  # no command: the help
    sub = p.add_subparsers(dest="command", metavar="ORDEN", parser_class=Parser)
    for add in (
        training.add_demo_and_corpus,
        training.add_train,
        training.add_prepare,  # in the help's order
        text.add_generate,
        text.add_probe,
        tools.add_compare,
        looking.add_explain,
        looking.add_report,
        looking.add_tokenize_and_embeddings,
        both_sides.add_classify_and_fill,
        tools.add_export,
        tools.add_scoring,
        tools.add_serve,
    ):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        sys.exit(0)
    try:
        args.func(args)
        sys.stdout.flush()  # a reader that has gone (`taller corpus list | head -1`) is noticed here, not at exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
        sys.exit(1)
    except TallerError as e:
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)  # always one line
        sys.exit(2)
    except KeyboardInterrupt:
        print("\nInterrumpido.", file=sys.stderr)
        sys.exit(130)
