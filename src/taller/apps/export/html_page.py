"""`taller export --format html`: one file that holds a model and runs it in any browser, from disk, with no
network and no server — for the student with a Chromebook, a tablet or a phone.

    the run's weights ──► float16, base64 ──► JSON in the page ◄── model.js: the same layers again, in JavaScript
                                                                ◄── page.js: write, see the probabilities, sample

The page is static/page.html with its CSS and JavaScript written in (static/*.css, *.js) and the model's data at the
end: its [model] section, its characters and its weights by their PyTorch names. Only character models: the page
writes character by character.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from importlib import resources

import numpy as np
import torch

from taller._version import __version__
from taller.errors import TallerError

HALF_MAX = 65504.0  # the largest float16: a tensor with a larger number keeps float32
STATIC = resources.files("taller.apps.export").joinpath("static")
EXPLORER_STATIC = resources.files("taller.apps.web").joinpath("static")  # heads.js: drawn the same in both


def check_tokenizer(run) -> None:
    """The page writes characters: a word or BPE run is refused in one line (ONNX takes any tokenizer)."""
    if run.tokenizer.kind != "char":
        raise TallerError(
            f"{run.dir} usa el tokenizador {run.tokenizer.kind}, y la página HTML escribe carácter a "
            "carácter (sólo --tokenizer char); exporta a ONNX con --format onnx, que admite cualquiera."
        )


def tensor_record(t: torch.Tensor) -> dict:
    """One tensor as the page stores it: float16 where it fits (float32 where not), integers as int32."""
    a = t.detach().cpu().numpy()
    if a.dtype.kind in "iub":
        if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
            raise TallerError(
                "una tabla de cuentas de la ejecución no cabe en enteros de 32 bits; no se puede exportar."
            )
        dtype = "int32"
    else:
        dtype = "float16" if a.size == 0 or float(np.abs(a).max()) <= HALF_MAX else "float32"
    data = a.astype({"int32": "<i4", "float16": "<f2", "float32": "<f4"}[dtype]).tobytes()
    return {"dtype": dtype, "shape": list(a.shape), "data": base64.b64encode(data).decode("ascii")}


def page_tensors(model: torch.nn.Module) -> dict[str, dict]:
    """Every tensor of the model's state, by name; one that is another (tied weights) is stored once, as an alias."""
    records, seen = {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), tuple(t.shape), t.dtype)
        records[name] = {"alias": seen[key]} if key in seen else tensor_record(t)
        seen.setdefault(key, name)
    return records


def page_data(run, title: str) -> dict:
    """What the page's JavaScript reads: the model's [model] section, vocabulary and weights, and what to say of it."""
    state = run.state
    info = {
        "name": run.dir.name,
        "title": title,
        "corpus": state.get("corpus"),
        "val_bpc": state.get("val_bpc"),
        "parameters": state.get("parameters", sum(p.numel() for p in run.model.parameters())),
        "prompt": run.config.train.prompt,
        "taller": __version__,
    }
    return {
        "config": dataclasses.asdict(run.config.model),
        "chars": run.tokenizer.chars,
        "info": info,
        "tensors": page_tensors(run.model),
    }


def static(name: str) -> str:
    return STATIC.joinpath(name).read_text(encoding="utf-8")


def render_page(run, title: str) -> str:
    """The whole page: the template with its style, its programs and the model's data written in."""
    data = json.dumps(page_data(run, title), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c")  # nothing in the data can close its <script> element
    page = static("page.html").replace(
        "<title>taller · modelo</title>", f"<title>taller · {html.escape(run.dir.name)}</title>"
    )
    for marker, text in (
        ("/*STYLE*/", static("page.css")),
        ("/*MODEL_JS*/", static("model.js")),
        ("/*HEADS_JS*/", EXPLORER_STATIC.joinpath("heads.js").read_text(encoding="utf-8")),
        ("/*PAGE_JS*/", static("page.js")),
        ("/*DATA*/", data),
    ):
        page = page.replace(marker, text, 1)  # (the data last: nothing is searched for inside it)
    return page
