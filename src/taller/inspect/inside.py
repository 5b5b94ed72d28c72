"""Looking inside a trained model: where each head looks, where each character sits, how far the weights moved.

    attention.png    per layer and head, the (T, T) attention matrix over a text's characters: a triangle for a
                     left-to-right model, the whole square for BERT (each character looks both ways)
    cross_attention.png  a T5's decoder × encoder: where in the input it looked to write each answer token
    embeddings.png   the character embeddings, projected to 2-D with PCA, coloured by kind of character
    evolution.png    per tensor, ‖W_epoch − W_0‖ across the saved epochs (from evolution.jsonl)
    temperature.png  with temperatures: the next-token distribution after the text at each one (temperature.py)

Models without attention (an LSTM, an n-gram) or without a character embedding get a note instead of a picture.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from taller.errors import TallerError
from taller.inspect.bigram import bigram_plot
from taller.inspect.evolution import read_evolution
from taller.inspect.memory import run_memory
from taller.inspect.mixing import mixing_plot
from taller.inspect.parameters import component_of
from taller.inspect.plots import colormap, new_figure, principal_plane, save_figure
from taller.inspect.recurrent import recurrent_plot
from taller.inspect.temperature import temperature_plot
from taller.models import kind_of
from taller.models.modes import evaluating
from taller.models.protocols import HasEmbedding, ShowsAttention, ShowsCrossAttention
from taller.runs.folder import validation_tokens
from taller.text import number, show_token

VOWELS = set("aeiouáéíóúüAEIOUÁÉÍÓÚÜ")
KINDS = {
    "vocal": "tab:red",
    "consonante": "tab:blue",
    "dígito": "tab:green",
    "puntuación": "tab:purple",
    "espacio": "tab:gray",
}
NO_ATTENTION = "Este modelo no tiene atención (por ejemplo, un LSTM): no hay mapas de atención que mostrar."
NO_EMBEDDING = "Este modelo no tiene una tabla de embeddings de caracteres que dibujar."
BOTH_SIDES_TEXT = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme"  # what a BERT's maps read by default
NO_MEMORY = "No mido la memoria: es una medida de los modelos que leen de izquierda a derecha."


def memory_later(run) -> str:
    """The note where the memory curve is not drawn at the end of a training (64 windows read 65 times each)."""
    return (
        f"La curva de memoria cuesta unos segundos más (64 ventanas leídas 65 veces cada una): "
        f"`taller report {run.dir}` la dibuja."
    )


NO_NEXT = (
    "No dibujo temperature.png: este modelo no escribe de izquierda a derecha, no hay un siguiente carácter "
    "que repartir a cada temperatura."
)
MIXING_CHARS = 97  # characters of validation text for a mix's picture


def char_kind(c: str) -> str:
    """The kind of a character; of a token (word or BPE), the kind of its first character that is not a space."""
    c = c.strip()[:1] or c[:1]
    if c in VOWELS:
        return "vocal"
    if c.isalpha():
        return "consonante"
    if c.isdigit():
        return "dígito"
    return "espacio" if c.isspace() else "puntuación"


def has_attention(run) -> bool:
    """Whether the run's kind shows where its heads look (its models are ShowsAttention)."""
    return kind_of(run.config).shows_attention


def default_text(run, max_chars: int = 32) -> str:
    """A text the model itself finds likely: its greedy continuation of the run's prompt."""
    prompt = run.config.train.prompt
    limit = max(1, min(max_chars, run.model.block_size or max_chars) - len(prompt))
    return run.generate(prompt, 1, max_chars=limit, greedy=True, stop=None)[0].text[:max_chars]


@torch.no_grad()
def attention_for(run, text: str, unknown: str = "error") -> tuple[list[str], list[np.ndarray]] | None:
    """The characters of `text` (the first block_size) and, per layer, its (H, T, T) attention; None without it."""
    if not has_attention(run):
        return None
    ids = run.tokenizer.encode(text, unknown=unknown)[: run.model.block_size]
    if not ids:
        raise TallerError('el texto está vacío; escribe unos caracteres con --text "No hay ".')
    model: ShowsAttention = run.model
    with evaluating(run.model):
        maps = model.attention_maps(torch.tensor([ids], device=next(run.model.parameters()).device))
    return [run.tokenizer.pieces[i] for i in ids], [m[0].float().cpu().numpy() for m in maps]


def attention_plot(
    chars: list[str], maps: list[np.ndarray], path, causal: bool = True, rows: list[str] | None = None, title: str = ""
) -> None:
    """A grid: one row per layer, one column per head; row i of a matrix is where character i looks (`rows`: the
    pieces that look, when they are not `chars`: a T5's answer looking at its input)."""
    layers, heads, T = len(maps), maps[0].shape[0], max(len(chars), len(rows or []))
    side = min(4.2, max(2.4, 0.12 * T))
    fig = new_figure(figsize=(heads * side + 0.6, layers * side + 0.8), dpi=90)
    sides = "" if causal else " (sin triángulo causal: cada carácter mira a los dos lados)"
    fig.suptitle(title or f"Atención{sides}\nfila: el carácter que mira · columna: a cuál mira", fontsize=10)
    labels = [show_token(c) for c in chars]
    row_labels = [show_token(c) for c in rows] if rows else labels
    fontsize = max(4, min(8, 260 / max(T, 1)))
    for layer, m in enumerate(maps):
        for head in range(heads):
            ax = fig.add_subplot(layers, heads, layer * heads + head + 1)
            ax.imshow(m[head], cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"capa {layer + 1} · cabeza {head + 1}", fontsize=9)
            bottom, left = layer == layers - 1, head == 0  # the labels once per column and per row of the grid
            ax.set_xticks(range(T), labels if bottom else [], fontsize=fontsize)
            ax.set_yticks(range(len(row_labels)), row_labels if left else [], fontsize=fontsize)
            ax.tick_params(length=0, pad=1)
    fig.subplots_adjust(
        left=0.3 / fig.get_figwidth(),
        right=1 - 0.1 / fig.get_figwidth(),
        bottom=0.3 / fig.get_figheight(),
        top=1 - 0.9 / fig.get_figheight(),
        wspace=0.15,
        hspace=0.25,
    )
    save_figure(fig, path)


@torch.no_grad()
def embedding_points(run) -> tuple[list[str], np.ndarray, list[float]] | None:
    """Characters, their (V, 2) PCA coordinates and the share of variance each axis explains; None without embedding.
    A text of one character has one point, at the centre."""
    if not kind_of(run.config).shows_embedding:
        return None
    model: HasEmbedding = run.model
    points, explained = principal_plane(
        model.embedding.weight.detach().cpu()
    )  # (V, 2): where the characters differ most
    return list(run.tokenizer.pieces), points.numpy(), explained


def embedding_plot(chars: list[str], points: np.ndarray, explained: list[float], path) -> None:
    fig = new_figure(figsize=(8, 7), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    kinds = [char_kind(c) for c in chars]
    for kind, colour in KINDS.items():
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            ax.scatter(points[idx, 0], points[idx, 1], s=18, color=colour, alpha=0.35, label=kind)
    for (x, y), c, kind in zip(points, chars, kinds):
        ax.annotate(
            show_token(c),
            (x, y),
            fontsize=10,
            color=KINDS[kind],
            ha="center",
            va="bottom",
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_xlabel(f"componente principal 1 ({100 * explained[0]:.0f} % de la varianza)")
    ax.set_ylabel(f"componente principal 2 ({100 * explained[1]:.0f} % de la varianza)")
    ax.set_title("Embeddings de los caracteres (PCA a 2 dimensiones)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def evolution_plot(entries: list[dict], path) -> None:
    """One panel per component (embedding, attention, …); one line per tensor; steps along the bottom (an entry
    without its step, from an older run: its epoch)."""
    epochs = [e.get("step", e["epoch"]) for e in entries]
    names = list(entries[0]["change"])
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(component_of(name), []).append(name)
    cols = min(2, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig = new_figure(figsize=(cols * 7.5, rows * 3.4 + 0.7), dpi=90)
    colours = colormap("turbo")  # distinct colours however many tensors a panel has
    fig.suptitle("Cuánto se han movido los pesos desde el inicio: ‖W(paso) − W(0)‖ por tensor", fontsize=12)
    for i, (component, members) in enumerate(groups.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_prop_cycle(color=[colours(k / max(1, len(members) - 1)) for k in range(len(members))])
        for name in members:
            ys = [e["change"].get(name, float("nan")) for e in entries]
            short = name.replace("blocks.", "b").replace(".weight", ".w").replace(".bias", ".b")
            ax.plot(epochs, ys, marker="o" if len(epochs) < 15 else None, markersize=3, linewidth=1, label=short)
        ax.set_title(component, fontsize=10)
        ax.set_xlabel("paso", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(
            fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.02), ncol=2 if len(members) > 14 else 1, frameon=False
        )  # beside the panel, never over the lines
    fig.subplots_adjust(
        left=0.05,
        right=0.86,
        bottom=0.6 / fig.get_figheight(),
        top=1 - 0.7 / fig.get_figheight(),
        wspace=0.75,
        hspace=0.45,
    )
    save_figure(fig, path)


@torch.no_grad()
def cross_attention_for(run, text: str) -> tuple[list[str], list[str], list[np.ndarray]]:
    """A T5's cross-attention on `text` with a few tokens in its middle hidden behind <X0>, while it writes the true
    answer «<X0> hidden <end>»: (input pieces, answer pieces, per decoder layer (H, answer, input))."""
    m, pieces = run.config.model, run.tokenizer.pieces
    ids = run.tokenizer.encode(text, unknown="replace")[: m.block_size]
    if len(ids) < 4:
        raise TallerError("el texto es demasiado corto para esconder un tramo; escribe una frase con --text.")
    lo, hi = len(ids) // 2, min(len(ids) - 1, len(ids) // 2 + max(1, round(m.span_length)))
    src = ids[:lo] + [m.sentinel(0)] + ids[hi:]
    answer = [m.start_id, m.sentinel(0), *ids[lo:hi]]  # what the decoder reads while writing «<X0> hidden <end>»
    name = {m.sentinel(0): "<X0>", m.start_id: "<start>"}
    model: ShowsCrossAttention = run.model
    with evaluating(run.model):
        maps = model.cross_attention_maps(torch.tensor([src]), torch.tensor([answer]))
    return (
        [name.get(i) or pieces[i] for i in src],
        [name.get(i) or pieces[i] for i in answer],
        [w[0].float().cpu().numpy() for w in maps],
    )


def cross_attention_plot(run, text: str) -> Path:
    """cross_attention.png: a T5's answer (rows) against its input (columns), one panel per layer and head."""
    inputs, answer, maps = cross_attention_for(run, text)
    title = (
        "Atención cruzada (decodificador × codificador)\nfila: el token de la respuesta que se escribe · "
        "columna: a qué parte de la entrada mira"
    )
    attention_plot(inputs, maps, run.dir / "cross_attention.png", causal=False, rows=answer, title=title)
    return run.dir / "cross_attention.png"


def explain_run(
    run, text: str | None = None, unknown: str = "error", temperatures: list[float] = (), memory: bool = True
) -> dict[str, Path | str]:
    """Draw attention.png, embeddings.png, evolution.png and memory.png (and a bigram's table, and with `temperatures`
    temperature.png) into the run folder; a note (str) where one can't be drawn. `memory=False`: no memory curve (it
    costs seconds: the end of a training leaves it to `taller report`)."""
    kind = kind_of(run.config)
    left_to_right = kind.language_model  # else a BERT: it reads both sides and writes nothing
    if not text and not left_to_right:
        text, unknown = BOTH_SIDES_TEXT, "replace"
    given, text = text, text if text else default_text(run)
    out: dict[str, Path | str] = {}
    attention = attention_for(run, text, unknown)
    if attention is None:
        out["attention"] = NO_ATTENTION
    else:
        attention_plot(*attention, run.dir / "attention.png", causal=run.config.model.causal)
        out["attention"] = run.dir / "attention.png"
    if kind.encoder_decoder:  # a T5: where its decoder looked in the input
        out["cross_attention"] = cross_attention_plot(run, text)
    points = embedding_points(run)
    if points is None:
        out["embeddings"] = NO_EMBEDDING
    else:
        embedding_plot(*points, run.dir / "embeddings.png")
        out["embeddings"] = run.dir / "embeddings.png"
    entries = read_evolution(run.dir)
    if len(entries) < 2:
        out["evolution"] = (
            "Aún no hay pesos guardados después del inicio con los que ver cómo cambian (evolution.jsonl)."
        )
    else:
        evolution_plot(entries, run.dir / "evolution.png")
        out["evolution"] = run.dir / "evolution.png"
    if not left_to_right:
        out["memory"] = NO_MEMORY
    else:
        out["memory"] = run_memory(run, run.dir / "memory.png") if memory else memory_later(run)
    if kind.traces_state:  # a recurrent network: its state (and gates) along the text
        out["recurrent"] = recurrent_plot(run, text, run.dir / "recurrent.png", unknown)
    if kind.count_table:  # a bigram: the whole model is a table of probabilities
        out["count_table"] = bigram_plot(run, run.dir / "bigram.png")
    if kind.combines:  # a mix: whom it trusted where, along a piece of validation (or the text given)
        out["mixing"] = mixing_plot(run, given or mixing_text(run, text), run.dir / "mixing.png", unknown)
    if temperatures and not left_to_right:
        out["temperature"] = NO_NEXT
    elif temperatures:
        entropies = temperature_plot(run, text, list(temperatures), run.dir / "temperature.png", unknown)
        out["temperature"] = run.dir / "temperature.png"
        out["entropy"] = "Entropía del siguiente carácter: " + " · ".join(
            f"temperatura {t:g}: {number(h, 2)} bits" for t, h in entropies.items()
        )
    return out


def mixing_text(run, fallback: str) -> str:
    """A piece of the run's validation text: real text, where the parts disagree more than on their own output."""
    try:
        ids = validation_tokens(run, "dibujar la mezcla")[0][:MIXING_CHARS]
    except TallerError:
        return fallback
    return run.tokenizer.decode(ids)
