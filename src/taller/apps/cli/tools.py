"""compare, export, score, compress, decompress and serve: a run measured, taken out of taller, or shown."""

from __future__ import annotations

import time
from pathlib import Path

from taller.apps.cli.training import default_out
from taller.apps.cli.types import add_threads, finite_positive, fit_threads, learning_rate, path_text
from taller.apps.compare import compare, format_table, missing_compressors
from taller.apps.compare_labels import compare_labels
from taller.apps.compare_tildes import MODELS as TILDES_MODELS
from taller.apps.compare_tildes import compare_tildes, format_tildes
from taller.apps.compress import compress_file, decompress_file
from taller.apps.export import FORMATS, export_run
from taller.apps.web.app import serve
from taller.errors import TallerError
from taller.runs.folder import load_run
from taller.text import number, thousands
from taller.training.adapt import OPTIMIZERS, Adaptation, score_run


def add_compare(sub) -> None:
    cmp_ = sub.add_parser(
        "compare", aliases=["comparar"], help="entrena varios modelos con el mismo tiempo y los compara"
    )
    cmp_.add_argument(
        "--corpus",
        help="refranes, quijote o la ruta de un fichero de texto (quijote; con --task "
        "clasificar, un fichero «etiqueta<TAB>texto» o refranero-o-cervantes, el de por defecto)",
    )
    cmp_.add_argument(
        "--task",
        choices=["clasificar", "tildes"],
        help="clasificar: clasificadores (--models ngram,bert,t5) con su acierto y su tabla de confusión; "
        "tildes: quién pone mejor las tildes a la validación (--models lookup,ngram,transformer,bert,t5)",
    )
    cmp_.add_argument(
        "--models",
        help="lista separada por comas (ngram,lstm,transformer; con --task clasificar, "
        "ngram,bert,t5; con --task tildes, lookup,ngram,transformer,bert,t5, y también mix=RUN y "
        "bert+ngram, bert+transformer o bert+mix, que juntan dos filas); MODELO=RUN parte de una ejecución ya "
        "entrenada",
    )
    cmp_.add_argument(
        "--max-time", type=finite_positive, default=120, metavar="SEGUNDOS", help="segundos por modelo (120)"
    )
    cmp_.add_argument(
        "--set", action="append", default=[], metavar="CLAVE=VALOR", help="cambia una clave en todos (repetible)"
    )
    cmp_.add_argument("--prompt", default="", help="comienzo de la muestra de cada modelo")
    cmp_.add_argument("--out", type=path_text, help="carpeta de resultados (por defecto runs/compare-CORPUS-FECHA)")
    cmp_.add_argument(
        "--adapt",
        action="store_true",
        help="añade una columna: bits/carácter aprendiendo mientras "
        "lee la validación (unos segundos por modelo; un n-grama sigue contando)",
    )
    cmp_.add_argument(
        "--no-mix", dest="mix", action="store_false", help="sin la fila mix (la mezcla de los modelos de caracteres)"
    )
    cmp_.add_argument(
        "--no-cm",
        dest="cm",
        action="store_false",
        help="sin las filas cm (el mezclador de contextos contando, y con la mejor red: "
        "unos 3,5 minutos en el Quijote)",
    )
    cmp_.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="sin memory.png (cuánto mira atrás cada modelo: unos segundos por modelo)",
    )
    cmp_.add_argument("--quiet", action="store_true", help="sin barras de progreso")
    add_threads(cmp_)
    cmp_.set_defaults(func=cmd_compare)


def add_export(sub) -> None:
    x = sub.add_parser(
        "export",
        aliases=["exportar"],
        help="saca el modelo de taller: una página HTML que lo ejecuta en el navegador, o un fichero ONNX",
    )
    x.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    x.add_argument(
        "--format",
        choices=list(FORMATS),
        help="html: una página que funciona sin red ni servidor; "
        "onnx: para onnxruntime y otras herramientas (por defecto, la extensión de -o; si no, html)",
    )
    x.add_argument(
        "-o",
        "--out",
        type=path_text,
        metavar="FICHERO",
        help="fichero de salida (nuevo; si existe, con --force); por defecto EJECUCION.html o .onnx aquí",
    )
    x.add_argument("--force", action="store_true", help="reemplaza el fichero de salida si ya existe")
    x.set_defaults(func=cmd_export)


def add_scoring(sub) -> None:
    """score, compress and decompress: a run's bits per character, as a figure and as a file."""
    sc = sub.add_parser(
        "score",
        aliases=["puntuar"],
        help="bits por carácter de una ejecución en su validación (con --adapt, aprendiendo mientras lee)",
    )
    sc.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    sc.add_argument(
        "--adapt",
        action="store_true",
        help="evaluación dinámica: puntúa cada ventana y después "
        "aprende de ella (una red, con un paso de gradiente; un n-grama, contándola); trabaja sobre una "
        "copia: lo guardado no cambia",
    )
    sc.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), default="adam", help="con --adapt: adam (por defecto) o sgd"
    )
    sc.add_argument("--lr", type=learning_rate, help="con --adapt: learning rate (adam 0.0001, sgd 0.003)")
    add_threads(sc)
    sc.set_defaults(func=cmd_score)

    co = sub.add_parser(
        "compress",
        aliases=["comprimir"],
        help="comprime un texto con las probabilidades de un modelo (codificación aritmética)",
    )
    co.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    co.add_argument("file", metavar="FICHERO", help="el texto UTF-8 que comprimir")
    co.add_argument(
        "-o", dest="out", type=path_text, metavar="SALIDA", help="fichero comprimido (por defecto FICHERO.tllr)"
    )
    co.add_argument("--force", action="store_true", help="reemplaza la salida si ya existe")
    co.add_argument(
        "--cm",
        action="store_true",
        help="mezcla de contextos: cuenta el texto de entrenamiento de la ejecución (órdenes 0-8, palabras, "
        "repeticiones) y su red es una entrada más del mezclador, que aprende mientras lee (una ejecución de "
        "caracteres; cualquier texto)",
    )
    co.set_defaults(func=cmd_compress)

    de = sub.add_parser(
        "decompress",
        aliases=["descomprimir"],
        help="recupera el texto de un .tllr con la misma ejecución que lo comprimió",
    )
    de.add_argument("run", metavar="EJECUCION", help="la carpeta de la ejecución que lo comprimió")
    de.add_argument("file", metavar="FICHERO.tllr", help="el fichero comprimido")
    de.add_argument("-o", dest="out", type=path_text, metavar="SALIDA", help="el texto (por defecto FICHERO sin .tllr)")
    de.add_argument("--force", action="store_true", help="reemplaza la salida si ya existe")
    de.set_defaults(func=cmd_decompress)


def add_serve(sub) -> None:
    s = sub.add_parser("serve", aliases=["servir"], help="una página web local para explorar tus modelos")
    s.add_argument(
        "path",
        metavar="RUTA",
        nargs="?",
        default="runs",
        help="una carpeta de ejecución o una carpeta con varias, como runs/ (por defecto)",
    )
    s.add_argument("--host", default="127.0.0.1", help="dirección en la que escuchar (127.0.0.1: sólo este equipo)")
    s.add_argument("--port", type=int, default=8000, help="puerto (8000)")
    s.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NOMBRE",
        help="responde también a este nombre del equipo (además de localhost y 127.0.0.1); repetible",
    )
    add_threads(s)
    s.set_defaults(func=cmd_serve)


def cmd_compare(args) -> None:
    if args.task == "tildes":
        args.corpus = args.corpus or "quijote"
        return cmd_compare_tildes(args)
    default = "ngram,bert,t5" if args.task == "clasificar" else "ngram,lstm,transformer"
    models = [m.strip() for m in (args.models or default).split(",") if m.strip()]
    if args.task == "clasificar":
        out = Path(args.out) if args.out else default_out("compare", "clasificar")
        print(
            compare_labels(
                args.corpus,
                models,
                args.max_time,
                out,
                overrides=args.set,
                progress=not args.quiet,
                threads=args.threads,
            )
        )
        return
    args.corpus = args.corpus or "quijote"
    out = Path(args.out) if args.out else default_out("compare", Path(args.corpus).stem)
    rows = compare(
        args.corpus,
        models,
        args.max_time,
        out,
        overrides=args.set,
        prompt=args.prompt,
        progress=not args.quiet,
        adapt=args.adapt,
        mix=args.mix,
        memory=args.memory,
        cm=args.cm,
        threads=args.threads,
    )
    print()
    print(format_table(rows))
    for line in missing_compressors():
        print(line)
    pictures = "compare.png, memory.png" if args.memory else "compare.png"
    print(f"\nResultados en {out}/ (compare.csv, compare.md, {pictures} y una carpeta por modelo)")


def cmd_compare_tildes(args) -> None:
    models = [m.strip() for m in (args.models or ",".join(TILDES_MODELS)).split(",") if m.strip()]
    out = Path(args.out) if args.out else default_out("tildes", Path(args.corpus).stem)
    rows = compare_tildes(
        args.corpus, models, args.max_time, out, overrides=args.set, progress=not args.quiet, threads=args.threads
    )
    print()
    print(format_tildes(rows))
    print(f"\nResultados en {out}/ (tildes.md, tildes.csv y una carpeta por modelo entrenado)")


def cmd_export(args) -> None:
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    fmt = args.format or (suffix if suffix in FORMATS else "html")
    out = Path(args.out) if args.out else Path(Path(args.run).resolve().name + "." + fmt)
    print(export_run(args.run, fmt, out, force=args.force))


def cmd_score(args) -> None:
    if (args.lr or args.optimizer != "adam") and not args.adapt:
        raise TallerError("--lr y --optimizer son de la evaluación dinámica: añade --adapt.")
    run = load_run(args.run)
    fit_threads(args)
    how = Adaptation(args.optimizer, args.lr or 0.0) if args.adapt else None
    scores = score_run(run, how)
    s = scores.static
    print(f"{run.dir}: {thousands(s.chars)} caracteres de validación, ventanas de {scores.window} tokens")
    print(f"  estático:  {number(s.bpc, 3)} bits/carácter ({number(s.loss, 4)} nats/token)")
    if scores.adapted:
        a = scores.adapted
        print(
            f"  --adapt:   {number(a.bpc, 3)} bits/carácter ({number(a.loss, 4)} nats/token; {scores.how}): "
            f"{'+' if a.bpc >= s.bpc else ''}{number(a.bpc - s.bpc, 3)} respecto al estático. "
            "Los pesos guardados no cambian."
        )


def cmd_compress(args) -> None:
    out = Path(args.out) if args.out else Path(args.file + ".tllr")
    run = load_run(args.run)
    started = time.perf_counter()
    result = compress_file(run, Path(args.file), out, args.force, args.cm)
    bpc = f"{number(result.bits_per_char, 3)}" if result.chars else "—"
    print(
        f"{args.file}: {thousands(result.chars)} caracteres → {out}: {thousands(len(result.data))} bytes = {bpc} "
        f"bits/carácter (el modelo promete {number(result.ideal_bits / max(1, result.chars), 3)}; "
        f"{number(time.perf_counter() - started, 1)} s)"
    )


def cmd_decompress(args) -> None:
    out = (
        Path(args.out)
        if args.out
        else Path(args.file.removesuffix(".tllr") if args.file.endswith(".tllr") else args.file + ".txt")
    )
    run = load_run(args.run)
    text = decompress_file(run, Path(args.file), out, args.force)
    print(f"{args.file} → {out}: {thousands(len(text))} caracteres")


def cmd_serve(args) -> None:
    serve(Path(args.path), host=args.host, port=args.port, allow_hosts=args.allow_host, threads=args.threads)
