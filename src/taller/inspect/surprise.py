"""Where a model is surprised: the bits it pays for each character of a text (a surprise map), and where one model
beats another, character by character.

    bits(c) = −log₂ P(c | what came before)      0 bits: the model was sure · 8 bits: a 1-in-256 surprise

The text is scored exactly as the run's own evaluation scores its validation text (taller/evaluate.py: the same
windows for a neural model, every character after its n−1 for a count model), so the bits of all the characters
add up to bits/char × characters. A token that covers several characters (BPE, words) shares its bits evenly among
them; a token that completes none (a byte in the middle of «ñ») passes its bits on to the next one. The first
token has no context and is not scored (None).
"""

from __future__ import annotations

import dataclasses
import html
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from taller.data.corpora import prepare_corpus
from taller.data.prepared import is_prepared, open_prepared
from taller.data.split import split_corpus
from taller.data.tokenizers import REPLACE_ADVICE, check_known, replace_unknown
from taller.errors import TallerError
from taller.evaluate import LN2, scored_targets, scoring_window, val_text
from taller.files import MB, atomic_write, read_bounded
from taller.inspect.plots import colormap, new_figure, save_figure
from taller.models import kind_of
from taller.text import number, show_char, show_token, thousands

TEXT_LIMIT = 4 * MB  # a text to score: the whole Quijote is 2 MB
SHOWN = 20_000  # characters coloured in a page (the totals are always of the whole text)
PICTURE = 1_200  # characters drawn in the PNG: PICTURE_COLUMNS per row
PICTURE_COLUMNS = 80
TOP = 10  # surprising spots listed
BEFORE, AFTER = 24, 6  # characters of context around a listed spot
MAX_BITS = 8.0  # the darkest colour (a 1-in-256 surprise or worse)
MAX_DIFFERENCE = 4.0  # the strongest colours of a difference: 4 bits saved or lost
LOGITS_HELD = 1 << 22  # logits held at once while scoring (4 M floats, 16 MB): a large vocabulary scores fewer
#                        windows per batch, so the memory a text costs does not grow with the vocabulary


@dataclass
class Surprise:
    """The bits a run paid for each character of `text` (None: the first token's characters, not scored)."""

    run: str  # the run folder's name
    text: str
    bits: list[float | None]

    @property
    def scored(self) -> int:
        return sum(b is not None for b in self.bits)

    @property
    def total(self) -> float:
        return float(sum(b for b in self.bits if b is not None))

    @property
    def bpc(self) -> float:
        return self.total / max(1, self.scored)


# --- scoring ---------------------------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A text file to score, read with a bound."""
    try:
        data = read_bounded(
            Path(path),
            TEXT_LIMIT,
            "indica un fichero de texto UTF-8",
            "usa un trozo más corto (por ejemplo con `head -c 2000000`)",
        )
    except FileNotFoundError:
        raise TallerError(f"no existe el fichero {path}; indica un fichero de texto UTF-8.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TallerError(f"{path} no es texto UTF-8 (byte {e.start}); guárdalo como UTF-8.") from None


def validation_text(run) -> str:
    """The run's own validation text, cut from its corpus by its [data] section (never downloaded here)."""
    data = dataclasses.replace(run.config.data)  # open_prepared writes into it
    if is_prepared(data.corpus):
        _, _, tokenizer, _, val = open_prepared(data, run.dir / "tokenizer.json")
        return tokenizer.decode(val)
    return split_corpus(prepare_corpus(data, download=False), data).val


def known_text(text: str, runs: list, unknown: str = "error") -> str:
    """`text` as every run will read it: with unknown="replace", the characters a run never saw replaced (á → a,
    else a space); otherwise refused in one line naming the run and listing them."""
    for run in runs:
        if unknown == "replace":
            text = replace_unknown(text, run.tokenizer)
        else:  # every tokenizer, not only a character one: a word tokenizer would make them <unk> silently
            check_known(run.tokenizer, text, who=str(run.dir), advice=REPLACE_ADVICE)
    if len(text) < 2:
        raise TallerError("el texto es demasiado corto: hacen falta al menos 2 caracteres para medir la sorpresa.")
    return text


def target_nats(run, ids: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """(len(ids) − 1,) nats of every token but the first, as the run's evaluation scores them."""
    model, cfg = run.model, run.config
    if kind_of(cfg).counted:  # counting.py: every character after the n−1 before it
        return -np.asarray(model.log_probs(ids), dtype=np.float64)
    device = next(model.parameters()).device
    val = val_text(ids, chars, scoring_window(model, cfg.model))  # evaluate.py's windows (a mix: its parts')
    # in bfloat16 if the run was trained in it (on a CPU, as training/device.py decides; on CUDA torch picks bf16)
    bf16 = cfg.train.dtype == "bfloat16" or (
        cfg.train.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    batch = min(64, max(1, LOGITS_HELD // (val.windows.shape[1] * run.tokenizer.vocab_size)))  # 64: evaluate's
    parts = [nats.double().cpu() for nats, _ in scored_targets(model, val, device, autocast, batch)]  # (n,) each
    return torch.cat(parts).numpy()


def spread(nats: np.ndarray, token_chars: np.ndarray, n_chars: int) -> list[float | None]:
    """Bits per character from nats per scored token (tokens 1 …): a token's bits shared by the characters it
    completes; one that completes none passes them on."""
    bits: list[float | None] = [None] * n_chars
    done = np.cumsum(token_chars)  # characters complete after each token
    pending, last = 0.0, None
    for i in range(1, len(token_chars)):
        pending += float(nats[i - 1]) / LN2
        k = int(token_chars[i])
        if k:
            for c in range(int(done[i]) - k, int(done[i])):
                bits[c] = pending / k
            pending, last = 0.0, int(done[i]) - 1
    if pending and last is not None:  # bits after the last complete character (never, for a whole UTF-8 text)
        bits[last] += pending
    return bits


def surprise(run, text: str) -> Surprise:
    """The bits `run` pays for each character of `text` (already readable by it: see known_text)."""
    with torch.no_grad():
        ids, token_chars = run.tokenizer.token_chars(text)
        if len(ids) < 2:
            raise TallerError(
                f"el texto es demasiado corto para {run.dir}: hacen falta al menos 2 tokens para medir la sorpresa."
            )
        nats = target_nats(run, np.asarray(ids), np.asarray(token_chars))
    return Surprise(run.dir.name, text, spread(nats, token_chars, len(text)))


def top_spots(bits: list[float | None], text: str, k: int = TOP, sign: float = 1.0) -> list[dict]:
    """The k characters with the most bits (sign −1: the fewest), with the text around them."""
    scored = [(sign * b, i) for i, b in enumerate(bits) if b is not None]
    scored.sort(reverse=True)
    return [
        {
            "position": i,
            "char": text[i],
            "bits": bits[i],
            "before": text[max(0, i - BEFORE) : i],
            "after": text[i + 1 : i + 1 + AFTER],
        }
        for _, i in scored[:k]
    ]


def difference(a: Surprise, b: Surprise) -> list[float | None]:
    """Per character, the bits a pays minus those b pays (negative: a was less surprised, a wins there)."""
    return [x - y if x is not None and y is not None else None for x, y in zip(a.bits, b.bits)]


def sendable(values):
    """A number or a list of them as JSON can carry them: an infinite surprise (a probability of 0) becomes None."""
    if isinstance(values, list):
        return [sendable(v) for v in values]
    return values if values is None or math.isfinite(values) else None


def reply(a: Surprise, b: Surprise | None = None, shown: int = SHOWN) -> dict:
    """The map as JSON (the explorer's /api/surprise): the first `shown` characters, totals of the whole text."""
    out = {
        "run": a.run,
        "chars": list(a.text[:shown]),
        "bits": sendable(a.bits[:shown]),
        "total": sendable(a.total),
        "scored": a.scored,
        "bpc": sendable(a.bpc),
        "top": spots_json(a.bits, a.text),
        "shown": min(shown, len(a.text)),
        "length": len(a.text),
    }
    if b is not None:
        diff = difference(a, b)
        out["against"] = {
            "run": b.run,
            "bits": sendable(b.bits[:shown]),
            "total": sendable(b.total),
            "scored": b.scored,
            "bpc": sendable(b.bpc),
            "difference": sendable(diff[:shown]),
            "wins": spots_json(diff, a.text, -1.0),
            "losses": spots_json(diff, a.text, 1.0),
        }
    return out


def spots_json(values: list[float | None], text: str, sign: float = 1.0) -> list[dict]:
    return [{**s, "bits": sendable(s["bits"])} for s in top_spots(values, text, sign=sign)]


# --- colours and words -----------------------------------------------------------------------------------------------


def heat(bits: float | None) -> str:
    """0 bits → white, MAX_BITS or more → dark red; not scored → light grey."""
    if bits is None:
        return "#e5e7eb"
    t = min(max(bits / MAX_BITS, 0.0), 1.0) ** 0.8
    stops = [(255, 255, 255), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38)]
    x = t * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    r, g, b = (round(p + (q - p) * f) for p, q in zip(stops[i], stops[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


def diverging(d: float | None) -> str:
    """Negative (the first run wins) → blue, positive (it loses) → red, 0 → white; not scored → light grey."""
    if d is None:
        return "#e5e7eb"
    t = min(abs(d) / MAX_DIFFERENCE, 1.0) ** 0.7
    end = (33, 102, 172) if d < 0 else (178, 24, 43)
    r, g, b = (round(255 + (e - 255) * t) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def coloured(text: str, values: list[float | None], colour, unit: str) -> str:
    """Each character as a span coloured by its value, with the value in its tooltip."""
    spans = []
    for c, v in zip(text, values):
        shown = "⏎" if c == "\n" else html.escape(c)
        tip = f"«{html.escape(show_char(c))}»: " + (
            "sin contexto, no se puntúa" if v is None else f"{number(v)} {unit}"
        )
        spans.append(f"<span style='background:{colour(v)}' title='{tip}'>{shown}</span>")
        if c == "\n":
            spans.append("<br>")
    return f"<div class='surprise-text'>{''.join(spans)}</div>"


def visible(text: str) -> str:
    return html.escape(show_token(text))  # spaces and newlines as ␣ and ⏎


def spots_table(spots: list[dict], unit: str, title: str) -> str:
    rows = "".join(
        f"<tr><td class='n'>{thousands(s['position'] + 1)}</td><td class='mono'>…{visible(s['before'])}"
        f"<b style='background:#fde68a'>{visible(s['char'])}</b>{visible(s['after'])}…"
        f"</td><td class='n'>{number(s['bits'])} {unit}</td></tr>"
        for s in spots
    )
    return (
        f"<div><h3>{title}</h3><table><tr><th>Posición</th><th>Dónde</th><th>{unit.capitalize()}</th></tr>{rows}"
        "</table></div>"
    )


def legend_bar(colour, low: float, high: float, labels: list[str]) -> str:
    cells = "".join(f"<span style='background:{colour(low + (high - low) * k / 39)}'></span>" for k in range(40))
    ticks = "".join(f"<span>{html.escape(t)}</span>" for t in labels)
    return f"<div class='legend-bar'>{cells}</div><div class='legend-ticks'>{ticks}</div>"


def cut_note(s: Surprise) -> str:
    if len(s.text) <= SHOWN:
        return ""
    return (
        f"<p class='note'>Se colorean los primeros {thousands(SHOWN)} de {thousands(len(s.text))} caracteres; "
        "los totales y la lista son del texto entero.</p>"
    )


def surprise_fragment(s: Surprise, reference: float | None = None) -> str:
    """The map of one run as an HTML fragment: legend, totals, coloured text and the most surprising spots.
    `reference`: the run's own bits/char on its validation text, to compare with."""
    ref = (
        f" (la evaluación de la ejecución dio {number(reference, 3)} bits/carácter en su texto de validación)"
        if reference is not None
        else ""
    )
    return (
        f"<p>Cada carácter tiene el color de los <b>bits</b> que <b>{html.escape(s.run)}</b> pagó por él: "
        "−log₂ P(carácter | lo anterior). Blanco: lo esperaba (0 bits); rojo oscuro: le sorprendió mucho "
        f"({MAX_BITS:g} bits o más, una probabilidad de 1 entre {2**MAX_BITS:.0f}). Gris: sin contexto, no se "
        "puntúa. Pasa el ratón por encima de un carácter para ver sus bits.</p>"
        + legend_bar(heat, 0, MAX_BITS, ["0 bits", "2", "4", "6", f"{MAX_BITS:g}+"])
        + f"<p class='total'>Total: <b>{number(s.total)} bits</b> en {thousands(s.scored)} caracteres puntuados "
        f"= <b>{number(s.bpc, 3)} bits/carácter</b>{ref}.</p>"
        + cut_note(s)
        + coloured(s.text[:SHOWN], s.bits[:SHOWN], heat, "bits")
        + spots_table(top_spots(s.bits, s.text), "bits", "Los puntos más sorprendentes")
    )


def difference_fragment(a: Surprise, b: Surprise) -> str:
    """Where `a` beats `b` (blue) and where `b` beats `a` (red), character by character, as an HTML fragment."""
    diff, unit = difference(a, b), "bits de diferencia"
    saved = b.total - a.total
    who = a.run if saved >= 0 else b.run
    return (
        f"<p>Cada carácter tiene el color de la diferencia de bits: los de <b>{html.escape(a.run)}</b> menos los "
        f"de <b>{html.escape(b.run)}</b>. <span style='color:#2166ac'><b>Azul</b></span>: {html.escape(a.run)} "
        f"gana allí (le sorprende menos); <span style='color:#b2182b'><b>rojo</b></span>: gana "
        f"{html.escape(b.run)}; blanco: empatan. {MAX_DIFFERENCE:g} bits de diferencia o más es el color más "
        "intenso.</p>"
        + legend_bar(
            diverging,
            -MAX_DIFFERENCE,
            MAX_DIFFERENCE,
            [f"−{MAX_DIFFERENCE:g} (gana {a.run})", "0", f"+{MAX_DIFFERENCE:g} (gana {b.run})"],
        )
        + f"<p class='total'>{html.escape(a.run)}: {number(a.total)} bits ({number(a.bpc, 3)} bits/carácter) · "
        f"{html.escape(b.run)}: {number(b.total)} bits ({number(b.bpc, 3)} bits/carácter) · "
        f"<b>{html.escape(who)}</b> ahorra {number(abs(saved))} bits en el texto.</p>"
        + cut_note(a)
        + coloured(a.text[:SHOWN], diff[:SHOWN], diverging, unit)
        + "<div class='cols'>"
        + spots_table(top_spots(diff, a.text, sign=-1.0), unit, f"Donde más gana {html.escape(a.run)}")
        + spots_table(top_spots(diff, a.text), unit, f"Donde más gana {html.escape(b.run)}")
        + "</div>"
    )


SURPRISE_CSS = """
.surprise-text { font: 15px/1.9 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap;
                 word-break: break-all; background: #fff; padding: .6rem; border: 1px solid #e5e7eb;
                 border-radius: 6px; }
.surprise-text span { border-radius: 2px; }
.legend-bar { display: flex; width: 320px; height: 14px; border: 1px solid #d1d5db; }
.legend-bar span { flex: 1; }
.legend-ticks { display: flex; justify-content: space-between; width: 320px; font-size: 12px; color: #4b5563; }
.total { font-size: 15px; }
"""

PAGE_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2937; background: #f5f6fa; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: .2rem .6rem; border-bottom: 1px solid #eef0f4; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .mono { font-family: ui-monospace, monospace; }
.cols { display: flex; gap: 2rem; flex-wrap: wrap; }
.note { background: #fff7e6; border-left: 4px solid #f59e0b; padding: .6rem .9rem; }
"""


def page(title: str, fragment: str) -> str:
    """A whole page around a fragment: opens from disk, no network."""
    return (
        f"<!doctype html><html lang='es'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_CSS}{SURPRISE_CSS}</style></head><body><main><h1>{html.escape(title)}</h1>{fragment}"
        "</main></body></html>"
    )


# --- the picture -----------------------------------------------------------------------------------------------------


def surprise_plot(text: str, values: list[float | None], path, title: str, diverge: bool = False) -> None:
    """The first PICTURE characters on a grid, each cell coloured by its bits (or difference of bits)."""
    text, values = text[:PICTURE], values[:PICTURE]
    rows = -(-len(text) // PICTURE_COLUMNS)
    grid = np.full((rows, PICTURE_COLUMNS), np.nan)
    for i, v in enumerate(values):
        grid[i // PICTURE_COLUMNS, i % PICTURE_COLUMNS] = np.nan if v is None else v
    fig = new_figure(figsize=(PICTURE_COLUMNS * 0.16 + 1.6, rows * 0.3 + 1.3), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    name, limits = ("RdBu_r", (-MAX_DIFFERENCE, MAX_DIFFERENCE)) if diverge else ("YlOrRd", (0, MAX_BITS))
    cmap = colormap(name).with_extremes(bad="#e5e7eb")  # grey: not scored
    image = ax.imshow(grid, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto", interpolation="nearest")
    for i, c in enumerate(text):
        ax.text(
            i % PICTURE_COLUMNS,
            i // PICTURE_COLUMNS,
            show_char(c),
            ha="center",
            va="center",
            fontsize=7,
            family="monospace",
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    label = "bits de diferencia (azul: gana el primero)" if diverge else "bits pagados por el carácter"
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01).set_label(label, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# --- the files `taller explain --surprise` writes --------------------------------------------------------------------


def write_surprise(run, text: str, other=None, unknown: str = "error") -> tuple[Surprise, Surprise | None, list[Path]]:
    """surprise.html and surprise.png in the run folder (and, with `other`, surprise_diff.html and .png): the maps
    of `text`; returns both runs' surprise and the files written."""
    text = known_text(text, [run] + ([other] if other is not None else []), unknown)
    a = surprise(run, text)
    b = surprise(other, text) if other is not None else None  # both scored before any file is written
    reference = run.state.get("val_bpc") if isinstance(run.state.get("val_bpc"), float) else None
    files = [run.dir / "surprise.html", run.dir / "surprise.png"]
    atomic_write(files[0], page(f"Mapa de sorpresa de {a.run}", surprise_fragment(a, reference)).encode("utf-8"))
    surprise_plot(a.text, a.bits, files[1], f"Bits que paga {a.run} por cada carácter (los primeros {PICTURE})")
    if b is None:
        return a, None, files
    files += [run.dir / "surprise_diff.html", run.dir / "surprise_diff.png"]
    atomic_write(
        files[2], page(f"{a.run} contra {b.run}: dónde gana cada uno", difference_fragment(a, b)).encode("utf-8")
    )
    surprise_plot(
        a.text, difference(a, b), files[3], f"Bits de {a.run} menos bits de {b.run} (azul: gana {a.run})", diverge=True
    )
    return a, b, files
