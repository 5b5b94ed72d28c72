"""explain, report, tokenize and embeddings: looking inside a trained run."""

from __future__ import annotations

from pathlib import Path

from taller.apps.cli.printing import print_spots
from taller.apps.cli.types import bounded_int, check_temperatures, finite, path_text
from taller.errors import TallerError
from taller.inspect import words
from taller.inspect.inside import explain_run
from taller.inspect.report import write_report
from taller.inspect.report_reading import write_reading_report
from taller.inspect.surprise import difference, read_text, validation_text, write_surprise
from taller.inspect.tokens import tokenize_run
from taller.inspect.words import WordVectors
from taller.models import kind_of
from taller.runs.folder import load_run
from taller.text import number, thousands

PANELS = 8  # explain --temperature: panels side by side in temperature.png


def add_explain(sub) -> None:
    e = sub.add_parser("explain", aliases=["explicar"], help="dibuja atención, embeddings y evolución de los pesos")
    e.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    e.add_argument("--text", help="texto cuya atención dibujar (por defecto, lo que el modelo escribe solo)")
    e.add_argument(
        "--temperature",
        type=finite,
        nargs="+",
        metavar="T",
        help="dibuja en temperature.png qué carácter sigue al texto a cada temperatura, p. ej. 0.5 1 1.5",
    )
    e.add_argument(
        "--reemplazar-desconocidos",
        "--replace-unknown",
        dest="replace_unknown",
        action="store_true",
        help="sustituye los caracteres que el modelo no conoce (á→a, si no, espacio)",
    )
    e.add_argument(
        "--surprise",
        "--sorpresa",
        nargs="?",
        const=True,
        type=path_text,
        metavar="FICHERO",
        help="mapa de sorpresa: colorea cada carácter de FICHERO por los bits que el modelo pagó por él "
        "(sin FICHERO: el texto de validación de la ejecución); escribe surprise.html y surprise.png",
    )
    e.add_argument(
        "--against",
        "--contra",
        type=path_text,
        metavar="OTRA",
        help="con --surprise: otra ejecución; dónde gana cada una, carácter a carácter (surprise_diff.html)",
    )
    e.set_defaults(func=cmd_explain)


def add_report(sub) -> None:
    r = sub.add_parser("report", aliases=["informe"], help="escribe report.html: toda la ejecución en una página")
    r.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    r.add_argument("--text", help="texto cuya atención dibujar (por defecto, una muestra del modelo)")
    r.add_argument(
        "--surprise",
        "--sorpresa",
        type=path_text,
        metavar="FICHERO",
        help="el texto del mapa de sorpresa (por defecto, el comienzo del texto de validación)",
    )
    r.add_argument(
        "--against",
        "--contra",
        type=path_text,
        metavar="OTRA",
        help="otra ejecución: añade dónde gana cada una, carácter a carácter, sobre el mismo texto",
    )
    r.set_defaults(func=cmd_report)


def add_tokenize_and_embeddings(sub) -> None:
    tk = sub.add_parser(
        "tokenize", aliases=["tokenizar"], help="muestra cómo parte un texto el tokenizador de una ejecución"
    )
    tk.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    tk.add_argument("--text", required=True, help="el texto que partir en tokens")
    tk.set_defaults(func=cmd_tokenize)
    em = sub.add_parser(
        "embeddings",
        aliases=["vectores"],
        help="vectores de palabras de un skip-gram: vecinos, analogías y un mapa en 2-D",
    )
    em.add_argument("run", metavar="EJECUCION", help="carpeta de un skip-gram (taller train --model skipgram)")
    em.add_argument("--near", metavar="PALABRA", help="las palabras más cercanas a esta (similitud coseno)")
    em.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"), help="A − B + C, p. ej. rey hombre mujer")
    em.add_argument("--expect", metavar="PALABRA", help="en qué puesto queda esta palabra (p. ej. reina)")
    em.add_argument("--plot", nargs="+", metavar="PALABRA", help="dibuja estas palabras en 2-D (PCA) en words.png")
    em.add_argument("--k", type=bounded_int(1000), default=10, help="cuántas palabras mostrar (10)")
    em.set_defaults(func=cmd_embeddings)


def cmd_explain(args) -> None:
    check_temperatures(args.temperature or [])
    if len(args.temperature or []) > PANELS:
        raise TallerError(
            f"--temperature: {len(args.temperature)} temperaturas no caben en un dibujo; elige como "
            f"mucho {PANELS}, por ejemplo 0.5 1 1.5."
        )
    if args.temperature and args.surprise is not None:
        raise TallerError(
            "--temperature dibuja la predicción tras un texto y --surprise el mapa de sorpresa: pide uno en cada orden."
        )
    if args.against and args.surprise is None:
        raise TallerError("--against compara mapas de sorpresa: úsalo con --surprise [FICHERO].")
    run = load_run(args.run, can="language_model" if args.surprise is not None else ("language_model", "fills"))
    if args.surprise is not None:
        return explain_surprise(run, args)
    if args.text and run.model.block_size and len(args.text) > run.model.block_size:
        print(f"Nota: el modelo ve {run.model.block_size} caracteres a la vez; dibujo la atención de los primeros.")
    results = explain_run(
        run, args.text, unknown="replace" if args.replace_unknown else "error", temperatures=args.temperature or []
    )
    print(f"Dibujos de {run.dir}:")
    for name, result in results.items():
        print(f"  {result}" if isinstance(result, Path) or name == "entropy" else f"  Nota: {result}")


def explain_surprise(run, args) -> None:
    """`taller explain RUN --surprise [FICHERO] [--against OTRA]`: the maps, and the spots in the terminal."""
    own = args.surprise is True  # --surprise without a file: the run's validation text
    text = validation_text(run) if own else read_text(Path(args.surprise))
    where = "el texto de validación" if own else args.surprise
    other = load_run(args.against) if args.against else None
    a, b, files = write_surprise(run, text, other, unknown="replace" if args.replace_unknown or own else "error")
    for s in (a, b) if b is not None else (a,):
        print(
            f"{s.run} en {where}: {number(s.total)} bits en {thousands(s.scored)} caracteres = "
            f"{number(s.bpc, 3)} bits/carácter"
        )
    print_spots("Los puntos más sorprendentes", a.bits, a.text, 1.0, "bits")
    if b is not None:
        diff = difference(a, b)
        print_spots(f"Donde más gana {a.run} (bits de diferencia)", diff, a.text, -1.0, "bits")
        print_spots(f"Donde más gana {b.run}", diff, a.text, 1.0, "bits")
    print("\nEscrito: " + ", ".join(str(f) for f in files))


def cmd_report(args) -> None:
    run = load_run(args.run, can=("language_model", "fills", "classifies"))
    if not kind_of(run.config).language_model:  # BERT, T5, a classifier: its own page
        if args.surprise or args.against:
            raise TallerError(
                "--surprise y --against miden los bits de un modelo que lee de izquierda a derecha; "
                f"{run.dir} no lo es: pide `taller report {run.dir}` sin ellos."
            )
        print(f"Informe en {write_reading_report(run, args.text)}")
        return
    surprise_text = read_text(Path(args.surprise)) if args.surprise else None
    against = load_run(args.against) if args.against else None
    print(f"Informe en {write_report(run, args.text, surprise_text=surprise_text, against=against)}")


def cmd_tokenize(args) -> None:
    print(tokenize_run(args.run, args.text))


def cmd_embeddings(args) -> None:
    if not (args.near or args.analogy or args.plot):
        raise TallerError("dime qué mirar: --near PALABRA, --analogy rey hombre mujer o --plot PALABRA PALABRA …")
    if args.expect and not (args.near or args.analogy):
        raise TallerError("--expect dice en qué puesto queda una palabra: úsalo con --near o con --analogy.")
    vectors = WordVectors.load(args.run)
    corpus_words = vectors.state.get("train_words", 0)
    if args.near:
        print(words.near(vectors, args.near, args.k))
        if args.expect:
            (word,) = vectors.check_known([args.near])
            print(words.expectation(vectors, vectors.near_scores(word), args.expect, [word], args.k, corpus_words))
    if args.analogy:
        if args.near:
            print()
        print(words.analogy(vectors, *args.analogy, k=args.k))
        a, b, c = vectors.check_known(args.analogy)
        if args.expect:
            scores = vectors.analogy_scores(a, b, c)
            print(words.expectation(vectors, scores, args.expect, [a, b, c], args.k, corpus_words))
        else:
            print("¿Esperabas una palabra concreta? Añade --expect PALABRA para ver en qué puesto queda de verdad.")
    if args.plot:
        print(f"Mapa de {len(args.plot)} palabras en {words.word_map(vectors, args.plot, vectors.dir / 'words.png')}")
