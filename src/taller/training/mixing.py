"""Fitting a mix (models/mix.py): its table of weights, learnt on a slice of the training text; never on validation.

    train text ─┬─ the first 95% ──── (what the parts learnt from)
                └─ the last 5% ────── the slice: each part predicts it, the table learns whom to trust there
    val text   ──────────────────────  scored once, at the end, like any model's

A part that learnt from the slice looks far surer on it than it is on new text, and the table would learn to trust
it too much (on a small text, enough to make the mix worse than its parts). So a count model (an n-gram) is counted
again without the slice, for the slice's predictions only (seconds), and a network leaves the slice unread while it
trains (train.mix_slice, the same share by default). A network that did read it (mix_slice = 0, or a run from before
the option) is mixed as it is, with a warning.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from taller.data.corpora import prepare_corpus
from taller.data.prepared import is_prepared
from taller.data.split import mix_slice_length, split_corpus
from taller.errors import TallerError
from taller.evaluate import log_distributions, score_distributions, scoring_window
from taller.files import atomic_write
from taller.models import build_model, kind_of
from taller.runs.checkpoint import save_checkpoint
from taller.runs.folder import Run, clear_unfinished_start, load_run, lock_run_dir, run_identity, run_state
from taller.text import number, thousands
from taller.training.artefacts import write_samples

FIT_ELEMENTS = 1 << 22  # numbers (positions × parts × vocabulary) in one step of the table's fit: 16 MB
# Each weight of the table is fitted on the slice's positions that fall in its row: a small slice gets fewer bands.
# On 300 refranes (601 tokens in the slice) the mix scored 2.455 bits/char with 1 band, 2.471 with 2, 2.591 with 4.
TOKENS_PER_WEIGHT = 500


def fit_mix(cfg, out: Path, ctx, log=print) -> Run:
    """Load the parts, check they read the same text with the same tokens, fit the table, write the run folder."""
    parts = [load_run(p) for p in distinct_folders(cfg.model.parts())]
    check_parts(parts)
    cfg.data = parts[0].config.data  # the mix reads what its parts read
    cfg.model.vocab_size = parts[0].tokenizer.vocab_size
    cfg.validate()
    if is_prepared(cfg.data.corpus):
        raise TallerError(
            "una mezcla se ajusta con el texto y estas ejecuciones se entrenaron con una carpeta "
            "preparada; entrénalas con el fichero de texto."
        )
    with lock_run_dir(out, resume=False):
        clear_unfinished_start(out)
        cfg.model.runs = ",".join(os.path.relpath(p.dir.resolve(), out.resolve()) for p in parts)  # moves with out/..
        return mix_runs(cfg, out, parts, log)


def distinct_folders(names: list[str]) -> list[str]:
    """`names`, refused before anything is loaded if two lead to one folder (runs/ng and ./runs/ng, a link): once
    fitted, the mix would name it twice and no command would open it."""
    seen: dict[Path, str] = {}
    for name in names:
        try:
            real = Path(name).expanduser().resolve()
        except (OSError, RuntimeError):  # a link that leads to itself: load_run says what it is
            continue
        if real in seen:
            raise TallerError(
                f"model.runs nombra dos veces la misma ejecución ({seen[real]} y {name} son la carpeta "
                f"{real}); nombra cada una una vez."
            )
        seen[real] = name
    return names


def check_parts(parts: list[Run]) -> None:
    for part in parts:  # its parts are loaded from their own folders, never a mix's mix: no later command opens it
        if kind_of(part.config).combines:
            raise TallerError(
                f"{part.dir} es una mezcla, y una mezcla no se mezcla otra vez; nombra en model.runs las "
                "ejecuciones que la forman."
            )
    first = parts[0]
    for part in parts[1:]:
        if part.config.data != first.config.data:
            raise TallerError(
                f"{part.dir} y {first.dir} no leyeron el mismo texto con las mismas opciones ([data] "
                "distinto); una mezcla combina modelos del mismo corpus."
            )
        if part.tokenizer.to_json() != first.tokenizer.to_json():
            raise TallerError(
                f"{part.dir} y {first.dir} usan tokenizadores distintos; una mezcla combina modelos "
                "con los mismos tokens."
            )


def mix_runs(cfg, out: Path, parts: list[Run], log) -> Run:
    """The fit itself (the folder locked by the caller)."""
    started = time.perf_counter()
    corpus = prepare_corpus(cfg.data)
    split = split_corpus(corpus, cfg.data)
    tokenizer = parts[0].tokenizer
    train_ids = np.asarray(tokenizer.encode_array(split.train), dtype=np.int64)
    val_ids, val_chars = tokenizer.token_chars(split.val)
    n_slice = mix_slice_length(len(train_ids), cfg.model.held_out, cfg.model.max_held_out)
    if len(train_ids) - n_slice < 2:
        raise TallerError(
            f"el texto de entrenamiento tiene {len(train_ids)} tokens: muy poco para apartar un trozo "
            "con el que ajustar la mezcla; usa un texto más largo."
        )
    log(
        f"Mezcla de {len(parts)} modelos ({', '.join(str(p.dir) for p in parts)}): ajusto sus pesos con los últimos "
        f"{thousands(n_slice)} tokens del texto de entrenamiento (la validación no se toca)."
    )
    warn_of_readers(parts, n_slice, cfg.model.held_out, log)
    bands = bands_for(n_slice, len(parts), cfg.model.levels)
    if bands < cfg.model.levels:
        log(
            f"Con {thousands(n_slice)} tokens para ajustarla, la tabla usa {bands} banda(s) de confianza por modelo en "
            f"vez de {cfg.model.levels}: cada peso necesita unos {TOKENS_PER_WEIGHT} tokens."
        )
        cfg.model.levels = bands
    model = build_model(cfg.model).attach([p.model for p in parts])
    features = slice_predictions(parts, train_ids[:-n_slice], train_ids[-n_slice:])
    fit_table(model, features, torch.from_numpy(train_ids[-n_slice + 1 :]), cfg.model.fit_steps, cfg.train.seed)
    fit_time = time.perf_counter() - started
    scores = score_mix(model, parts, val_ids, val_chars)
    return write_mix(cfg, out, model, parts, scores, corpus, split, fit_time, log)


def bands_for(slice_tokens: int, parts: int, most: int) -> int:
    """The most confidence bands (up to model.levels) whose table has TOKENS_PER_WEIGHT slice tokens per weight."""
    bands = most
    while bands > 1 and bands**parts * parts * TOKENS_PER_WEIGHT > slice_tokens:
        bands -= 1
    return bands


def warn_of_readers(parts: list[Run], n_slice: int, share: float, log) -> None:
    """A network that learnt from the slice: the mix still works, but will trust it more than it deserves."""
    for part in parts:
        if not kind_of(part.config).counted and part.state.get("mix_slice_tokens", 0) < n_slice:
            log(
                f"Aviso: {part.dir} aprendió del trozo con el que ajusto la mezcla, y ahí parecerá más segura de lo "
                f"que es; vuelve a entrenarla con --set mix_slice={share:g} para que lo deje sin leer."
            )


def slice_predictions(parts: list[Run], before: np.ndarray, piece: np.ndarray) -> torch.Tensor:
    """(N-1, K, V): each part's log-probabilities on the held-out slice; a count model counted again without it."""
    out = []
    for part in parts:
        model = part.model
        if kind_of(part.config).counted:  # it has counted the slice: count again without it
            model = build_model(part.config.model).fit(before).eval()
        out.append(log_distributions(model, piece, scoring_window(model, part.config.model)))
    return torch.stack(out, dim=1)


def fit_table(model, features: torch.Tensor, targets: torch.Tensor, steps: int, seed: int) -> None:
    """Adam on the table's weights: the cross-entropy of the mix on the slice (a random part of it per step when
    it is large), the learning rate falling linearly to 0."""
    N, K, V = features.shape
    batch = min(N, max(1, FIT_ELEMENTS // (K * V)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([model.weights], lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    for _ in range(steps):
        pick = torch.randint(N, (batch,), generator=generator) if batch < N else slice(None)
        mixed = model.mix(features[pick])  # (B, V)
        loss = -mixed.gather(1, targets[pick][:, None]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


@torch.no_grad()
def score_mix(model, parts: list[Run], ids: np.ndarray, chars: np.ndarray) -> dict:
    """The mix's and each part's bits per character on the validation text, from the same predictions."""
    logp = torch.stack(
        [log_distributions(p.model, ids, scoring_window(p.model, p.config.model)) for p in parts], dim=1
    )  # (N-1, K, V)
    own = [score_distributions(logp[:, k], ids, chars).bpc for k in range(len(parts))]
    mixed = torch.cat([model.mix(logp[i : i + 8192]) for i in range(0, len(logp), 8192)])  # (N-1, V)
    score = score_distributions(mixed, ids, chars)
    return {"val_loss": score.loss, "val_bpc": score.bpc, "parts_val_bpc": own, "chars": score.chars}


def write_mix(cfg, out: Path, model, parts: list[Run], scores: dict, corpus, split, fit_time: float, log) -> Run:
    cfg.save(out / "config.toml")
    parts[0].tokenizer.save(out / "tokenizer.json")
    final = {
        "step": 0,
        "epoch": 1,
        "val_loss": scores["val_loss"],
        "val_bpc": scores["val_bpc"],
        "time": fit_time,
        "final": True,
    }
    atomic_write(out / "metrics.jsonl", (json.dumps(final) + "\n").encode("utf-8"))
    records = [{"run": name, "identity": run_identity(p)} for name, p in zip(cfg.model.parts(), parts)]
    state = run_state(
        step=0,
        epoch=1,
        train_time=fit_time,
        finished=True,
        corpus=corpus,
        split=split,
        parameters=model.weights.numel(),
        best_val_loss=scores["val_loss"],
        val_loss=scores["val_loss"],
        val_bpc=scores["val_bpc"],
        parts=records,
        parts_val_bpc=scores["parts_val_bpc"],
        chars_per_s=scores["chars"] / max(fit_time, 1e-9),
        tokenizer=parts[0].tokenizer.kind,
    )
    save_checkpoint(out, model.state_dict(), {}, {}, state)
    names = [str(p.dir) for p in parts]
    atomic_write(out / "parameters.txt", weight_table(model, names).encode("utf-8"))
    run = Run(out, cfg, parts[0].tokenizer, model.eval(), state, parts=parts)
    if cfg.train.samples:
        write_samples(run, cfg.train)
    alone = ", ".join(f"{n} {number(b, 3)}" for n, b in zip(names, scores["parts_val_bpc"]))
    log(
        f"Validación: {number(scores['val_bpc'], 3)} bits/carácter la mezcla ({alone} por separado; ajuste "
        f"{number(fit_time, 1)} s)."
    )
    return run


def weight_table(model, names: list[str]) -> str:
    """parameters.txt of a mix: its table, one row per combination of confidence bands."""
    L, K = model.levels, model.K
    bands = [f"{number(k / L, 2)}–{number((k + 1) / L, 2)}" for k in range(L)]
    lines = [
        f"Pesos de la mezcla: una fila por combinación de confianzas ({L} bandas por modelo, {L**K} filas)",
        "Confianza: la probabilidad más alta que da cada modelo. Peso > 1 afila su opinión, < 1 la suaviza.",
        "",
    ]
    lines += [f"  modelo {i + 1}: {name}" for i, name in enumerate(names)]
    header = "  ".join(
        [f"{'confianza ' + str(i + 1):>13}" for i in range(K)] + [f"{'peso ' + str(i + 1):>8}" for i in range(K)]
    )
    lines += ["", header, "-" * len(header)]
    for row, weights in enumerate(model.weights.detach().tolist()):
        digits = [(row // L**k) % L for k in range(K)]
        lines.append("  ".join([f"{bands[d]:>13}" for d in digits] + [f"{w:>8.3f}" for w in weights]))
    return "\n".join(lines) + "\n"
