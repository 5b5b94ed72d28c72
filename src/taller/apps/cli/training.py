"""demo, corpus, train and prepare: the story's first half, from a text to a trained run folder."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from taller.apps.cli.parser import Parser
from taller.apps.cli.types import add_threads, bounded_int, finite_positive, path_text, positive_int, seed
from taller.config import DEVICES, TOKENIZER_KINDS, Config
from taller.data.corpora import CORPORA, describe, load_corpus
from taller.data.prepare import prepare
from taller.data.tokenizers import load_tokenizer
from taller.errors import TallerError
from taller.models import KINDS, kind_named, task_kind
from taller.runs.folder import check_run_dir
from taller.training.distributed import is_main
from taller.training.loop import train

DEMO_SECONDS = 165  # training seconds; evaluations, pictures and samples add about a minute


def default_out(*parts: str) -> Path:
    """runs/PARTS-DATE-TIME: where a command writes when --out is not given."""
    return Path("runs") / ("-".join(parts) + "-" + time.strftime("%Y%m%d-%H%M%S"))


def add_demo_and_corpus(sub) -> None:
    d = sub.add_parser("demo", help="toda la historia de los refranes en unos minutos")
    budget = d.add_mutually_exclusive_group()
    budget.add_argument(
        "--max-time",
        type=finite_positive,
        help=f"segundos de entrenamiento (por defecto {DEMO_SECONDS}: la demo cabe en 4 minutos en cualquier máquina)",
    )
    budget.add_argument("--epochs", type=bounded_int(10_000), help="entrena estas épocas en vez de por tiempo")
    d.add_argument("--out", type=path_text, help="carpeta de la ejecución (por defecto runs/demo-FECHA)")
    add_threads(d)
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("corpus", help="los corpus disponibles y cómo son")
    csub = c.add_subparsers(dest="corpus_command", metavar="ORDEN", parser_class=Parser, required=True)
    listing = csub.add_parser("list", aliases=["lista"], help="qué corpus hay y dónde se encuentran")
    listing.set_defaults(func=cmd_corpus_list)
    show = csub.add_parser("show", aliases=["ver"], help="estadísticas y ejemplos de un corpus")
    show.add_argument("name", metavar="NOMBRE", help="refranes, quijote o la ruta de un fichero de texto")
    show.set_defaults(func=cmd_corpus_show)


def add_train(sub) -> None:
    t = sub.add_parser("train", aliases=["entrenar"], help="entrena un modelo y escribe su carpeta de ejecución")
    t.add_argument(
        "--corpus", help="refranes, quijote, la ruta de un fichero de texto UTF-8 o una carpeta de `taller prepare`"
    )
    t.add_argument(
        "--preset", default=None, help="configuración de partida: base (por defecto), cervantes, lstm, ngram, seed…"
    )
    t.add_argument(
        "--model",
        choices=list(KINDS),
        help="qué modelo (el del preset); skipgram: vectores de palabras (usa su preset)",
    )
    t.add_argument(
        "--task",
        metavar="TAREA",
        help="bert: aprende una tarea sobre sus textos (clasificar: el corpus "
        "es un fichero «etiqueta<TAB>texto» o refranero-o-cervantes)",
    )
    t.add_argument(
        "--init",
        type=path_text,
        metavar="EJECUCION",
        help="con --task: empieza desde el encoder de esta ejecución de BERT (preentrenado)",
    )
    t.add_argument("--order", type=positive_int, help="n-grama: cuántos caracteres cuenta juntos (8)")
    t.add_argument(
        "--tokenizer", choices=list(TOKENIZER_KINDS), help="caracteres (char, por defecto), BPE de bytes o palabras"
    )
    t.add_argument("--tokenizer-vocab", type=positive_int, metavar="N", help="bpe y word: tokens del vocabulario (512)")
    t.add_argument("--config", help="fichero TOML con [model], [data] y [train]")
    t.add_argument("--set", action="append", default=[], metavar="CLAVE=VALOR", help="cambia una clave (repetible)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=positive_int, help="número de épocas")
    g.add_argument(
        "--max-time",
        type=finite_positive,
        metavar="SEGUNDOS",
        help="entrena este tiempo (el learning rate sigue al reloj)",
    )
    t.add_argument("--steps", type=positive_int, help="para tras este número de pasos")
    t.add_argument("--seed", type=seed, help="semilla: la misma semilla repite exactamente en CPU")
    t.add_argument("--device", choices=list(DEVICES), help="dónde entrenar (auto)")
    t.add_argument("--out", type=path_text, help="carpeta de la ejecución (por defecto runs/CORPUS-PRESET-FECHA)")
    t.add_argument(
        "--resume", action="store_true", help="continúa la ejecución de --out desde su último punto de control"
    )
    t.add_argument("--quiet", action="store_true", help="sin barra de progreso")
    add_threads(t)
    t.set_defaults(func=cmd_train)


def add_prepare(sub) -> None:
    pp = sub.add_parser(
        "prepare",
        aliases=["preparar"],
        help="convierte un texto enorme en tokens en disco, para entrenar sin cargarlo en memoria",
    )
    pp.add_argument("--corpus", required=True, metavar="FICHERO", help="fichero de texto UTF-8 (de cualquier tamaño)")
    pp.add_argument(
        "--out", type=path_text, metavar="CARPETA", help="carpeta de salida (por defecto preparados/NOMBRE)"
    )
    pp.add_argument(
        "--tokenizer-file",
        metavar="JSON",
        help="usa este tokenizer.json (p. ej. el de una ejecución) en vez de sacar el vocabulario del texto",
    )
    pp.add_argument("--quiet", action="store_true", help="sin barra de progreso")
    pp.set_defaults(func=cmd_prepare)


def cmd_demo(args) -> None:
    cfg = Config.preset("base")
    cfg.data.corpus = "refranes"
    cfg.train.prompt = "No hay "
    # By the clock, so that the demo fits its 4 minutes on a slow laptop too (the learning rate follows the clock).
    cfg.train.max_time = args.max_time or DEMO_SECONDS
    if args.epochs:
        cfg.train.epochs, cfg.train.max_time = args.epochs, 0.0
    out = Path(args.out) if args.out else default_out("demo")
    said = "" if args.max_time else " (unos 4 minutos con las evaluaciones y los dibujos)"
    by_clock = f"{cfg.train.max_time:g} s{said}"
    budget = f"{args.epochs} época" + ("s" if args.epochs != 1 else "") if args.epochs else by_clock
    print(f"taller demo: entreno un Transformer de caracteres con los refranes durante {budget}.")
    started = time.perf_counter()
    run = train(cfg, out, threads=args.threads)
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
    print(f'Prueba: {this_taller()} generate {out} --prompt "Más vale " -n 3 --show-probs')


def this_taller() -> str:
    """How to call the taller that is running now from a new shell: `taller` if that is what PATH finds, else its
    path (relative when it lies below the current folder, as .venv/bin/taller after `make demo`)."""
    here = Path(sys.executable).parent / ("taller.exe" if os.name == "nt" else "taller")
    if not here.is_file():
        return f"{sys.executable} -m taller"
    found = shutil.which("taller")
    if found and Path(found).resolve() == here.resolve():
        return "taller"
    try:
        return str(here.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(here.absolute())


def cmd_corpus_list(args) -> None:
    for name, info in CORPORA.items():
        try:
            where = load_corpus(name, download=False).source
        except TallerError:
            where = "no está en este equipo (se descargará al usarlo)"
        print(f"{name:<10} {info.description}\n{'':<10} → {where}")
    print("\nTambién vale la ruta de cualquier fichero de texto UTF-8: taller train --corpus mi_texto.txt")


def cmd_corpus_show(args) -> None:
    print(describe(load_corpus(args.name)))


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
    apply_options(cfg, args, model)
    if args.resume:
        check_unchanged(saved, cfg.to_dict())
    out = out or default_out(Path(cfg.data.corpus).stem, preset)
    run = train(cfg, out, resume=args.resume, progress=not args.quiet, threads=args.threads)
    if run.interrupted:  # saved, and the loop said how to continue: the shell's code for the signal (130, 143)
        sys.exit(128 + run.interrupted)
    if is_main():  # under torchrun, rank 0 speaks for all
        print(f"Resultados en {run.dir}/")


def apply_options(cfg: Config, args, model: str | None) -> None:
    """train's flags onto the configuration: the kind first (--set speaks to its keys), then --set, then the rest."""
    if model:
        cfg.set_kind(model)
    if args.init:
        if not kind_named(cfg.model.kind).fine_tunes:
            raise TallerError(
                "--init afina una ejecución preentrenada para una tarea: úsalo con --task, p. ej. "
                "`taller train --model bert --task clasificar --init RUN --corpus etiquetado.tsv`."
            )
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


def check_unchanged(saved: dict, now: dict) -> None:
    """--resume: the text and the network are the run's; only the training schedule may change."""
    changed = [
        f"{part}.{key}" for part in ("data", "model") for key in now[part] if now[part][key] != saved[part].get(key)
    ]
    if changed:
        raise TallerError(
            f"--resume continúa la ejecución tal como es y no puede cambiar {', '.join(changed)}; "
            "quita esas opciones, o entrena de cero en otra carpeta."
        )


def cmd_prepare(args) -> None:
    out = Path(args.out) if args.out else Path("preparados") / Path(args.corpus).stem
    tokenizer = load_tokenizer(Path(args.tokenizer_file)) if args.tokenizer_file else None
    prepare(args.corpus, out, tokenizer=tokenizer, progress=not args.quiet)
    print(f"Entrena con: taller train --corpus {out}")
