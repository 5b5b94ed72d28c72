"""`taller export` of a real run: the page's size, how far the page's probabilities (Chromium, file://, offline) and
onnxruntime's logits are from PyTorch's, and how long the page takes per prediction. One JSON line.

    python bench/export_check.py --max-time 30            trains `base` on refranes for 30 s in a temporary folder
    python bench/export_check.py --preset lstm            the same with another preset
    python bench/export_check.py --run runs/mi-modelo     an existing run
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import taller
from taller.apps.export import export_run
from taller.runs.folder import load_run
from taller.sampling import next_token_probs

PROMPTS = ["No hay ", "", "Más vale pájaro en mano que ciento volando", "A quien madruga, Dios ", "¿Qué "]


def page_figures(run, page: Path) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"], headless=True)
        context = browser.new_context(offline=True)
        tab = context.new_page()
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_function("window.taller !== undefined")
        load_s = time.perf_counter() - started
        worst = 0.0
        for prompt in PROMPTS:
            got = torch.tensor(tab.evaluate("t => taller.predict(t)", prompt))
            want = next_token_probs(run.model, run.tokenizer, prompt, unknown="replace")
            worst = max(worst, float((got - want).abs().max()))
        long = "No hay mal que por bien no venga. Más vale tarde que nunca."[: run.model.block_size or 60]
        ms = tab.evaluate(
            "t => { const s = performance.now(); for (let i = 0; i < 5; i++) taller.predict(t); "
            "return (performance.now() - s) / 5; }",
            long,
        )
        browser.close()
    return {
        "page_max_abs_prob_diff": worst,
        "page_load_s": round(load_s, 2),
        "page_predict_ms": round(ms, 1),
        "predict_chars": len(long),
    }


def onnx_figures(run, path: Path) -> dict:
    import onnxruntime as ort

    session, worst = ort.InferenceSession(str(path)), 0.0
    generator = torch.Generator().manual_seed(0)
    for length in (1, 7, run.model.block_size or 64):
        ids = torch.randint(0, run.tokenizer.vocab_size, (1, length), generator=generator)
        with torch.no_grad():
            want = run.model(ids).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"ids": ids.numpy()})[0] - want).max()))
    return {"onnx_max_abs_logit_diff": worst, "onnx_bytes": path.stat().st_size}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", help="an existing run folder (else --preset is trained on refranes)")
    p.add_argument("--preset", default="base", help="the preset to train (base)")
    p.add_argument("--max-time", type=float, default=30.0, help="seconds of training when no --run is given")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.run:
            run = load_run(args.run)
        else:
            cfg = taller.preset(args.preset, corpus="refranes", max_time=args.max_time)
            cfg.train.plot_every, cfg.train.samples = 0, 0
            run = load_run(taller.train(cfg, tmp / "base", progress=False, log=lambda *a, **k: None).dir)
        export_run(run.dir, "html", tmp / "modelo.html")
        export_run(run.dir, "onnx", tmp / "modelo.onnx")
        figures = {
            "run": str(args.run or f"{args.preset}, refranes, {args.max_time:g} s"),
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "vocab": run.tokenizer.vocab_size,
            "val_bpc": run.state.get("val_bpc"),
            "html_bytes": (tmp / "modelo.html").stat().st_size,
        }
        figures |= page_figures(run, tmp / "modelo.html")
        figures |= onnx_figures(run, tmp / "modelo.onnx")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
