"""Training on several processes (CPU cores, GPUs or machines) with PyTorch's own DistributedDataParallel.

    torchrun --nproc_per_node 2 -m taller train …      (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR…)

Every process (a "rank") holds a full copy of the model. At each step:

    all ranks draw the SAME global batch of world × batch_size windows from one seeded generator
    rank r trains on its own block of batch_size rows of it            (B, T) per rank
    loss.backward()  →  DDP averages the gradients of all ranks        (identical gradients everywhere)
    optimizer.step() →  identical weights everywhere, no broadcast needed

Each rank therefore sees a different part of the data, and the whole run still follows one reproducible data order:
a 2-process run with batch_size B takes the same steps as a 1-process run with batch_size 2B (up to the rounding of
the gradient average), and a resumed run continues the same order whatever the rank. Giving each rank its own seed,
as many scripts do, also gives each rank different data, but then no 1-process run can be compared with it.

Only rank 0 writes (the run folder, metrics, plots, checkpoints, report); every rank reads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from taller.errors import TallerError


@dataclass
class Context:
    rank: int = 0  # this process among all of them (0 … world-1)
    world: int = 1  # how many processes train together
    local_rank: int = 0  # this process among those of its machine: which GPU it drives
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:  # rank 0: the one that writes
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> Context:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); one process alone needs none."""
    if not launched_by_torchrun():
        return Context(device=device)
    try:
        rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except (KeyError, ValueError):
        raise TallerError(
            "WORLD_SIZE está definida pero faltan RANK o LOCAL_RANK; lanza el entrenamiento con "
            "`torchrun --nproc_per_node N -m taller train …`."
        ) from None
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise TallerError(
                f"el proceso local {local_rank} no tiene GPU: este equipo tiene {torch.cuda.device_count()}; "
                "usa --nproc_per_node como mucho igual al número de GPU."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise TallerError(f"torchrun con --device {device.type} no está soportado; usa --device cpu o cuda.")
    return Context(rank, world, local_rank, device)


def stop(ctx: Context) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True in a single process and in rank 0 of a distributed run (also before joining or after leaving it)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


@contextmanager
def main_first(ctx: Context):
    """Rank 0 does the block first (e.g. finishes an interrupted checkpoint on disk), then the others read."""
    if not ctx.main:
        barrier(ctx)
    yield
    if ctx.main:
        barrier(ctx)


def agree(ctx: Context, loss: float, seconds: float, stop: bool) -> tuple[float, float, bool]:
    """After each step, in one all-reduce: the mean loss over the ranks (the global batch's loss), the mean step time,
    and whether any rank was asked to stop. Every rank then keeps the same clock, so --max-time and the learning
    rate that follows it stop all ranks at the same step, and a Ctrl-C seen by one rank stops all of them together
    (a rank that stopped alone would leave the others waiting for it forever)."""
    if not ctx.active:
        return loss, seconds, stop
    values = torch.tensor([loss, seconds, float(stop)], dtype=torch.float64, device=ctx.device)  # (3,)
    dist.all_reduce(values)  # sum over ranks
    total_loss, total_seconds, stops = values.tolist()
    return total_loss / ctx.world, total_seconds / ctx.world, stops > 0


def broadcast_text(ctx: Context, text: str) -> str:
    """Rank 0's `text` on every rank (a run folder name made from the clock, a tokenizer learnt from the text)."""
    if not ctx.active:
        return text
    encoded = text.encode("utf-8")
    size = torch.tensor([len(encoded)], dtype=torch.int64, device=ctx.device)
    dist.broadcast(size, src=0)  # first how many bytes, then the bytes
    data = torch.zeros(int(size), dtype=torch.uint8, device=ctx.device)
    if ctx.main and encoded:  # (frombuffer refuses an empty buffer: "" is sent as its size alone)
        data.copy_(torch.frombuffer(bytearray(encoded), dtype=torch.uint8))
    dist.broadcast(data, src=0)
    return bytes(data.cpu().numpy()).decode("utf-8")


def own_rows(ctx: Context, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of the global batch (world × B, …) -> this rank's block, cut as Batches.own cuts the windows. An objective
    that draws its own randomness per batch (BERT's blanks, T5's spans) draws it for the whole global batch on every
    rank, then keeps its block: the same draws as one process with the doubled batch."""
    if not ctx.active:
        return tensors
    return tuple(t.tensor_split(ctx.world)[ctx.rank] for t in tensors)


def share_of_mean(ctx: Context, total: torch.Tensor, count_here: int, count_all: int) -> torch.Tensor:
    """A loss summed over this rank's `count_here` items, scaled so that DDP's average of the ranks' gradients (and
    agree's average of their losses) is the mean over all `count_all` items of the global batch, as one process
    computes it, however unevenly the items fall between the ranks (BERT's blanks: a different number per row)."""
    if not ctx.active:
        return total / max(1, count_here)
    return total * ctx.world / max(1, count_all)


def gather_rng_states(ctx: Context) -> dict[str, torch.Tensor]:
    """Every rank's CPU random state (dropout differs per rank), for rank 0's checkpoint: rng.torch.rank{r}."""
    if not ctx.active:
        return {}
    mine = torch.get_rng_state().to(ctx.device)  # (S,) uint8, the same size on every rank
    states = [torch.empty_like(mine) for _ in range(ctx.world)]
    dist.all_gather(states, mine)
    return {f"rng.torch.rank{r}": s.cpu() for r, s in enumerate(states)}


def restore_rng_state(ctx: Context, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Resuming: this rank's own random state from rank 0's checkpoint (`tensors`: its optim.safetensors), when it
    was saved with as many ranks."""
    mine = tensors.get(f"rng.torch.rank{ctx.rank}")
    if mine is not None and f"rng.torch.rank{ctx.world}" not in tensors:
        torch.set_rng_state(mine)
    else:  # saved by another number of processes: a fresh, still reproducible, stream per rank
        torch.manual_seed(int(state["step"]) * 1000 + ctx.rank)
