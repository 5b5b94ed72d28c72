"""report.html for the runs that read instead of writing: BERT, T5 and the classifiers (BERT, T5, counting).

    taller report RUN        (a left-to-right run gets report.py's page; these get this one)

the story: what was trained, on what, for how long · its scores on the fixed validation blanks or held-out texts
           (masked accuracy, bits per hidden character, by text for a corpus of several) · loss and accuracy curves
           · a blank filled step by step (BERT, T5) or the confusion table (a classifier)
inside:    attention (and a T5's cross-attention) · embeddings · the network's health · the weights along the way
folded:    the configuration and the parameter table, as report.py's page
"""

from __future__ import annotations

import html
from pathlib import Path

from taller.errors import TallerError
from taller.files import atomic_write
from taller.inspect.classify import read_confusion
from taller.inspect.fill import fill
from taller.inspect.inside import explain_run
from taller.inspect.plots import loss_curves, save_figure
from taller.inspect.report import CSS, epochs_html, folded_html, health_html, picture, story_html
from taller.models import kind_of
from taller.runs.metrics import read_metrics
from taller.text import number, show_token, thousands

FILL_TEXT = "Más vale ____ que nunca."  # the blank the page fills, step by step (a BERT: one _ per character)
SCORES = (  # state.json's figures this page shows, in words
    ("val_accuracy", "acierto en validación", "%"),
    ("val_masked_bpc", "bits por carácter escondido", ""),
    ("val_loss", "pérdida en validación (nats por hueco o texto)", ""),
)


def reading_loss_plot(run, path: Path) -> Path | str:
    """Train and val loss against the step, and the val accuracy on the right axis; a note without metrics."""
    metrics = read_metrics(run.dir)
    if not any("train_loss" in m for m in metrics):
        return "Esta ejecución no tiene métricas por paso (un modelo de cuentas se ajusta de una vez)."
    fig, ax = loss_curves(metrics, "paso", "pérdida (nats por hueco o por texto)", "Curvas de pérdida y acierto")
    right = [(m["step"], 100 * m["val_accuracy"]) for m in metrics if "val_accuracy" in m]
    if right:
        twin = ax.twinx()
        twin.plot(*zip(*right), "s--", color="tab:green", label="acierto en validación (%)")
        twin.set_ylabel("acierto en validación (%)")
        twin.legend(loc="center right")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def loss_picture(run) -> Path | str:
    """loss.png as the training drew it, or drawn now (with the accuracy) where it is missing."""
    path = run.dir / "loss.png"
    return path if path.exists() else reading_loss_plot(run, path)


def scores_html(run) -> str:
    state = run.state
    rows = [
        f"<tr><td>{words}</td><td class='n'>{number(100 * state[key], 1) + ' %' if unit else number(state[key], 3)}"
        "</td></tr>"
        for key, words, unit in SCORES
        if isinstance(state.get(key), (int, float))
    ]
    by_text = state.get("val_accuracy_by_text")
    if isinstance(by_text, dict):
        rows += [
            f"<tr><td>acierto en la validación de {html.escape(str(name))}</td>"
            f"<td class='n'>{number(100 * float(x), 1)} %</td></tr>"
            for name, x in by_text.items()
            if isinstance(x, (int, float))
        ]
    if not rows:
        return "<p class='note'>state.json no tiene puntuaciones de validación: el entrenamiento no terminó.</p>"
    return f"<table>{''.join(rows)}</table>"


def confusion_html(run) -> str:
    """The classifier's confusion table (rows: the truth), from confusion.json."""
    try:
        labels, counts = read_confusion(run.dir)
    except TallerError as e:
        return f"<p class='note'>{html.escape(str(e))}</p>"
    head = "".join(f"<th>{html.escape(str(label))}</th>" for label in labels)
    body = "".join(
        f"<tr><th>{html.escape(str(label))}</th>" + "".join(f"<td class='n'>{thousands(n)}</td>" for n in row) + "</tr>"
        for label, row in zip(labels, counts)
    )
    right, total = sum(counts[i][i] for i in range(len(labels))), sum(map(sum, counts))
    return (
        f"<p>{thousands(right)} de {thousands(total)} textos apartados bien clasificados "
        f"({number(100 * right / max(1, total), 1)} %). Filas: la etiqueta real; columnas: la que dio el modelo.</p>"
        f"<table><tr><th>real ↓ · predicha →</th>{head}</tr>{body}</table>"
    )


def fill_html(run) -> str:
    """A blank filled step by step, as `taller fill` prints it (a note if the run's characters can't write it)."""
    try:
        filled = fill(run, FILL_TEXT)
    except TallerError as e:
        return f"<p class='note'>{html.escape(str(e))}</p>"
    rows = "".join(
        f"<tr><td class='n'>{k}</td><td class='mono chosen'>{html.escape(show_token(s.token))}</td>"
        f"<td class='n'>{number(s.probability, 3)}</td><td class='mono'>"
        + " ".join(f"{html.escape(show_token(c))} {number(p, 3)}" for c, p in s.top)
        + f"</td><td class='mono'>{html.escape(s.text)}</td></tr>"
        for k, s in enumerate(filled.steps, start=1)
    )
    return (
        f"<p>«{html.escape(FILL_TEXT)}» → <span class='sample'>{html.escape(filled.text)}</span> "
        f'(<code>taller fill {html.escape(run.dir.name)} --text "{html.escape(FILL_TEXT)}"</code>)</p>'
        f"<table><tr><th>Paso</th><th>Elegido</th><th>Prob.</th><th>Alternativas</th><th>Texto</th></tr>{rows}</table>"
    )


def write_reading_report(run, text: str | None = None) -> Path:
    """report.html of a BERT, T5 or classifier run (see the module's docstring); returns its path."""
    kind = kind_of(run.config)
    pictures = explain_run(run, text, unknown="replace")
    story = [
        ("Puntuaciones", scores_html(run)),
        ("Curvas de pérdida", picture(loss_picture(run), "curvas de pérdida")),
    ]
    if kind.fills:
        story.append(("Un hueco relleno paso a paso", fill_html(run)))
    if kind.classifies:
        story.append(("Tabla de confusión (textos apartados)", confusion_html(run)))
    inside = [("Atención", picture(pictures["attention"], "mapas de atención"))]
    if "cross_attention" in pictures:
        inside.append(("Atención cruzada: la respuesta mira la entrada", picture(pictures["cross_attention"], "")))
    inside += [
        ("Embeddings de los caracteres", picture(pictures["embeddings"], "embeddings")),
        ("Salud de la red mientras aprende", health_html(run)),
        ("Los pesos a lo largo del entrenamiento", epochs_html(run.dir, int(run.state.get("steps_per_epoch") or 1))),
        ("Cuánto se han movido los pesos", picture(pictures["evolution"], "evolución de los pesos")),
    ]
    body = "".join(f"<section><h2>{title}</h2>{content}</section>" for title, content in story + inside)
    page = (
        "<!doctype html><html lang='es'><head><meta charset='utf-8'><title>taller · "
        f"{html.escape(run.dir.name)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>Informe de {html.escape(run.dir.name)}</h1>{story_html(run)}{body}{folded_html(run)}</main></body></html>"
    )
    path = run.dir / "report.html"
    atomic_write(path, page.encode("utf-8"))
    return path
