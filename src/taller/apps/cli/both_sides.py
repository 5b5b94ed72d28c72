"""classify, tildes and fill: what the models that read both sides of a text (BERT, T5) do."""

from __future__ import annotations

from pathlib import Path

from taller.inspect.classify import answer_table, classify
from taller.inspect.fill import candidates_table, fill, fill_table, rank_candidates
from taller.inspect.tildes import tildes
from taller.inspect.word_blanks import auto_table
from taller.runs.folder import load_run


def add_classify_and_fill(sub) -> None:
    cl = sub.add_parser("classify", aliases=["clasificar"], help="la etiqueta de un texto, con un clasificador")
    cl.add_argument("run", metavar="EJECUCION", help="carpeta de un clasificador (taller train --task clasificar)")
    cl.add_argument("--text", required=True, help="el texto que clasificar")
    cl.set_defaults(func=cmd_classify)

    ti = sub.add_parser("tildes", help="pone las tildes a un texto escrito sin ellas")
    ti.add_argument(
        "run",
        metavar="EJECUCION",
        help="un etiquetador de tildes (taller train --model bert --task "
        "tildes) o un modelo de lenguaje de caracteres (canal ruidoso)",
    )
    ti.add_argument("--text", help="el texto sin tildes")
    ti.add_argument("--file", type=Path, metavar="ENTRADA", help="un fichero de texto UTF-8 (con -o)")
    ti.add_argument(
        "-o", type=Path, metavar="SALIDA", help="donde escribir el texto con tildes (nuevo; si existe, con --force)"
    )
    ti.add_argument("--force", action="store_true", help="reemplaza el fichero de -o si ya existe")
    ti.set_defaults(func=cmd_tildes)

    fl = sub.add_parser("fill", aliases=["rellenar"], help="rellena los huecos (_) de un texto con un BERT")
    fl.add_argument("run", metavar="EJECUCION", help="carpeta de un BERT (taller train --model bert)")
    fl.add_argument("--text", required=True, help="el texto con huecos: cada _ es un carácter que falta")
    fl.add_argument(
        "--candidates",
        metavar="A,B,C",
        help="palabras para el único hueco, separadas por comas: las "
        "ordena por pseudo-verosimilitud, con su probabilidad; `auto`: las palabras del entrenamiento "
        "con tantas letras como _ tiene el hueco",
    )
    fl.set_defaults(func=cmd_fill)


def cmd_classify(args) -> None:
    run = load_run(args.run, can="classifies")
    print(f"«{args.text.strip()}»")
    print(answer_table(classify(run, args.text)))


def cmd_tildes(args) -> None:
    print(tildes(args.run, args.text, args.file, args.o, args.force))


def cmd_fill(args) -> None:
    run = load_run(args.run, can="fills")
    if args.candidates == "auto":
        print(auto_table(run, args.text))
        return
    if args.candidates:
        print(f"Candidatos para el hueco de «{args.text}»:")
        print(candidates_table(rank_candidates(run, args.text, args.candidates.split(","))))
        return
    filled = fill(run, args.text)
    print(fill_table(filled))
    print(filled.text)
