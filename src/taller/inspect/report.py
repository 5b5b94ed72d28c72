"""report.html: everything about a run on one page that opens anywhere (pictures embedded, no network).

the story: what was trained, on what, for how long · the verdict (training/verdict.py) · samples · loss curves
           (with the 8-gram's line) · the probabilities of one generation
inside:    attention · character embeddings · memory · a surprise map (and the difference with another run) · the
           network's health · the weights along the way (slider: epochs, and the last step) · how far they moved
folded:    the configuration (Spanish words beside each key) · the parameter table
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from pathlib import Path

from taller._version import __version__
from taller.errors import TallerError
from taller.files import MB, atomic_write, read_bounded
from taller.inspect import by_component, loss_plot, parameter_rows
from taller.inspect.health import HEALTH, health_plot, read_health, summary
from taller.inspect.health import number as finite
from taller.inspect.inside import explain_run
from taller.inspect.settings import settings_html
from taller.inspect.surprise import (
    SURPRISE_CSS,
    difference_fragment,
    known_text,
    surprise,
    surprise_fragment,
    validation_text,
)
from taller.models import kind_of
from taller.runs.metrics import read_metrics
from taller.text import number, show_token, thousands

SAMPLE_CHARS = 60  # characters of the generation whose probabilities the report shows
EXPLAIN_CHARS = 40  # of them, the first ones drawn in the attention picture (unless a text is given)
BAR_PX = 60  # width in pixels of a bar of probability 1
PICTURE_LIMIT = 64 * MB  # a PNG of the run folder embedded in the page
SAMPLES_LIMIT = 16 * MB  # samples.txt
SURPRISE_CHARS = 2000  # characters of the validation text in the surprise map
REDRAW = "es un fichero de la carpeta de la ejecución: bórralo y vuelve a pedir el informe"

CSS = (
    """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937; background: #f5f6fa;
       margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { margin: 0 0 .2rem; } h2 { margin: 0 0 .8rem; font-size: 1.25rem; }
.sub { color: #6b7280; margin-bottom: 1.2rem; }
section { background: #fff; border-radius: 10px; padding: 1.1rem 1.3rem; margin: 0 0 1.1rem;
          box-shadow: 0 1px 3px #0001; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: .2rem .6rem; border-bottom: 1px solid #eef0f4; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
img { max-width: 100%; border-radius: 6px; }
details { margin: 0 0 1.1rem; } summary { cursor: pointer; font-weight: 600; padding: .4rem 0; }
.verdict { background: #ecfdf5; border-left: 4px solid #10b981; padding: .6rem .9rem; border-radius: 4px; }
.note { background: #fff7e6; border-left: 4px solid #f59e0b; padding: .6rem .9rem; border-radius: 4px; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.sample { font-family: ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; padding: .25rem .6rem;
          margin: .25rem 0; border-radius: 4px; }
.bar { display: inline-block; height: 9px; background: #6366f1; border-radius: 2px; vertical-align: middle;
       margin-right: 4px; }
.chosen { font-weight: bold; color: #4338ca; }
input[type=range] { width: 60%; vertical-align: middle; }
"""
    + SURPRISE_CSS
)

SLIDER_JS = """
const frames = JSON.parse(document.getElementById('epoch-frames').textContent);
const slider = document.getElementById('epoch-slider'), img = document.getElementById('epoch-img');
const label = document.getElementById('epoch-label');
slider.addEventListener('input', () => {
  img.src = frames[slider.value][1];
  label.textContent = frames[slider.value][0];
});
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(read_bounded(path, PICTURE_LIMIT, REDRAW)).decode("ascii")


def picture(item, alt: str) -> str:
    """An embedded image, or the note that says why there is none."""
    if isinstance(item, Path) and item.exists():
        return f'<img src="{data_uri(item)}" alt="{html.escape(alt)}">'
    return f'<p class="note">{html.escape(str(item))}</p>'


def parameters_html(model) -> str:
    rows = parameter_rows(model)
    total = sum(r["count"] for r in rows)
    body = "".join(
        f"<tr><td class='mono'>{html.escape(r['name'])}</td><td>{r['shape']}</td><td "
        f"class='n'>{thousands(r['count'])}</td>"
        f"<td class='n'>{number(r['percent'], 1)} %</td><td>{r['component']}</td><td "
        f"class='n'>{number(r['mean'], 4)}</td>"
        f"<td class='n'>{number(r['std'], 4)}</td><td class='n'>{number(r['min'], 4)}</td><td "
        f"class='n'>{number(r['max'], 4)}</td></tr>"
        for r in rows
    )
    summary = "".join(
        f"<tr><td>{c}</td><td class='n'>{thousands(n)}</td><td class='n'>{number(100 * n / total, 1)} %</td></tr>"
        for c, n in by_component(rows).items()
    )
    return (
        f"<p>Total: <b>{thousands(total)}</b> parámetros.</p><div class='cols'><table><tr><th>Componente</th>"
        f"<th>Cantidad</th><th>%</th></tr>{summary}</table><table><tr><th>Nombre</th><th>Forma</th><th>Cantidad</th>"
        f"<th>%</th><th>Componente</th><th>Media</th><th>Desv.</th><th>Mín.</th><th>Máx.</th></tr>{body}</table></div>"
    )


def weight_frames(run_dir: Path, steps_per_epoch: int) -> list[tuple[int, str, Path]]:
    """(step, label, picture) of the weights' pictures: epoch_NNN.png at each epoch's end, step_NNNNNN.png where a
    run ended between two (a run shorter than an epoch has its start and its end), in the order of the steps."""
    frames = []
    for p in run_dir.glob("*.png"):
        if m := re.fullmatch(r"epoch_(\d+)\.png", p.name):
            epoch = int(m.group(1))
            frames.append((epoch * steps_per_epoch, f"Época {epoch}", p))
        elif m := re.fullmatch(r"step_(\d+)\.png", p.name):
            step = int(m.group(1))
            frames.append((step, f"Paso {step} ({epochs_text(step, steps_per_epoch)})", p))
    return sorted(frames, key=lambda f: f[0])


def epochs_text(step: int, steps_per_epoch: int) -> str:
    """«0,05 épocas», «1 época», «3 épocas»: how much of the text the steps read."""
    epochs = step / max(1, steps_per_epoch)
    shown = number(epochs, 0 if epochs == int(epochs) else 2)
    return f"{shown} época" + ("" if shown == "1" else "s")


def epochs_html(run_dir: Path, steps_per_epoch: int = 1) -> str:
    frames = weight_frames(run_dir, steps_per_epoch)
    if not frames:
        return "<p class='note'>Esta ejecución no guardó imágenes de los pesos (train.plot_every = 0).</p>"
    data = [[label, data_uri(path)] for _, label, path in frames]
    last = len(data) - 1
    return (
        f"<p><input type='range' id='epoch-slider' min='0' max='{last}' value='{last}'> "
        f"<b id='epoch-label'>{html.escape(data[last][0])}</b></p><img id='epoch-img' src='{data[last][1]}' "
        f"alt='pesos'><script type='application/json' id='epoch-frames'>{json.dumps(data)}</script>"
        f"<script>{SLIDER_JS}</script>"
    )


def generation_html(sample) -> str:
    rows = []
    for step in sample.steps:
        cands = " ".join(
            f"<span class='{'chosen' if c == step.token else ''}'><span class='bar' style='width:{BAR_PX * p:.0f}px'>"
            f"</span>{html.escape(show_token(c))} {number(p, 3)}</span>&nbsp;&nbsp;"
            for c, p in step.top
        )
        rows.append(
            f"<tr><td class='n'>{step.position}</td><td class='mono chosen'>{html.escape(show_token(step.token))}</td>"
            f"<td class='mono'>{cands}</td></tr>"
        )
    return (
        f"<p>Texto generado: <span class='sample'>{html.escape(sample.text)}</span></p>"
        f"<table><tr><th>Posición</th><th>{sample.unit}</th><th>Los 5 más probables "
        f"(probabilidad)</th></tr>{''.join(rows)}</table>"
    )


def drawn_since(picture: Path, source: Path) -> bool:
    """Whether `picture` exists and was written after the last change to `source` (then it need not be drawn again)."""
    try:
        return picture.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False


def health_html(run) -> str:
    """health.png (drawn again from health.jsonl) and what is out of its usual range, in words."""
    entries = read_health(run.dir)
    if not entries:
        why = (
            "un modelo de cuentas no se entrena por pasos"
            if kind_of(run.config).counted
            else "train.health_every = 0, o la ejecución es anterior a las revisiones"
        )
        return f"<p class='note'>Esta ejecución no tiene revisiones de salud ({why}).</p>"
    drawn = run.dir / "health.png"
    if not drawn_since(drawn, run.dir / HEALTH):  # the training drew it at its end; a resume adds checkups
        health_plot(entries, drawn)
    said = "".join(
        f"<h3>{html.escape(title)}</h3>"
        + (
            "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
            or "<p>Todo en su rango habitual: sin avisos.</p>"
        )
        for title, notes in summary(entries)
    )
    rows = "".join(
        f"<tr><td>{html.escape(str(a.get('layer')))}</td><td class='mono'>{html.escape(str(a.get('name')))}"
        f"</td><td>{html.escape(str(a.get('kind')))}</td><td class='n'>{number(finite(a.get('mean')), 3)}</td>"
        f"<td class='n'>{number(finite(a.get('std')), 3)}</td><td class='n'>"
        f"{number(100 * finite(a.get('dead', a.get('saturated'))), 1)} % {'muertas' if 'dead' in a else 'saturadas'}"
        f"</td></tr>"
        for a in entries[-1].get("activations", [])
        if isinstance(a, dict)
    )
    table = (
        f"<h3>Activaciones en el paso {entries[-1]['step']}</h3><table><tr><th>Capa</th><th>Módulo</th>"
        f"<th>Tipo</th><th>Media</th><th>Desv.</th><th>Fuera de juego</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f"<p>Cada {run.config.train.health_every} pasos, el entrenamiento mira un paso normal por dentro: cómo se "
        "reparten las activaciones de cada capa, cuántas unidades están muertas o saturadas, cuánto gradiente "
        "llega a cada matriz y qué parte de ella cambia en un paso (el diagnóstico de las clases de makemore de "
        f"Karpathy).</p>{said}{picture(drawn, 'salud de la red')}{table}"
    )


def surprise_sections(run, surprise_text: str | None, against) -> list[tuple[str, str]]:
    """The surprise map of a text (by default the beginning of the validation text) and, with `against`, where each
    run wins on it; a note instead when the text can't be had (a corpus not on this machine)."""
    where = "el texto pedido" if surprise_text else f"los primeros {SURPRISE_CHARS} caracteres del texto de validación"
    try:
        text = surprise_text if surprise_text else validation_text(run)[:SURPRISE_CHARS]
        text = known_text(text, [run] + ([against] if against is not None else []), "replace")
        a = surprise(run, text)
        b = surprise(against, text) if against is not None else None
    except TallerError as e:
        return [("Mapa de sorpresa", f"<p class='note'>{html.escape(str(e))}</p>")]
    sections = [(f"Mapa de sorpresa ({where})", surprise_fragment(a))]
    if b is not None:
        sections.append(
            (f"¿Dónde gana cada uno? {html.escape(a.run)} contra {html.escape(b.run)}", difference_fragment(a, b))
        )
    return sections


def write_report(
    run, text: str | None = None, surprise_text: str | None = None, against=None, memory: bool = True
) -> Path:
    """Draw the explain pictures and write report.html into the run folder; return its path. `surprise_text`: the
    text of the surprise map; `against`: another run (loaded) to compare with on it; `memory=False`: a note where the
    memory curve would be (the end of a training: `taller report` draws it).

    The page tells the story first (what was trained, the verdict, samples, the loss curve, the next-character
    table), then looks inside (attention, embeddings, memory, surprise, health, the weights), and ends with the
    configuration and the parameters, folded."""
    cfg, state = run.config, run.state
    sample = run.generate(cfg.train.prompt, 1, seed=cfg.train.seed, max_chars=SAMPLE_CHARS)[0]
    pictures = explain_run(run, text or sample.text[:EXPLAIN_CHARS] or None, memory=memory)
    if not (run.dir / "loss.png").exists():
        loss_plot(read_metrics(run.dir), run.dir / "loss.png", state.get("baseline_bpc"))
    story = [
        ("Muestras", samples_html(run.dir)),
        ("Curvas de pérdida", picture(run.dir / "loss.png", "curvas de pérdida")),
        (f"Probabilidades de una generación (tras «{html.escape(sample.prompt)}»)", generation_html(sample)),
    ]
    inside = [
        ("Atención", picture(pictures["attention"], "mapas de atención")),
        ("Embeddings de los caracteres", picture(pictures["embeddings"], "embeddings")),
        ("¿Hasta dónde mira atrás? (cambia un carácter k posiciones atrás)", picture(pictures["memory"], "memoria")),
        *surprise_sections(run, surprise_text, against),
        ("Salud de la red mientras aprende", health_html(run)),
        ("Los pesos a lo largo del entrenamiento", epochs_html(run.dir, int(state.get("steps_per_epoch") or 1))),
        ("Cuánto se han movido los pesos", picture(pictures["evolution"], "evolución de los pesos")),
    ]
    if "recurrent" in pictures:
        inside.append(("Dentro de la red recurrente mientras lee", picture(pictures["recurrent"], "estado y puertas")))
    if "count_table" in pictures:
        inside.append(("La tabla del bigrama", picture(pictures["count_table"], "tabla del bigrama")))
    body = "".join(f"<section><h2>{title}</h2>{content}</section>" for title, content in story + inside)
    page = (
        "<!doctype html><html lang='es'><head><meta charset='utf-8'><title>taller · "
        f"{html.escape(run.dir.name)}</title>"
        f"<style>{CSS}</style></head><body><main><h1>Informe de {html.escape(run.dir.name)}</h1>"
        f"{story_html(run)}{body}{folded_html(run)}</main></body></html>"
    )
    path = run.dir / "report.html"
    atomic_write(path, page.encode("utf-8"))
    return path


def samples_html(run_dir: Path) -> str:
    samples = run_dir / "samples.txt"
    if not samples.exists():
        return "<p class='note'>No hay samples.txt en esta ejecución.</p>"
    lines = read_bounded(samples, SAMPLES_LIMIT, REDRAW).decode("utf-8", "replace").splitlines()
    return "".join(f"<div class='sample'>{html.escape(line)}</div>" for line in lines)


def story_html(run) -> str:
    """The page's opening: what was trained, on what, for how long, its figure, and the verdict."""
    cfg, state = run.config, run.state
    kind = kind_of(cfg)
    n_params = sum(p.numel() for p in run.model.parameters())
    step, per_epoch = int(state.get("step", 0)), int(state.get("steps_per_epoch") or 0)
    read = (
        f"{thousands(step)} pasos ({epochs_text(step, per_epoch)})"
        if per_epoch
        else f"{thousands(step)} pasos"
        if step
        else "ajustado contando, sin pasos"
    )
    seconds = f", {number(float(state.get('train_time', 0)), 0)} s de entrenamiento" if state.get("train_time") else ""
    bpc = (
        f" Acaba en <b>{number(state['val_bpc'], 3)} bits por carácter</b> en validación." if "val_bpc" in state else ""
    )
    verdict = state.get("verdict")
    judged = f"<p class='{'verdict' if state.get('learnt') else 'note'}'>{html.escape(verdict)}</p>" if verdict else ""
    return (
        f"<section><p>Un {html.escape(kind.title)} de {thousands(n_params)} parámetros, entrenado con el corpus "
        f"<b>{html.escape(str(state.get('corpus', cfg.data.corpus)))}</b>: {read}{seconds}.{bpc}</p>{judged}"
        f"<p class='sub'>taller {__version__}, {time.strftime('%Y-%m-%d %H:%M')}</p></section>"
    )


def folded_html(run) -> str:
    """The configuration (Spanish words beside each key) and the parameter table, folded at the end."""
    return (
        f"<details><summary>La configuración completa</summary><section>{settings_html(run.config.to_dict())}"
        f"</section></details><details><summary>Todos los parámetros, tensor a tensor</summary><section>"
        f"{parameters_html(run.model)}</section></details>"
    )
