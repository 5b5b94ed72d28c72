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

from taller._version import __version__

from taller.training import distributed
from taller.files import atomic_write
from taller.runs.checkpoint import flatten_optimizer, remove_leftovers, save_checkpoint
from taller.config import Config
from taller.data.corpora import prepare_corpus
from taller.evaluate import evaluate, val_text
from taller.data.batches import make_batches, split_text
from taller.errors import TallerError
from taller.models import build_model
from taller.runs.folder import Run, load_weights_into
from taller.runs.metrics import append_metrics, read_metrics, truncate_metrics
from taller.text import thousands
from taller.data.prepared import is_prepared, open_prepared
from taller.data.tokenizers import build_tokenizer, load_tokenizer, tokenizer_from_dict


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
    """Train a model as `cfg` says, writing the run folder `out`; return the trained run.

    Under torchrun every process calls this: it joins the process group, trains its share (see distributed.py)
    and leaves the group at the end, also on an error. Only rank 0 prints and writes.
    """
    cfg.validate()
    ctx = distributed.start(pick_device(cfg.train.device))
    try:
        out = Path(distributed.broadcast_text(ctx, str(out)))  # a name made from the clock: rank 0's, everywhere
        run = _train(cfg, out, ctx, resume=resume, progress=progress and ctx.main,
                     log=log if ctx.main else (lambda *args, **kwargs: None))
        distributed.barrier(ctx)  # everyone waits until rank 0 has written the last file
        return run
    finally:
        distributed.stop(ctx)


def _train(cfg: Config, out: Path, ctx: distributed.Context, *, resume: bool, progress: bool, log) -> Run:
    main = ctx.main  # only rank 0 writes the run folder
    check_run_dir(out, resume)
    distributed.barrier(ctx)  # every rank has checked the folder before rank 0 creates it
    if cfg.model.kind == "skipgram":  # word vectors: their own pairs and loop (taller/embeddings.py)
        if ctx.active:
            raise TallerError("el skip-gram entrena en un solo proceso (segundos en una CPU): lánzalo sin torchrun.")
        from taller.training.skipgram import train_skipgram

        return train_skipgram(cfg, out, resume=resume, progress=progress, log=log)
    if resume and cfg.model.kind == "ngram":
        raise TallerError("un n-grama no se entrena por pasos, se ajusta contando en segundos: "
                          "vuelve a ajustarlo en otra carpeta, sin --resume.")
    if ctx.active and cfg.model.kind == "ngram":
        raise TallerError("un n-grama se ajusta contando, no por pasos: no se reparte entre procesos; "
                          "entrénalo sin torchrun (`taller train --model ngram …`).")
    prepared = is_prepared(cfg.data.corpus)  # a folder from `taller prepare`: tokens read from disk, never loaded whole
    if cfg.model.kind == "ngram" and prepared:
        raise TallerError("un n-grama cuenta el texto entero en memoria: entrénalo con el fichero de texto, "
                          "no con una carpeta preparada.")
    if prepared:
        corpus, split, tokenizer, train_ids, val_ids = open_prepared(cfg.data, out / "tokenizer.json" if resume else None)
        val_ids, val_chars = tokenizer.token_chars(tokenizer.decode(val_ids))  # val is small: its characters, exactly
        chars_per_token = int(val_chars.sum()) / max(1, len(val_ids))
    else:
        corpus = prepare_corpus(cfg.data)
        split = split_text(corpus.text, lines=corpus.lines, val_fraction=cfg.data.val_fraction,
                           seed=cfg.data.split_seed, kind=cfg.data.split, max_chars=cfg.data.max_chars)
        tokenizer = load_tokenizer(out / "tokenizer.json") if resume else build_tokenizer(cfg.data, split)
        if ctx.active and not resume and tokenizer.kind != "char":  # learnt from the text: rank 0's on every rank
            tokenizer = tokenizer_from_dict(json.loads(distributed.broadcast_text(ctx, tokenizer.to_json())), "rank 0")
        train_ids, (val_ids, val_chars) = tokenizer.encode_array(split.train), tokenizer.token_chars(split.val)
        chars_per_token = len(split.train) / max(1, len(train_ids))  # 1 for characters; about 2 for a BPE of 512
    cfg.model.vocab_size = tokenizer.vocab_size
    cfg.validate()
    if cfg.model.kind == "ngram":  # a count model: fitted by counting, no gradient loop
        from taller.training.counting import fit_counts

        create_run_dir(out)
        return fit_counts(cfg, out, corpus, split, tokenizer, train_ids, val_ids, log=log)
    t = cfg.train

    torch.manual_seed(t.seed)  # the same initial weights on every rank
    device = ctx.device
    autocast = autocast_for(device, t.dtype)
    model = build_model(cfg.model).to(device)
    if ctx.active:
        torch.manual_seed(t.seed + ctx.rank)  # dropout: different masks on each rank (rank 0 as a single process)
    optimizer = make_optimizer(model, cfg)
    # Random windows, or every window once per epoch; under torchrun each rank keeps its block of the global batch.
    batches = make_batches(train_ids, cfg, device, batch_size=ctx.world * t.batch_size)
    distributed.share_batches(ctx, batches)
    val = val_text(val_ids, val_chars, cfg.model.block_size)  # windows over val; each target knows its characters
    n_eval = max(1, math.ceil(t.eval_chars / chars_per_token / max(1, cfg.model.block_size // 2)))  # windows per epoch
    steps_per_epoch = batches.steps_per_epoch
    schedule_steps = t.epochs * steps_per_epoch  # the learning-rate schedule's horizon, unless the clock is
    total_steps = min(schedule_steps, t.max_steps or schedule_steps) if t.max_time <= 0 else t.max_steps

    # Everything is checked: only now is the run folder written.
    step, epoch, train_time, best_val = 0, 0, 0.0, float("inf")
    if resume:
        with distributed.main_first(ctx):  # rank 0 may finish an interrupted checkpoint on disk; then all read it
            state = load_weights_into(out, model, optimizer, batches)
            if ctx.active:
                distributed.restore_rng_state(ctx, out, state)
        if main:
            remove_leftovers(out)
            cfg.save(out / "config.toml")  # a longer schedule given on resuming is remembered
        step, epoch, train_time = state["step"], state["epoch"], float(state["train_time"])
        batches.seek(step)
        best_val = float(state.get("best_val_loss", float("inf")))
        if main:
            truncate_metrics(out, step)
        log(f"Continúo {out} desde el paso {step} (época {epoch}).")
    elif main:
        create_run_dir(out)
        cfg.save(out / "config.toml")
        tokenizer.save(out / "tokenizer.json")
    # DDP averages the gradients during backward(); it starts by copying rank 0's weights to every rank.
    trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.active else model
    compiled = torch.compile(trained) if t.compile else trained
    run = Run(out, cfg, tokenizer, model, {})

    from taller.inspect import epoch_plot, loss_plot, parameter_table  # matplotlib is imported only when training
    from taller.inspect.evolution import load_initial, read_evolution, save_initial, snapshot, weight_change, write_evolution

    def commit(finished: bool, extra: dict | None = None) -> None:
        rank_states = distributed.gather_rng_states(ctx)  # every rank takes part; only rank 0 writes
        if not main:
            return
        opt_tensors, opt_meta = flatten_optimizer(optimizer)  # the same on every rank: same gradients, same steps
        opt_tensors["rng.torch"] = torch.get_rng_state()
        opt_tensors["rng.data"] = batches.generator.get_state()  # the data order: shared by all ranks
        opt_tensors.update(rank_states)
        run.state = {"step": step, "epoch": epoch, "train_time": train_time, "best_val_loss": best_val,
                     "finished": finished, "taller": __version__, "corpus": corpus.name, "split": split.kind,
                     "line_corpus": corpus.lines, "parameters": sum(p.numel() for p in model.parameters()),
                     "steps_per_epoch": steps_per_epoch, **(extra or {})}
        save_checkpoint(out, model.state_dict(), opt_tensors, opt_meta, run.state)

    def save_best() -> None:
        if not main:
            return
        atomic_write(out / "best.safetensors", st_save({k: v.contiguous().cpu() for k, v in model.state_dict().items()},
                                                        metadata={"step": str(step)}))

    def log_metrics(entry: dict) -> None:
        if main:
            append_metrics(out, entry)

    # How far the weights travel from the start: the start is kept on disk, so a resumed run measures from it too.
    if not main:
        initial = None  # only rank 0 keeps the evolution of the weights
    elif resume:
        initial = load_initial(out, model)  # None for runs saved before it was kept: no evolution then
        evolution = [e for e in read_evolution(out) if e["epoch"] <= epoch]
    else:
        initial = snapshot(model)
        save_initial(out, initial)
        evolution = [{"epoch": 0, "step": 0, "change": weight_change(model, initial)}]
    if initial is not None:
        write_evolution(out, evolution)

    if main:
        atomic_write(out / "parameters.txt", parameter_table(model).encode("utf-8"))
    if main and not resume and t.plot_every:
        epoch_plot(model, 0, out / "epoch_000.png")
    n_params = sum(p.numel() for p in model.parameters())
    unit = "caracteres" if tokenizer.kind == "char" else f"tokens {tokenizer.kind} ({chars_per_token:.2f} car/token)"
    log(f"Modelo: {cfg.model.kind}, {thousands(n_params)} parámetros · corpus {corpus.name}: {thousands(len(train_ids))} "
        f"{unit} de entrenamiento, {thousands(len(val_ids))} de validación · {device.type}"
        + (f" · {ctx.world} procesos × lotes de {t.batch_size}" if ctx.active else ""))

    chars_per_step = ctx.world * t.batch_size * cfg.model.block_size  # all ranks together
    timed = t.max_time > 0
    bar = tqdm(total=int(t.max_time) if timed else total_steps, initial=min(int(train_time), int(t.max_time)) if timed else step,
               disable=not progress, dynamic_ncols=True, desc="Entrenando", mininterval=1.0,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} " + ("s" if timed else "pasos")
                          + " [{elapsed}<{remaining}{postfix}]")
    window_loss, window_count, window_time = 0.0, 0, 0.0
    val_loss, val_bpc = float("nan"), float("nan")
    interrupted = False
    model.train()
    stop_all = False  # a stop asked on any rank, agreed by all ranks at each step
    with StopFlag() as stop:
        while True:
            done_by_time = t.max_time > 0 and train_time >= t.max_time
            if done_by_time or (total_steps and step >= total_steps):
                break
            if stop_all or (stop.requested and not ctx.active):  # together, ranks stop at the step they agreed on
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
            loss_value = loss.item()  # waits for the step's work
            elapsed = time.perf_counter() - started
            # torchrun: the global batch's loss, one clock and one decision to stop, the same on every rank
            loss_value, elapsed, stop_all = distributed.agree(ctx, loss_value, elapsed, stop.requested)
            if not math.isfinite(loss_value):
                raise TallerError(f"la pérdida se ha vuelto {loss_value} en el paso {step}: el entrenamiento diverge; "
                                  f"baja el learning rate (--set lr={t.lr / 3:.2g}).")
            step += 1
            train_time += elapsed
            window_loss, window_count, window_time = window_loss + loss_value, window_count + 1, window_time + elapsed
            if step % t.log_every == 0:
                log_metrics({"step": step, "epoch": epoch, "train_loss": window_loss / window_count, "lr": lr,
                             "tokens_per_s": chars_per_step * window_count / window_time, "time": train_time})
                shown = f"val {val_loss:.3f} · {val_bpc:.2f} bits/car" if math.isfinite(val_loss) else "val —"
                bar.set_postfix_str(f"pérdida {window_loss / window_count:.3f} · {shown} · "
                                    f"{thousands(chars_per_step * window_count / window_time)} car/s", refresh=False)
                window_loss, window_count, window_time = 0.0, 0, 0.0
            bar.update(min(int(train_time), bar.total) - bar.n if t.max_time > 0 else 1)
            if step % steps_per_epoch == 0:  # the end of an epoch: score, save, draw
                epoch += 1
                score = evaluate(model, val.head(n_eval), device, autocast)
                val_loss, val_bpc = score.loss, score.bpc
                log_metrics({"step": step, "epoch": epoch, "val_loss": val_loss, "val_bpc": val_bpc, "time": train_time})
                improved = val_loss < best_val
                best_val = min(best_val, val_loss)
                commit(finished=False)
                if improved:
                    save_best()
                if initial is not None:
                    evolution.append({"epoch": epoch, "step": step, "change": weight_change(model, initial)})
                    write_evolution(out, evolution)
                if main and t.plot_every and epoch % t.plot_every == 0:
                    epoch_plot(model, epoch, out / f"epoch_{epoch:03d}.png")
    bar.close()

    if interrupted:
        commit(finished=False)
        if main:
            loss_plot(read_metrics(out), out / "loss.png")
        log(f"Interrumpido: guardado en el paso {step} (época {epoch}). Continúa con "
            f"`taller train --out {out} --resume`.")
        run.interrupted = True
        return run

    # The end: the whole validation text, the last picture, the artefacts.
    last = evaluate(model, val.head(n_eval), device, autocast).loss  # the yardstick of every epoch
    if last < best_val:
        best_val = last
        save_best()
    score = evaluate(model, val, device, autocast)  # all of val: nats per token and exact bits per character
    val_loss, val_bpc = score.loss, score.bpc
    final = {"step": step, "epoch": epoch, "val_loss": val_loss, "val_bpc": val_bpc, "time": train_time, "final": True}
    log_metrics(final)
    commit(finished=True, extra={"val_loss": val_loss, "val_bpc": val_bpc, "tokenizer": tokenizer.kind,
                                 "val_chars_per_token": score.chars / max(1, score.tokens),
                                 "chars_per_s": step * chars_per_step * chars_per_token / max(train_time, 1e-9)})
    if not main:
        return run
    if t.plot_every and not (out / f"epoch_{epoch:03d}.png").exists():
        epoch_plot(model, epoch, out / f"epoch_{epoch:03d}.png")
    atomic_write(out / "parameters.txt", parameter_table(model).encode("utf-8"))
    loss_plot(read_metrics(out), out / "loss.png")
    if t.samples:
        run.write_samples(prompt=t.prompt, n=t.samples, seed=t.seed, max_chars=t.sample_chars, temperature=t.temperature)
    from taller.inspect.report import write_report

    write_report(run)
    per = "carácter" if tokenizer.kind == "char" else "token"
    log(f"Validación: {val_loss:.4f} nats/{per} = {val_bpc:.3f} bits/carácter ({step} pasos, {train_time:.0f} s de "
        f"entrenamiento, {thousands(step * chars_per_step * chars_per_token / max(train_time, 1e-9))} car/s).")
    return run
