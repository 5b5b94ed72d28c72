"""generate and probe: a trained model writes text, or says which word it expects."""

from __future__ import annotations

from pathlib import Path

from taller.apps.cli.printing import print_probs, sampling_words
from taller.apps.cli.types import (
    add_threads,
    bounded_int,
    check_temperatures,
    finite,
    fit_threads,
    path_text,
    seed,
    stop_text,
)
from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect import probability_table
from taller.inspect.fill import RIGHT_CONTEXTS, two_sided_probe
from taller.inspect.pairs import PAIRS_EXAMPLE, PAIRS_FILE, pairs_probe, read_pairs
from taller.inspect.probe import EXAMPLES, last_sentence, probe, probe_table
from taller.models import kind_of
from taller.runs.folder import check_output, load_run
from taller.text import number, side_by_side


def add_generate(sub) -> None:
    gen = sub.add_parser("generate", aliases=["generar"], help="escribe texto nuevo con un modelo entrenado")
    gen.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    gen.add_argument("--prompt", default="", help='el comienzo del texto (por ejemplo "No hay ")')
    gen.add_argument("-n", type=bounded_int(1000), default=1, help="cuántas muestras (1; hasta 1000)")
    gen.add_argument(
        "--temperature",
        type=finite,
        nargs="+",
        default=[1.0],
        metavar="T",
        help="<1 más prudente, >1 más loco (1.0); con varias, una muestra por temperatura, lado a lado",
    )
    gen.add_argument("--top-k", type=int, default=0, help="elige sólo entre los k más probables (0 = todos)")
    gen.add_argument("--top-p", type=finite, default=1.0, help="elige entre los más probables que suman p (1.0)")
    gen.add_argument("--greedy", action="store_true", help="elige siempre el más probable")
    gen.add_argument("--seed", type=seed, help="semilla del muestreo")
    gen.add_argument(
        "--max-chars", type=bounded_int(100_000), default=200, help="caracteres como máximo por muestra (200)"
    )
    gen.add_argument(
        "--stop",
        type=stop_text,
        metavar="TEXTO",
        help='termina cada muestra al escribir este texto, p. ej. "." (por defecto, al final de la '
        'línea en corpus de líneas como los refranes); "": sin parada, hasta --max-chars; \\n es '
        "un salto de línea",
    )
    gen.add_argument(
        "--table",
        type=path_text,
        metavar="FICHERO",
        help="escribe la tabla de probabilidades en este fichero (nuevo; si existe, con --force)",
    )
    gen.add_argument("--force", action="store_true", help="reemplaza el fichero de --table si ya existe")
    gen.add_argument("--show-probs", action="store_true", help="muestra los 5 candidatos de cada paso")
    gen.add_argument(
        "--reemplazar-desconocidos",
        "--replace-unknown",
        dest="replace_unknown",
        action="store_true",
        help="sustituye los caracteres que el modelo no conoce (á→a, si no, espacio)",
    )
    add_threads(gen)
    gen.set_defaults(func=cmd_generate)


def add_probe(sub) -> None:
    pr = sub.add_parser("probe", aliases=["sondear"], help="¿qué palabra espera el modelo tras un contexto?")
    pr.add_argument(
        "run",
        metavar="EJECUCION",
        nargs="+",
        help="carpeta de una ejecución (runs/…); con --example coche, varias: un GPT y un BERT lado a lado",
    )
    pr.add_argument("--context", help="el texto que lee el modelo antes de los candidatos")
    pr.add_argument("--candidates", nargs="+", metavar="PALABRA", help="las palabras que compiten")
    pr.add_argument(
        "--example",
        metavar="NOMBRE",
        help="un ejemplo de la lección: coche; quijote: parejas de frases "
        "del Quijote que sólo se distinguen después del hueco (para poner un GPT junto a un BERT)",
    )
    pr.add_argument(
        "--pairs",
        type=Path,
        metavar="FICHERO",
        help="tus parejas, como las de --example quijote: "
        "antes, final 1, respuesta 1, final 2, respuesta 2 (separados por tabuladores)",
    )
    pr.add_argument("--also-short", action="store_true", help="repite sólo con la última frase del contexto")
    pr.set_defaults(func=cmd_probe)


def cmd_generate(args) -> None:
    check_temperatures(args.temperature)  # the flags first: a mistake is said before the run is loaded
    if not 0 < args.top_p <= 1:
        raise TallerError(f"--top-p={args.top_p} debe estar en (0, 1].")
    if args.top_k < 0:
        raise TallerError(f"--top-k={args.top_k} no puede ser negativo.")
    if args.table:
        check_output(Path(args.table), args.force, "--table")
    run = load_run(args.run)
    fit_threads(args)  # a small model's steps still run on one thread (threads.for_steps)
    stop = {} if args.stop is None else {"stop": args.stop}  # without --stop, the run's own (the end of a line)
    by_temperature = [
        run.generate(
            args.prompt,
            args.n,
            max_chars=args.max_chars,
            temperature=temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            greedy=args.greedy,
            seed=args.seed,
            unknown="replace" if args.replace_unknown else "error",
            top=5 if args.show_probs or args.table else 0,
            **stop,
        )  # records only when shown
        for temperature in args.temperature
    ]
    print_samples(args, by_temperature)
    if args.table:
        samples = [s for group in by_temperature for s in group]
        atomic_write(Path(args.table), probability_table(samples).encode("utf-8"))
        print(f"Tabla de probabilidades en {args.table}")


def print_samples(args, by_temperature: list[list]) -> None:
    """The samples (a list per temperature): with their probabilities, side by side, or one after another."""
    samples = [s for group in by_temperature for s in group]
    several = len(samples) > 1
    if args.show_probs:
        for temperature, group in zip(args.temperature, by_temperature):
            how = sampling_words(temperature, args.top_k, args.top_p, args.greedy)
            for k, sample in enumerate(group, start=1):
                print_probs(sample, k if several else None, how)
                if len(args.temperature) == 1:
                    print(sample.text)
    if len(args.temperature) > 1:  # one column per temperature
        for k in range(args.n):
            print(side_by_side([f"temperatura {t:g}" for t in args.temperature], [g[k].text for g in by_temperature]))
            print()
    elif not args.show_probs:
        prose = several and any("\n" in s.text.strip("\n") for s in samples)  # lines of their own: marked apart
        for k, sample in enumerate(samples, start=1):
            if prose:
                print(("\n" if k > 1 else "") + f"— muestra {k} de {len(samples)} —")
            print(sample.text)


def cmd_probe(args) -> None:
    if args.pairs or args.example == PAIRS_EXAMPLE:
        pairs = read_pairs(args.pairs or PAIRS_FILE)  # the file first: a mistake in it is said before loading runs
        print(pairs_probe([load_run(r, can=("language_model", "fills")) for r in args.run], pairs))
        return
    if args.example:
        if args.example not in EXAMPLES:
            raise TallerError(
                f"--example {args.example}: no existe; los ejemplos son {', '.join([*EXAMPLES, PAIRS_EXAMPLE])}."
            )
        context, candidates = EXAMPLES[args.example]
        context, candidates = args.context or context, args.candidates or candidates
    elif not (args.context and args.candidates):
        raise TallerError("indica --context TEXTO y --candidates A B C, o un ejemplo de la lección: --example coche.")
    else:
        context, candidates = args.context, args.candidates
    runs = [load_run(r, can=("language_model", "fills")) for r in args.run]
    both_sides = len(runs) > 1 or any(kind_of(r.config).fills for r in runs)  # a BERT, or a GPT beside one
    if both_sides and args.example in RIGHT_CONTEXTS and not (args.context or args.candidates or args.also_short):
        print(two_sided_probe(runs, args.example))
        return
    if both_sides:
        raise TallerError(
            "un BERT, o varias ejecuciones a la vez, se sondean con --example coche (sin --context, "
            "--candidates ni --also-short); para tus propias palabras usa `taller fill RUN --text … "
            "--candidates …`."
        )
    run = runs[0]
    long = probe(run, context, candidates)
    print(probe_table(long, "Contexto"))
    if args.also_short:
        short = probe(run, last_sentence(context), candidates)
        print()
        print(probe_table(short, "Sólo la última frase"))
        print()
        for a, b in zip(long.candidates, short.candidates):
            print(
                f"  {a.word:<16} {number(b.probability, 4)} con la última frase → {number(a.probability, 4)} con todo "
                "el contexto"
            )
