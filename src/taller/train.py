"""The training loop: show the model windows of text, measure how surprised it is, nudge every weight.

    for each step:  x, y = random windows  →  logits = model(x)  →  loss = cross_entropy(logits, y)
                    →  loss.backward()  →  clip the gradient  →  AdamW step with the scheduled learning rate

An epoch is as many windows as the training text has characters. At every epoch end the model is scored on the
validation text (never trained on), a checkpoint is committed, and the weights are drawn (epoch_NNN.png).
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import atomic_write, flatten_optimizer, remove_leftovers, save_checkpoint
from .config import Config
from .corpora import prepare_corpus
from .data import eval_windows, make_batches, split_text
from .errors import TallerError
from .models import build_model
from .run import Run, load_weights_into, read_metrics
from .text import thousands
from .tokenizers import CharTokenizer

LN2 = math.log(2)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TallerError("--device cuda: no hay ninguna GPU CUDA disponible; usa --device cpu o auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TallerError("--device mps: este equipo no tiene MPS (Apple); usa --device cpu o auto.")
    return torch.device(name)


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast on CUDA by default; on CPU only when asked (at small widths the casts cost more than they save)."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


def learning_rate(cfg, step: int, progress: float) -> float:
    """Linear warm-up, then a cosine from lr down to min_lr as progress goes from 0 to 1 (steps or seconds)."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on biases and norms)."""
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), foreach=True)


@torch.no_grad()
def evaluate(model, windows: torch.Tensor, mask: torch.Tensor, device, autocast, batch_size: int = 64) -> float:
    """Mean loss in nats per scored character over the given windows."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        w, m = windows[i:i + batch_size].to(device), mask[i:i + batch_size].to(device)
        with autocast:
            logits = model(w[:, :-1])
        losses = F.cross_entropy(logits.float().transpose(1, 2), w[:, 1:], reduction="none")  # (B, T)
        total += losses[m].sum().item()
        count += int(m.sum())
    model.train()
    return total / count


class StopFlag:
    """Ctrl-C or SIGTERM ask the loop to stop at the end of the current step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread (e.g. inside some notebook runners)
                pass
        return self

    def handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def check_run_dir(out: Path, resume: bool) -> None:
    """Refuse, before anything is written, to start over an existing run or to resume a missing one."""
    if resume and not (out / "state.json").exists():
        raise TallerError(f"--resume: {out} no tiene ninguna ejecución que continuar (falta state.json).")
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TallerError(f"{out} ya existe y no está vacía; usa --resume para continuar esa ejecución "
                          "o elige otra carpeta con --out. No se ha tocado nada.")


def create_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TallerError(f"no puedo crear {out}: {e.strerror}; elige otra carpeta con --out.") from None


def train(cfg: Config, out: str | Path, *, resume: bool = False, progress: bool = True, log=print) -> Run:
    """Train a model as `cfg` says, writing the run folder `out`; return the trained run."""
    out = Path(out)
    cfg.validate()
    check_run_dir(out, resume)
    if cfg.model.kind == "skipgram":  # word vectors: their own pairs and loop (taller/embeddings.py)
        from .embeddings import train_skipgram

        return train_skipgram(cfg, out, resume=resume, progress=progress, log=log)
    if resume and cfg.model.kind == "ngram":
        raise TallerError("un n-grama no se entrena por pasos, se ajusta contando en segundos: "
                          "vuelve a ajustarlo en otra carpeta, sin --resume.")
    corpus = prepare_corpus(cfg.data)
    split = split_text(corpus.text, lines=corpus.lines, val_fraction=cfg.data.val_fraction,
                       seed=cfg.data.split_seed, kind=cfg.data.split, max_chars=cfg.data.max_chars)
    tokenizer = CharTokenizer.load(out / "tokenizer.json") if resume else CharTokenizer.from_text(split.train + split.val)
    train_ids, val_ids = tokenizer.encode_array(split.train), tokenizer.encode_array(split.val)
    cfg.model.vocab_size = tokenizer.vocab_size
    cfg.validate()
    if cfg.model.kind == "ngram":  # a count model: fitted by counting, no gradient loop
        from .fit import fit_counts

        create_run_dir(out)
        return fit_counts(cfg, out, corpus, split, tokenizer, train_ids, val_ids, log=log)
    t = cfg.train

    torch.manual_seed(t.seed)
    device = pick_device(t.device)
    autocast = autocast_for(device, t.dtype)
    model = build_model(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg)
    batches = make_batches(train_ids, cfg, device)  # random windows, or every window once per epoch
    windows, mask = eval_windows(val_ids, cfg.model.block_size)
    n_eval = max(1, math.ceil(t.eval_chars / max(1, cfg.model.block_size // 2)))  # windows scored at each epoch
    steps_per_epoch = batches.steps_per_epoch
    schedule_steps = t.epochs * steps_per_epoch  # the learning-rate schedule's horizon, unless the clock is
    total_steps = min(schedule_steps, t.max_steps or schedule_steps) if t.max_time <= 0 else t.max_steps

    # Everything is checked: only now is the run folder written.
    step, epoch, train_time, best_val = 0, 0, 0.0, float("inf")
    if resume:
        state = load_weights_into(out, model, optimizer, batches)
        remove_leftovers(out)
        cfg.save(out / "config.toml")  # a longer schedule given on resuming is remembered
        step, epoch, train_time = state["step"], state["epoch"], float(state["train_time"])
        batches.seek(step)
        best_val = float(state.get("best_val_loss", float("inf")))
        metrics = [m for m in read_metrics(out) if m["step"] <= step]
        atomic_write(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics).encode())
        log(f"Continúo {out} desde el paso {step} (época {epoch}).")
    else:
        create_run_dir(out)
        cfg.save(out / "config.toml")
        tokenizer.save(out / "tokenizer.json")
    compiled = torch.compile(model) if t.compile else model
    run = Run(out, cfg, tokenizer, model, {})

    from .explain import epoch_plot, loss_plot, parameter_table  # matplotlib is imported only when training
    from .explain.evolution import load_initial, read_evolution, save_initial, snapshot, weight_change, write_evolution

    def commit(finished: bool, extra: dict | None = None) -> None:
        opt_tensors, opt_meta = flatten_optimizer(optimizer)
        opt_tensors["rng.torch"] = torch.get_rng_state()
        opt_tensors["rng.data"] = batches.generator.get_state()
        run.state = {"step": step, "epoch": epoch, "train_time": train_time, "best_val_loss": best_val,
                     "finished": finished, "taller": __version__, "corpus": corpus.name, "split": split.kind,
                     "line_corpus": corpus.lines, "parameters": sum(p.numel() for p in model.parameters()),
                     "steps_per_epoch": steps_per_epoch, **(extra or {})}
        save_checkpoint(out, model.state_dict(), opt_tensors, opt_meta, run.state)

    def save_best() -> None:
        atomic_write(out / "best.safetensors", st_save({k: v.contiguous().cpu() for k, v in model.state_dict().items()},
                                                        metadata={"step": str(step)}))

    def log_metrics(entry: dict) -> None:
        try:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as e:
            raise TallerError(f"no pude escribir {out / 'metrics.jsonl'}: {e.strerror}; comprueba el espacio libre y "
                              "los permisos. El último punto de control sigue intacto.") from None

    # How far the weights travel from the start: the start is kept on disk, so a resumed run measures from it too.
    if resume:
        initial = load_initial(out, model)  # None for runs saved before it was kept: no evolution then
        evolution = [e for e in read_evolution(out) if e["epoch"] <= epoch]
    else:
        initial = snapshot(model)
        save_initial(out, initial)
        evolution = [{"epoch": 0, "step": 0, "change": weight_change(model, initial)}]
    if initial is not None:
        write_evolution(out, evolution)

    atomic_write(out / "parameters.txt", parameter_table(model).encode("utf-8"))
    if not resume and t.plot_every:
        epoch_plot(model, 0, out / "epoch_000.png")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"Modelo: {cfg.model.kind}, {thousands(n_params)} parámetros · corpus {corpus.name}: {thousands(len(train_ids))} "
        f"caracteres de entrenamiento, {thousands(len(val_ids))} de validación · {device.type}")

    chars_per_step = t.batch_size * cfg.model.block_size
    timed = t.max_time > 0
    bar = tqdm(total=int(t.max_time) if timed else total_steps, initial=min(int(train_time), int(t.max_time)) if timed else step,
               disable=not progress, dynamic_ncols=True, desc="Entrenando", mininterval=1.0,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} " + ("s" if timed else "pasos")
                          + " [{elapsed}<{remaining}{postfix}]")
    window_loss, window_count, window_time = 0.0, 0, 0.0
    val_loss = float("nan")
    interrupted = False
    model.train()
    with StopFlag() as stop:
        while True:
            done_by_time = t.max_time > 0 and train_time >= t.max_time
            if done_by_time or (total_steps and step >= total_steps):
                break
            if stop.requested:
                interrupted = True
                break
            started = time.perf_counter()
            progress_fraction = train_time / t.max_time if t.max_time > 0 else step / schedule_steps
            lr = learning_rate(cfg, step, progress_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = batches.next()  # (B, T), (B, T)
            with autocast:
                logits = compiled(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TallerError(f"la pérdida se ha vuelto {loss_value} en el paso {step}: el entrenamiento diverge; "
                                  f"baja el learning rate (--set lr={t.lr / 3:.2g}).")
            elapsed = time.perf_counter() - started
            step += 1
            train_time += elapsed
            window_loss, window_count, window_time = window_loss + loss_value, window_count + 1, window_time + elapsed
            if step % t.log_every == 0:
                log_metrics({"step": step, "epoch": epoch, "train_loss": window_loss / window_count, "lr": lr,
                             "tokens_per_s": chars_per_step * window_count / window_time, "time": train_time})
                val_text = f"val {val_loss:.3f} · {val_loss / LN2:.2f} bits/car" if math.isfinite(val_loss) else "val —"
                bar.set_postfix_str(f"pérdida {window_loss / window_count:.3f} · {val_text} · "
                                    f"{thousands(chars_per_step * window_count / window_time)} car/s", refresh=False)
                window_loss, window_count, window_time = 0.0, 0, 0.0
            bar.update(min(int(train_time), bar.total) - bar.n if t.max_time > 0 else 1)
            if step % steps_per_epoch == 0:  # the end of an epoch: score, save, draw
                epoch += 1
                val_loss = evaluate(model, windows[:n_eval], mask[:n_eval], device, autocast)
                log_metrics({"step": step, "epoch": epoch, "val_loss": val_loss, "val_bpc": val_loss / LN2,
                             "time": train_time})
                improved = val_loss < best_val
                best_val = min(best_val, val_loss)
                commit(finished=False)
                if improved:
                    save_best()
                if initial is not None:
                    evolution.append({"epoch": epoch, "step": step, "change": weight_change(model, initial)})
                    write_evolution(out, evolution)
                if t.plot_every and epoch % t.plot_every == 0:
                    epoch_plot(model, epoch, out / f"epoch_{epoch:03d}.png")
    bar.close()

    metrics = read_metrics(out)
    if interrupted:
        commit(finished=False)
        loss_plot(metrics, out / "loss.png")
        log(f"Interrumpido: guardado en el paso {step} (época {epoch}). Continúa con "
            f"`taller train --out {out} --resume`.")
        run.interrupted = True
        return run

    # The end: the whole validation text, the last picture, the artefacts.
    last = evaluate(model, windows[:n_eval], mask[:n_eval], device, autocast)  # the yardstick of every epoch
    if last < best_val:
        best_val = last
        save_best()
    val_loss = evaluate(model, windows, mask, device, autocast)
    final = {"step": step, "epoch": epoch, "val_loss": val_loss, "val_bpc": val_loss / LN2, "time": train_time, "final": True}
    log_metrics(final)
    commit(finished=True, extra={"val_loss": val_loss, "val_bpc": val_loss / LN2,
                                 "chars_per_s": step * chars_per_step / max(train_time, 1e-9)})
    if t.plot_every and not (out / f"epoch_{epoch:03d}.png").exists():
        epoch_plot(model, epoch, out / f"epoch_{epoch:03d}.png")
    atomic_write(out / "parameters.txt", parameter_table(model).encode("utf-8"))
    loss_plot(read_metrics(out), out / "loss.png")
    if t.samples:
        run.write_samples(prompt=t.prompt, n=t.samples, seed=t.seed, max_chars=t.sample_chars, temperature=t.temperature)
    from .report import write_report

    write_report(run)
    log(f"Validación: {val_loss:.4f} nats/carácter = {val_loss / LN2:.3f} bits/carácter "
        f"({step} pasos, {train_time:.0f} s de entrenamiento, {thousands(step * chars_per_step / max(train_time, 1e-9))} car/s).")
    return run
