"""The option types: each turns the text typed after a flag into a value, or refuses it (argparse then says
«valor NOMBRE no válido», with the function's Spanish __name__)."""

from __future__ import annotations

import math
import sys

from taller.config import SEED_LIMIT
from taller.errors import TallerError
from taller.threads import choose, cores, use


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


positive_int.__name__ = "entero positivo"


def bounded_int(high: int):
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= high:
            raise ValueError
        return value

    parse.__name__ = f"entero entre 1 y {high}"
    return parse


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


FLOAT32_MAX = 3.4028234663852886e38  # the largest float32: a learning rate beyond it overflows in torch's optimizers
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32 above 0


def learning_rate(text: str) -> float:
    """--lr: positive, finite and a float32 (the optimizers keep it as one)."""
    value = finite(text)
    if not FLOAT32_TINY <= value <= FLOAT32_MAX:
        raise ValueError
    return value


learning_rate.__name__ = "learning rate (un número positivo que quepa en float32: de 1,2e-38 a 3,4e38)"


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


def check_temperatures(temperatures: list[float]) -> None:
    """--temperature (generate, explain): finite is checked while parsing; positive here, with the way out."""
    for temperature in temperatures:
        if temperature <= 0:
            raise TallerError(
                f"--temperature={temperature:g} debe ser positiva; para elegir siempre lo más probable usa --greedy."
            )


MAX_THREADS = 256


def add_threads(parser) -> None:
    """--threads: how many threads compute on the CPU (by default, one per core other programs leave free)."""
    parser.add_argument(
        "--threads",
        "--hilos",
        type=bounded_int(MAX_THREADS),
        default=0,
        metavar="N",
        help="hilos de cálculo en la CPU (por defecto, uno por núcleo libre: si otros programas ocupan la CPU, menos)",
    )


def fit_threads(args) -> None:
    """The threads of a command that is not a training (a training chooses its own and times its first steps): chosen
    once, before it computes; said when other programs made it take fewer than the cores."""
    choice = use(choose(args.threads))
    if choice.automatic and choice.threads < cores():
        print(f"Calculo con {choice.why}.", file=sys.stderr)
