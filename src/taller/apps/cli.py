"""The command line: parse, call the library, print. Errors the user can fix end with one line and exit code 2."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from taller._version import __version__
from taller.apps.compare import compare, format_table
from taller.apps.export import FORMATS, export_run
from taller.apps.compress import compress_file, decompress_file
from taller.apps.web.server import serve
from taller.config import DEVICES, SEED_LIMIT, TOKENIZER_KINDS, Config
from taller.data.corpora import CORPORA, describe, load_corpus
from taller.data.prepare import prepare
from taller.data.tokenizers import load_tokenizer
from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect import probability_table, words
from taller.inspect.classify import answer_table, classify
from taller.inspect.fill import RIGHT_CONTEXTS, candidates_table, fill, fill_table, rank_candidates, two_sided_probe
from taller.inspect.inside import explain_run
from taller.inspect.probe import EXAMPLES, last_sentence, probe, probe_table
from taller.inspect.report import write_report
from taller.inspect.surprise import difference, number, read_text, top_spots, validation_text, write_surprise
from taller.inspect.tokens import tokenize_run
from taller.inspect.words import WordVectors
from taller.models import KINDS, kind_named, kind_of, task_kind
from taller.runs.folder import check_output, check_run_dir, load_run
from taller.text import show_token, side_by_side, thousands
from taller.training.distributed import is_main
from taller.training.adapt import OPTIMIZERS, Adaptation, score_run
from taller.training.loop import train

SPANISH = {  # argparse's own messages, in Spanish
    "usage: ": "uso: ",
    "the following arguments are required: %s": "faltan estos argumentos: %s",
    "unrecognized arguments: %s": "argumentos no reconocidos: %s",
    "invalid choice: %(value)r (choose from %(choices)s)": "opción no válida: %(value)r (elige entre %(choices)s)",
    "argument %(argument_name)s: %(message)s": "argumento %(argument_name)s: %(message)s",
    "expected one argument": "espera un valor",
    "expected at least one argument": "espera al menos un valor",
    "invalid %(type)s value: %(value)r": "valor %(type)s no válido: %(value)r",
    "show this help message and exit": "muestra esta ayuda y termina",
    "positional arguments": "argumentos",
    "options": "opciones",
    "%(prog)s: error: %(message)s\n": "%(prog)s: error: %(message)s\n",
}
argparse._ = lambda text: SPANISH.get(text, text)  # argparse looks its messages up through this function


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}. Prueba `{self.prog} --help`.\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


positive_int.__name__ = "entero positivo"


def finite(text: str) -> float:
    """A float flag: never nan or inf (the command says which finite values it takes)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    return value


finite.__name__ = "número finito"


def finite_positive(text: str) -> float:
    value = finite(text)
    if value <= 0:
        raise ValueError
    return value


finite_positive.__name__ = "número positivo finito"



def seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < SEED_LIMIT:
        raise ValueError
    return value


seed.__name__ = "semilla (entero entre 0 y 2**63-1)"


def path_text(text: str) -> str:
    """A file or folder named on the command line: an empty name is a mistake, not the default."""
    if not text.strip():
        raise ValueError
    return text


path_text.__name__ = "ruta (no vacía)"


def stop_text(text: str) -> str:
    """--stop: any text; \\n and \\t written with a backslash are a newline and a tab (hard to type in a shell)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


PANELS = 8  # explain --temperature: panels side by side in temperature.png
DEMO_SECONDS = 165  # training seconds; evaluations, pictures and samples add about a minute


def bounded_int(high: int):
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= high:
            raise ValueError
        return value

    parse.__name__ = f"entero entre 1 y {high}"
    return parse


def add_training_commands(sub) -> None:
    """demo, corpus and train: the story's first half."""
    d = sub.add_parser("demo", help="toda la historia de los refranes en unos minutos")
    budget = d.add_mutually_exclusive_group()
    budget.add_argument("--max-time", type=finite_positive,
                        help=f"segundos de entrenamiento (por defecto {DEMO_SECONDS}: la demo cabe en 4 minutos en cualquier máquina)")
    budget.add_argument("--epochs", type=bounded_int(10_000), help="entrena estas épocas en vez de por tiempo")
    d.add_argument("--out", type=path_text, help="carpeta de la ejecución (por defecto runs/demo-FECHA)")

    c = sub.add_parser("corpus", help="los corpus disponibles y cómo son")
    csub = c.add_subparsers(dest="corpus_command", metavar="ORDEN", parser_class=Parser, required=True)
    csub.add_parser("list", aliases=["lista"], help="qué corpus hay y dónde se encuentran")
    show = csub.add_parser("show", aliases=["ver"], help="estadísticas y ejemplos de un corpus")
    show.add_argument("name", metavar="NOMBRE", help="refranes, quijote o la ruta de un fichero de texto")

    t = sub.add_parser("train", aliases=["entrenar"], help="entrena un modelo y escribe su carpeta de ejecución")
    t.add_argument("--corpus", help="refranes, quijote, la ruta de un fichero de texto UTF-8 o una carpeta de `taller prepare`")
    t.add_argument("--preset", default=None, help="configuración de partida: base (por defecto), cervantes, lstm, ngram, seed…")
    t.add_argument("--model", choices=list(KINDS),
                   help="qué modelo (el del preset); skipgram: vectores de palabras (usa su preset)")
    t.add_argument("--task", metavar="TAREA", help="bert: aprende una tarea sobre sus textos (clasificar: el corpus es un "
                   "fichero «etiqueta<TAB>texto» o refranero-o-cervantes)")
    t.add_argument("--init", type=path_text, metavar="EJECUCION",
                   help="con --task: empieza desde el encoder de esta ejecución de BERT (preentrenado)")
    t.add_argument("--order", type=positive_int, help="n-grama: cuántos caracteres cuenta juntos (8)")
    t.add_argument("--tokenizer", choices=list(TOKENIZER_KINDS), help="caracteres (char, por defecto), BPE de bytes o palabras")
    t.add_argument("--tokenizer-vocab", type=positive_int, metavar="N", help="bpe y word: tokens del vocabulario (512)")
    t.add_argument("--config", help="fichero TOML con [model], [data] y [train]")
    t.add_argument("--set", action="append", default=[], metavar="CLAVE=VALOR", help="cambia una clave (repetible)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=positive_int, help="número de épocas")
    g.add_argument("--max-time", type=finite_positive, metavar="SEGUNDOS",
                   help="entrena este tiempo (el learning rate sigue al reloj)")
    t.add_argument("--steps", type=positive_int, help="para tras este número de pasos")
    t.add_argument("--seed", type=seed, help="semilla: la misma semilla repite exactamente en CPU")
    t.add_argument("--device", choices=list(DEVICES), help="dónde entrenar (auto)")
    t.add_argument("--out", type=path_text, help="carpeta de la ejecución (por defecto runs/CORPUS-PRESET-FECHA)")
    t.add_argument("--resume", action="store_true", help="continúa la ejecución de --out desde su último punto de control")
    t.add_argument("--quiet", action="store_true", help="sin barra de progreso")


def add_text_commands(sub) -> None:
    """prepare and generate: text in, text out."""
    pp = sub.add_parser("prepare", aliases=["preparar"],
                        help="convierte un texto enorme en tokens en disco, para entrenar sin cargarlo en memoria")
    pp.add_argument("--corpus", required=True, metavar="FICHERO", help="fichero de texto UTF-8 (de cualquier tamaño)")
    pp.add_argument("--out", type=path_text, metavar="CARPETA",
                    help="carpeta de salida (por defecto preparados/NOMBRE)")
    pp.add_argument("--tokenizer-file", metavar="JSON", help="usa este tokenizer.json (p. ej. el de una ejecución) "
                    "en vez de sacar el vocabulario del texto")
    pp.add_argument("--quiet", action="store_true", help="sin barra de progreso")

    gen = sub.add_parser("generate", aliases=["generar"], help="escribe texto nuevo con un modelo entrenado")
    gen.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    gen.add_argument("--prompt", default="", help="el comienzo del texto (por ejemplo \"No hay \")")
    gen.add_argument("-n", type=bounded_int(1000), default=1, help="cuántas muestras (1; hasta 1000)")
    gen.add_argument("--temperature", type=finite, nargs="+", default=[1.0], metavar="T",
                     help="<1 más prudente, >1 más loco (1.0); con varias, una muestra por temperatura, lado a lado")
    gen.add_argument("--top-k", type=int, default=0, help="elige sólo entre los k más probables (0 = todos)")
    gen.add_argument("--top-p", type=finite, default=1.0, help="elige entre los más probables que suman p (1.0)")
    gen.add_argument("--greedy", action="store_true", help="elige siempre el más probable")
    gen.add_argument("--seed", type=seed, help="semilla del muestreo")
    gen.add_argument("--max-chars", type=bounded_int(100_000), default=200,
                     help="caracteres como máximo por muestra (200)")
    gen.add_argument("--stop", type=stop_text, metavar="TEXTO",
                     help="termina cada muestra al escribir este texto, p. ej. \".\" (por defecto, al final de la "
                          "línea en corpus de líneas como los refranes); \"\": sin parada, hasta --max-chars; \\n es "
                          "un salto de línea")
    gen.add_argument("--table", type=path_text, metavar="FICHERO",
                     help="escribe la tabla de probabilidades en este fichero (nuevo; si existe, con --force)")
    gen.add_argument("--force", action="store_true", help="reemplaza el fichero de --table si ya existe")
    gen.add_argument("--show-probs", action="store_true", help="muestra los 5 candidatos de cada paso")
    gen.add_argument("--reemplazar-desconocidos", "--replace-unknown", dest="replace_unknown", action="store_true",
                     help="sustituye los caracteres que el modelo no conoce (á→a, si no, espacio)")


def add_looking_commands(sub) -> None:
    """probe, compare, explain, report, tokenize and embeddings: looking at trained runs."""
    pr = sub.add_parser("probe", aliases=["sondear"], help="¿qué palabra espera el modelo tras un contexto?")
    pr.add_argument("run", metavar="EJECUCION", nargs="+",
                    help="carpeta de una ejecución (runs/…); con --example coche, varias: un GPT y un BERT lado a lado")
    pr.add_argument("--context", help="el texto que lee el modelo antes de los candidatos")
    pr.add_argument("--candidates", nargs="+", metavar="PALABRA", help="las palabras que compiten")
    pr.add_argument("--example", metavar="NOMBRE", help="un ejemplo de la lección: coche")
    pr.add_argument("--also-short", action="store_true", help="repite sólo con la última frase del contexto")

    cmp_ = sub.add_parser("compare", aliases=["comparar"], help="entrena varios modelos con el mismo tiempo y los compara")
    cmp_.add_argument("--corpus", default="quijote", help="refranes, quijote o la ruta de un fichero de texto (quijote)")
    cmp_.add_argument("--models", default="ngram,lstm,transformer", help="lista separada por comas (ngram,lstm,transformer)")
    cmp_.add_argument("--max-time", type=finite_positive, default=120, metavar="SEGUNDOS",
                      help="segundos por modelo (120)")
    cmp_.add_argument("--set", action="append", default=[], metavar="CLAVE=VALOR", help="cambia una clave en todos (repetible)")
    cmp_.add_argument("--prompt", default="", help="comienzo de la muestra de cada modelo")
    cmp_.add_argument("--out", type=path_text, help="carpeta de resultados (por defecto runs/compare-CORPUS-FECHA)")
    cmp_.add_argument("--adapt", action="store_true", help="añade una columna: bits/carácter aprendiendo mientras lee "
                      "la validación (unos segundos por modelo; un n-grama sigue contando)")
    cmp_.add_argument("--no-mix", dest="mix", action="store_false",
                      help="sin la fila mix (la mezcla de los modelos de caracteres)")
    cmp_.add_argument("--quiet", action="store_true", help="sin barras de progreso")

    e = sub.add_parser("explain", aliases=["explicar"], help="dibuja atención, embeddings y evolución de los pesos")
    e.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    e.add_argument("--text", help="texto cuya atención dibujar (por defecto, lo que el modelo escribe solo)")
    e.add_argument("--temperature", type=finite, nargs="+", metavar="T",
                   help="dibuja en temperature.png qué carácter sigue al texto a cada temperatura, p. ej. 0.5 1 1.5")
    e.add_argument("--reemplazar-desconocidos", "--replace-unknown", dest="replace_unknown", action="store_true",
                   help="sustituye los caracteres que el modelo no conoce (á→a, si no, espacio)")
    e.add_argument("--surprise", "--sorpresa", nargs="?", const=True, type=path_text, metavar="FICHERO",
                   help="mapa de sorpresa: colorea cada carácter de FICHERO por los bits que el modelo pagó por él "
                        "(sin FICHERO: el texto de validación de la ejecución); escribe surprise.html y surprise.png")
    e.add_argument("--against", "--contra", type=path_text, metavar="OTRA",
                   help="con --surprise: otra ejecución; dónde gana cada una, carácter a carácter (surprise_diff.html)")

    r = sub.add_parser("report", aliases=["informe"], help="escribe report.html: toda la ejecución en una página")
    r.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    r.add_argument("--text", help="texto cuya atención dibujar (por defecto, una muestra del modelo)")
    r.add_argument("--surprise", "--sorpresa", type=path_text, metavar="FICHERO",
                   help="el texto del mapa de sorpresa (por defecto, el comienzo del texto de validación)")
    r.add_argument("--against", "--contra", type=path_text, metavar="OTRA",
                   help="otra ejecución: añade dónde gana cada una, carácter a carácter, sobre el mismo texto")

    tk = sub.add_parser("tokenize", aliases=["tokenizar"], help="muestra cómo parte un texto el tokenizador de una ejecución")
    tk.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    tk.add_argument("--text", required=True, help="el texto que partir en tokens")
    em = sub.add_parser("embeddings", aliases=["vectores"], help="vectores de palabras de un skip-gram: vecinos, "
                        "analogías y un mapa en 2-D")
    em.add_argument("run", metavar="EJECUCION", help="carpeta de un skip-gram (taller train --model skipgram)")
    em.add_argument("--near", metavar="PALABRA", help="las palabras más cercanas a esta (similitud coseno)")
    em.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"), help="A − B + C, p. ej. rey hombre mujer")
    em.add_argument("--expect", metavar="PALABRA", help="en qué puesto queda esta palabra (p. ej. reina)")
    em.add_argument("--plot", nargs="+", metavar="PALABRA", help="dibuja estas palabras en 2-D (PCA) en words.png")
    em.add_argument("--k", type=bounded_int(1000), default=10, help="cuántas palabras mostrar (10)")


def add_both_sides_commands(sub) -> None:
    """classify and fill: what the models that read both sides (BERT, T5) do."""
    cl = sub.add_parser("classify", aliases=["clasificar"], help="la etiqueta de un texto, con un clasificador")
    cl.add_argument("run", metavar="EJECUCION", help="carpeta de un clasificador (taller train --task clasificar)")
    cl.add_argument("--text", required=True, help="el texto que clasificar")

    fl = sub.add_parser("fill", aliases=["rellenar"], help="rellena los huecos (_) de un texto con un BERT")
    fl.add_argument("run", metavar="EJECUCION", help="carpeta de un BERT (taller train --model bert)")
    fl.add_argument("--text", required=True, help="el texto con huecos: cada _ es un carácter que falta")
    fl.add_argument("--candidates", metavar="A,B,C", help="palabras para el único hueco, separadas por comas: las "
                    "ordena por pseudo-verosimilitud, con su probabilidad")


def add_export_command(sub) -> None:
    """export: the model taken out of taller."""
    x = sub.add_parser("export", aliases=["exportar"], help="saca el modelo de taller: una página HTML que lo ejecuta "
                       "en el navegador, o un fichero ONNX")
    x.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    x.add_argument("--format", choices=list(FORMATS), help="html: una página que funciona sin red ni servidor; "
                   "onnx: para onnxruntime y otras herramientas (por defecto, la extensión de -o; si no, html)")
    x.add_argument("-o", "--out", type=path_text, metavar="FICHERO",
                   help="fichero de salida (nuevo; si existe, con --force); por defecto EJECUCION.html o .onnx aquí")
    x.add_argument("--force", action="store_true", help="reemplaza el fichero de salida si ya existe")


def add_scoring_commands(sub) -> None:
    """score, compress and decompress: a run's bits per character, as a figure and as a file."""
    sc = sub.add_parser("score", aliases=["puntuar"], help="bits por carácter de una ejecución en su validación "
                        "(con --adapt, aprendiendo mientras lee)")
    sc.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    sc.add_argument("--adapt", action="store_true", help="evaluación dinámica: puntúa cada ventana y después aprende "
                    "de ella (una red, con un paso de gradiente; un n-grama, contándola); trabaja sobre una copia: lo "
                    "guardado no cambia")
    sc.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam", help="con --adapt: adam (por defecto) o sgd")
    sc.add_argument("--lr", type=finite_positive, help="con --adapt: learning rate (adam 0.0001, sgd 0.003)")

    co = sub.add_parser("compress", aliases=["comprimir"], help="comprime un texto con las probabilidades de un "
                        "modelo (codificación aritmética)")
    co.add_argument("run", metavar="EJECUCION", help="carpeta de una ejecución (runs/…)")
    co.add_argument("file", metavar="FICHERO", help="el texto UTF-8 que comprimir")
    co.add_argument("-o", dest="out", type=path_text, metavar="SALIDA", help="fichero comprimido (por defecto FICHERO.tllr)")
    co.add_argument("--force", action="store_true", help="reemplaza la salida si ya existe")

    de = sub.add_parser("decompress", aliases=["descomprimir"], help="recupera el texto de un .tllr con la misma "
                        "ejecución que lo comprimió")
    de.add_argument("run", metavar="EJECUCION", help="la carpeta de la ejecución que lo comprimió")
    de.add_argument("file", metavar="FICHERO.tllr", help="el fichero comprimido")
    de.add_argument("-o", dest="out", type=path_text, metavar="SALIDA", help="el texto (por defecto FICHERO sin .tllr)")
    de.add_argument("--force", action="store_true", help="reemplaza la salida si ya existe")


def build_parser() -> Parser:
    p = Parser(prog="taller", description="Construye un modelo de lenguaje desde cero, míralo aprender y mira dentro.")
    p.add_argument("--version", action="version", version=f"taller {__version__}")
    sub = p.add_subparsers(dest="command", metavar="ORDEN", parser_class=Parser)

    add_training_commands(sub)
    add_text_commands(sub)
    add_looking_commands(sub)
    add_both_sides_commands(sub)
    add_export_command(sub)
    add_scoring_commands(sub)

    s = sub.add_parser("serve", aliases=["servir"], help="una página web local para explorar tus modelos")
    s.add_argument("path", metavar="RUTA", nargs="?", default="runs",
                   help="una carpeta de ejecución o una carpeta con varias, como runs/ (por defecto)")
    s.add_argument("--host", default="127.0.0.1", help="dirección en la que escuchar (127.0.0.1: sólo este equipo)")
    s.add_argument("--port", type=int, default=8000, help="puerto (8000)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NOMBRE",
                   help="responde también a este nombre del equipo (además de localhost y 127.0.0.1); repetible")
    return p


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(0)
    try:
        COMMANDS[args.command](args)
    except TallerError as e:
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)  # always one line
        sys.exit(2)
    except KeyboardInterrupt:
        print("\nInterrumpido.", file=sys.stderr)
        sys.exit(130)


# --- commands -------------------------------------------------------------------------------------------------------


def cmd_corpus(args) -> None:
    if args.corpus_command in ("list", "lista"):
        for name, info in CORPORA.items():
            try:
                where = load_corpus(name, download=False).source
            except TallerError:
                where = "no está en este equipo (se descargará al usarlo)"
            print(f"{name:<10} {info.description}\n{'':<10} → {where}")
        print("\nTambién vale la ruta de cualquier fichero de texto UTF-8: taller train --corpus mi_texto.txt")
    else:
        print(describe(load_corpus(args.name)))


def default_out(*parts: str) -> Path:
    return Path("runs") / ("-".join(parts) + "-" + time.strftime("%Y%m%d-%H%M%S"))


def cmd_train(args) -> None:
    out = Path(args.out) if args.out else None
    model = task_kind(args.task, args.model) if args.task else args.model  # --task: the kind that learns it
    preset = args.preset or (kind_named(model).preset if model else "base")
    if args.resume:
        if out is None:
            raise TallerError("--resume necesita --out con la carpeta de la ejecución que quieres continuar.")
        check_run_dir(out, resume=True)  # a file, a missing run or one stopped before its first checkpoint: said first
        cfg = Config.load(out / "config.toml", saved=True)
    elif args.config:
        cfg = Config.load(args.config)
    else:
        cfg = Config.preset(preset)
    saved = cfg.to_dict()
    if args.corpus:
        if args.resume and args.corpus != cfg.data.corpus:
            raise TallerError(f"--resume continúa con el corpus de la ejecución ({cfg.data.corpus}); quita --corpus.")
        cfg.data.corpus = args.corpus
    if model:  # the kind first: --set speaks to its keys
        cfg.set_kind(model)
    if args.init:
        if not hasattr(cfg.model, "init"):
            raise TallerError("--init afina una ejecución preentrenada para una tarea: úsalo con --task, p. ej. "
                              "`taller train --model bert --task clasificar --init RUN --corpus etiquetado.tsv`.")
        cfg.set("model.init", args.init, where="--init")
    cfg.apply_overrides(args.set)
    if args.order:
        cfg.set("order", args.order, where="--order")
    for key in ("tokenizer", "tokenizer_vocab"):
        if getattr(args, key) is not None:
            cfg.set(key, getattr(args, key))
    if args.epochs:
        cfg.train.epochs, cfg.train.max_time = args.epochs, 0.0
    if args.max_time is not None:
        cfg.train.max_time = args.max_time
    for key in ("steps", "seed", "device"):
        value = getattr(args, key)
        if value is not None:
            cfg.set({"steps": "max_steps"}.get(key, key), value)
    if args.resume:  # the text and the network are the run's: only the training schedule may change
        now = cfg.to_dict()
        changed = [f"{part}.{key}" for part in ("data", "model") for key in now[part] if now[part][key] != saved[part].get(key)]
        if changed:
            raise TallerError(f"--resume continúa la ejecución tal como es y no puede cambiar {', '.join(changed)}; "
                              "quita esas opciones, o entrena de cero en otra carpeta.")
    out = out or default_out(Path(cfg.data.corpus).stem, preset)
    run = train(cfg, out, resume=args.resume, progress=not args.quiet)
    if run.interrupted:  # saved, and the loop said how to continue: the shell's code for the signal (130, 143)
        sys.exit(128 + run.interrupted)
    if is_main():  # under torchrun, rank 0 speaks for all
        print(f"Resultados en {run.dir}/")


def cmd_prepare(args) -> None:
    out = Path(args.out) if args.out else Path("preparados") / Path(args.corpus).stem
    tokenizer = load_tokenizer(Path(args.tokenizer_file)) if args.tokenizer_file else None
    prepare(args.corpus, out, tokenizer=tokenizer, progress=not args.quiet)
    print(f"Entrena con: taller train --corpus {out}")


def check_temperatures(temperatures: list[float]) -> None:
    for temperature in temperatures:
        if temperature <= 0:
            raise TallerError(f"--temperature={temperature:g} debe ser positiva; para elegir siempre lo más probable usa --greedy.")


def cmd_generate(args) -> None:
    check_temperatures(args.temperature)  # the flags first: a mistake is said before the run is loaded
    if not 0 < args.top_p <= 1:
        raise TallerError(f"--top-p={args.top_p} debe estar en (0, 1].")
    if args.top_k < 0:
        raise TallerError(f"--top-k={args.top_k} no puede ser negativo.")
    if args.table:
        check_output(Path(args.table), args.force, "--table")
    run = load_run(args.run)
    stop = {} if args.stop is None else {"stop": args.stop}  # without --stop, the run's own (the end of a line)
    by_temperature = [run.generate(args.prompt, args.n, max_chars=args.max_chars, temperature=temperature,
                                   top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, seed=args.seed,
                                   unknown="replace" if args.replace_unknown else "error",
                                   top=5 if args.show_probs or args.table else 0, **stop)  # records only when shown
                      for temperature in args.temperature]
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
        for sample in samples:
            print(sample.text)
    if args.table:
        atomic_write(Path(args.table), probability_table(samples).encode("utf-8"))
        print(f"Tabla de probabilidades en {args.table}")


def sampling_words(temperature: float, top_k: int, top_p: float, greedy: bool) -> str:
    """How the next token is chosen, in words ("temperatura 0.5 · top-k 3"); "" when it is drawn from the model's
    own probabilities."""
    if greedy:
        return "greedy: siempre el más probable"
    parts = [f"temperatura {temperature:g}"] if temperature != 1.0 else []
    parts += [f"top-k {top_k}"] if top_k else []
    parts += [f"top-p {top_p:g}"] if top_p < 1.0 else []
    return " · ".join(parts)


def print_probs(sample, index, how: str) -> None:
    """Each step's five best candidates with the model's probability and, when the sampling reshapes it (`how`
    says how), the probability each was drawn with: «modelo → muestreo»."""
    title = f"Muestra {index}: " if index else ""
    print(f"{title}probabilidades del siguiente {sample.unit.lower()} tras «{sample.prompt}»")
    if how:
        print(f"  modelo: las del modelo (temperatura 1) → muestreo: con las que se elige ({how})")
    print(f"{'Posición':>8}  {'Elegido':<7}  candidatos ({'modelo → muestreo' if how else 'probabilidad'})")
    for step in sample.steps:
        if how:
            cands = "  ".join(f"{show_token(c)} {p:.3f}→{q:.3f}" for (c, p), q in zip(step.top, step.sampled))
        else:
            cands = "  ".join(f"{show_token(c)} {p:.3f}" for c, p in step.top)
        print(f"{step.position:>8}  {show_token(step.token):<7}  {cands}")


def cmd_demo(args) -> None:
    cfg = Config.preset("base")
    cfg.data.corpus = "refranes"
    cfg.train.prompt = "No hay "
    # By the clock, so that the demo fits its 4 minutes on a slow laptop too (the learning rate follows the clock).
    cfg.train.max_time = args.max_time or DEMO_SECONDS
    if args.epochs:
        cfg.train.epochs, cfg.train.max_time = args.epochs, 0.0
    out = Path(args.out) if args.out else default_out("demo")
    budget = (f"{args.epochs} época" + ("s" if args.epochs != 1 else "") if args.epochs
              else f"{cfg.train.max_time:g} s" + ("" if args.max_time else " (unos 4 minutos con las evaluaciones y los dibujos)"))
    print(f"taller demo: entreno un Transformer de caracteres con los refranes durante {budget}.")
    started = time.perf_counter()
    run = train(cfg, out)
    if run.interrupted:  # saved; the shell's code for the signal, as `taller train`
        sys.exit(128 + run.interrupted)
    known = set(load_corpus("refranes").text.split("\n"))
    samples = [s for s in run.generate("No hay ", 20, seed=cfg.train.seed, temperature=0.8) if s.text not in known]
    samples = (samples + run.generate("No hay ", 5, seed=cfg.train.seed + 1, temperature=0.8))[:5]
    print("\nCinco refranes nuevos que empiezan por «No hay » (temperatura 0,8):")
    for s in samples:
        print(f"  • {s.text}")
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    print(f"\nTodo está en {out}/ ({time.perf_counter() - started:.0f} s):")
    print("  " + "  ".join(files))
    print(f"Prueba: taller generate {out} --prompt \"Más vale \" -n 3 --show-probs")


def cmd_probe(args) -> None:
    if args.example:
        if args.example not in EXAMPLES:
            raise TallerError(f"--example {args.example}: no existe; los ejemplos son {', '.join(EXAMPLES)}.")
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
        raise TallerError("un BERT, o varias ejecuciones a la vez, se sondean con --example coche (sin --context, "
                          "--candidates ni --also-short); para tus propias palabras usa `taller fill RUN --text … "
                          "--candidates …`.")
    run = runs[0]
    long = probe(run, context, candidates)
    print(probe_table(long, "Contexto"))
    if args.also_short:
        short = probe(run, last_sentence(context), candidates)
        print()
        print(probe_table(short, "Sólo la última frase"))
        print()
        for a, b in zip(long.candidates, short.candidates):
            print(f"  {a.word:<16} {b.probability:.4f} con la última frase → {a.probability:.4f} con todo el contexto")


def cmd_fill(args) -> None:
    run = load_run(args.run, can="fills")
    if args.candidates:
        print(f"Candidatos para el hueco de «{args.text}»:")
        print(candidates_table(rank_candidates(run, args.text, args.candidates.split(","))))
        return
    filled = fill(run, args.text)
    print(fill_table(filled))
    print(filled.text)


def cmd_classify(args) -> None:
    run = load_run(args.run, can="classifies")
    print(f"«{args.text.strip()}»")
    print(answer_table(classify(run, args.text)))


def cmd_compare(args) -> None:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out = Path(args.out) if args.out else default_out("compare", Path(args.corpus).stem)
    rows = compare(args.corpus, models, args.max_time, out, overrides=args.set, prompt=args.prompt,
                   progress=not args.quiet, adapt=args.adapt, mix=args.mix)
    print()
    print(format_table(rows))
    print(f"\nResultados en {out}/ (compare.csv, compare.md, compare.png, memory.png y una carpeta por modelo)")


def cmd_explain(args) -> None:
    check_temperatures(args.temperature or [])
    if len(args.temperature or []) > PANELS:
        raise TallerError(f"--temperature: {len(args.temperature)} temperaturas no caben en un dibujo; elige como mucho "
                          f"{PANELS}, por ejemplo 0.5 1 1.5.")
    if args.temperature and args.surprise is not None:
        raise TallerError("--temperature dibuja la predicción tras un texto y --surprise el mapa de sorpresa: pide "
                          "uno en cada orden.")
    if args.against and args.surprise is None:
        raise TallerError("--against compara mapas de sorpresa: úsalo con --surprise [FICHERO].")
    run = load_run(args.run, can="language_model" if args.surprise is not None else ("language_model", "fills"))
    if args.surprise is not None:
        return explain_surprise(run, args)
    if args.text and run.model.block_size and len(args.text) > run.model.block_size:
        print(f"Nota: el modelo ve {run.model.block_size} caracteres a la vez; dibujo la atención de los primeros.")
    results = explain_run(run, args.text, unknown="replace" if args.replace_unknown else "error",
                          temperatures=args.temperature or [])
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
        print(f"{s.run} en {where}: {number(s.total)} bits en {thousands(s.scored)} caracteres = "
              f"{number(s.bpc, 3)} bits/carácter")
    print_spots("Los puntos más sorprendentes", a.bits, a.text, 1.0, "bits")
    if b is not None:
        diff = difference(a, b)
        print_spots(f"Donde más gana {a.run} (bits de diferencia)", diff, a.text, -1.0, "bits")
        print_spots(f"Donde más gana {b.run}", diff, a.text, 1.0, "bits")
    print("\nEscrito: " + ", ".join(str(f) for f in files))


def print_spots(title: str, values, text: str, sign: float, unit: str) -> None:
    print(f"\n{title}:")
    for s in top_spots(values, text, sign=sign):
        context = show_token(s["before"][-16:]) + "[" + show_token(s["char"]) + "]" + show_token(s["after"])
        print(f"  posición {s['position'] + 1:>7}  {context:<26}  {number(s['bits'])} {unit}")


def cmd_report(args) -> None:
    run = load_run(args.run)
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
            print(words.expectation(vectors, vectors.analogy_scores(a, b, c), args.expect, [a, b, c], args.k, corpus_words))
        else:
            print("¿Esperabas una palabra concreta? Añade --expect PALABRA para ver en qué puesto queda de verdad.")
    if args.plot:
        print(f"Mapa de {len(args.plot)} palabras en {words.word_map(vectors, args.plot, vectors.dir / 'words.png')}")


def cmd_export(args) -> None:
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    fmt = args.format or (suffix if suffix in FORMATS else "html")
    out = Path(args.out) if args.out else Path(Path(args.run).resolve().name + "." + fmt)
    print(export_run(args.run, fmt, out, force=args.force))


def cmd_score(args) -> None:
    if (args.lr or args.optimizer != "adam") and not args.adapt:
        raise TallerError("--lr y --optimizer son de la evaluación dinámica: añade --adapt.")
    run = load_run(args.run)
    how = Adaptation(args.optimizer, args.lr or 0.0) if args.adapt else None
    scores = score_run(run, how)
    s = scores.static
    print(f"{run.dir}: {thousands(s.chars)} caracteres de validación, ventanas de {scores.window} tokens")
    print(f"  estático:  {s.bpc:.3f} bits/carácter ({s.loss:.4f} nats/token)")
    if scores.adapted:
        a = scores.adapted
        print(f"  --adapt:   {a.bpc:.3f} bits/carácter ({a.loss:.4f} nats/token; {scores.how}): "
              f"{a.bpc - s.bpc:+.3f} respecto al estático. Los pesos guardados no cambian.")


def cmd_compress(args) -> None:
    out = Path(args.out) if args.out else Path(args.file + ".tllr")
    run = load_run(args.run)
    started = time.perf_counter()
    result = compress_file(run, Path(args.file), out, args.force)
    bpc = f"{result.bits_per_char:.3f}" if result.chars else "—"
    print(f"{args.file}: {thousands(result.chars)} caracteres → {out}: {thousands(len(result.data))} bytes = {bpc} "
          f"bits/carácter (el modelo promete {result.ideal_bits / max(1, result.chars):.3f}; "
          f"{time.perf_counter() - started:.1f} s)")


def cmd_decompress(args) -> None:
    out = Path(args.out) if args.out else Path(args.file.removesuffix(".tllr") if args.file.endswith(".tllr")
                                                 else args.file + ".txt")
    run = load_run(args.run)
    text = decompress_file(run, Path(args.file), out, args.force)
    print(f"{args.file} → {out}: {thousands(len(text))} caracteres")


def cmd_serve(args) -> None:
    serve(Path(args.path), host=args.host, port=args.port, allow_hosts=args.allow_host)


COMMANDS = {"demo": cmd_demo, "corpus": cmd_corpus, "train": cmd_train, "entrenar": cmd_train,
            "generate": cmd_generate, "generar": cmd_generate, "probe": cmd_probe, "sondear": cmd_probe,
            "classify": cmd_classify, "clasificar": cmd_classify, "fill": cmd_fill, "rellenar": cmd_fill, "compare": cmd_compare, "comparar": cmd_compare, "explain": cmd_explain, "explicar": cmd_explain,
            "report": cmd_report, "informe": cmd_report, "serve": cmd_serve, "servir": cmd_serve,
            "prepare": cmd_prepare, "preparar": cmd_prepare,
            "tokenize": cmd_tokenize, "tokenizar": cmd_tokenize,
            "embeddings": cmd_embeddings, "vectores": cmd_embeddings, "export": cmd_export, "exportar": cmd_export,
            "score": cmd_score, "puntuar": cmd_score, "compress": cmd_compress, "comprimir": cmd_compress,
            "decompress": cmd_decompress, "descomprimir": cmd_decompress}


if __name__ == "__main__":
    main()
