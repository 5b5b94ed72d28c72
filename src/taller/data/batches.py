"""From text to training examples: random windows of tokens, and the windows that score the validation text.

The model learns to predict each next character: for a window x = text[i : i+T], the targets are
y = text[i+1 : i+T+1] (teacher forcing: every position is a training example at once).
"""

from __future__ import annotations

import numpy as np
import torch

from taller.errors import TallerError


class Batches:
    """Random windows of `block_size` characters from a token array, built without a Python loop.

    Under torchrun, `batch_size` is the global batch (processes × train.batch_size) and `share` = (rank, world): every
    rank draws the same starts and reads only its own block of them (a memory-mapped corpus reads only its windows).
    """

    share: tuple[int, int] = (0, 1)  # (this rank, how many): a single process reads the whole batch

    def __init__(
        self,
        ids: np.ndarray,
        block_size: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        share: tuple[int, int] = (0, 1),
    ):
        if len(ids) < block_size + 1:
            raise TallerError(
                f"el texto de entrenamiento tiene {len(ids)} caracteres, menos que el contexto "
                f"({block_size}) + 1; usa un texto más largo o --set block_size={max(1, len(ids) // 2)}."
            )
        self.ids = torch.from_numpy(ids.astype(np.int64))
        self.block_size, self.batch_size, self.device = block_size, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)  # data order: its own generator, saved for --resume
        self.offsets = torch.arange(block_size + 1)  # (T+1,)
        self.share = share

    @property
    def steps_per_epoch(self) -> int:  # an epoch: as many window characters as the text has
        return max(1, len(self.ids) // (self.batch_size * self.block_size))

    def seek(self, step: int) -> None:
        """Resuming: nothing to do, the generator's state comes back from the checkpoint."""

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.ids) - self.block_size, (self.batch_size,), generator=self.generator)  # (B,)
        return self.windows(self.own(starts))

    def own(self, starts: torch.Tensor) -> torch.Tensor:
        """starts (world × B,) of the global batch -> this rank's block (B,). The last, smaller batch of an epoch
        (sampler=shuffled) is cut in near-equal blocks."""
        rank, world = self.share
        if world == 1:
            return starts
        if len(starts) < world:  # fewer rows than ranks: repeat some, so that no rank gets an empty batch
            starts = starts[torch.arange(world) % len(starts)]
        return starts.tensor_split(world)[rank]

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows = self.ids[starts[:, None] + self.offsets]  # (B, T+1)
        x, y = windows[:, :-1], windows[:, 1:]  # (B, T) inputs and their next characters
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class ShuffledWindows(Batches):
    """The lesson's DataLoader: every window (one every `stride` characters) once per epoch, in a new random order.

    With stride 1 a text of N characters gives N - T windows, so an epoch shows each character T times. The order of
    epoch e comes from (seed, e) alone, so a resumed run picks up at the same window; the last batch may be smaller.
    """

    def __init__(
        self,
        ids: np.ndarray,
        block_size: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        stride: int = 1,
        share: tuple[int, int] = (0, 1),
    ):
        super().__init__(ids, block_size, batch_size, device, seed, share)
        self.seed, self.step, self.order = seed, 0, None
        self.starts = torch.arange(0, len(self.ids) - block_size, stride)  # (W,) where each window begins

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.starts) // self.batch_size)  # ceil: the last, smaller batch counts

    def seek(self, step: int) -> None:
        self.step, self.order = step, None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(self.step, self.steps_per_epoch)
        if i == 0 or self.order is None:
            self.generator.manual_seed(self.seed + epoch)
            self.order = torch.randperm(len(self.starts), generator=self.generator)  # (W,)
        self.step += 1
        return self.windows(self.own(self.starts[self.order[i * self.batch_size : (i + 1) * self.batch_size]]))


def make_batches(
    ids: np.ndarray, cfg, device: torch.device, batch_size: int = 0, share: tuple[int, int] = (0, 1)
) -> Batches:
    """`batch_size`: the global batch (torchrun: processes × train.batch_size; 0 = train.batch_size); `share`:
    (rank, world), the block of it this process reads. A prepared corpus on disk (prepared.TokenFile, not an array)
    reads its own windows."""
    t = cfg.train
    batch_size = batch_size or t.batch_size
    if not isinstance(ids, np.ndarray):
        return ids.batches(cfg, device, batch_size, share)
    if t.sampler == "shuffled":
        return ShuffledWindows(
            ids, cfg.model.block_size, batch_size, device, seed=t.seed + 1, stride=t.stride, share=share
        )
    return Batches(ids, cfg.model.block_size, batch_size, device, seed=t.seed + 1, share=share)


def eval_windows(ids: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows that score every character of `ids` exactly once (except the first, which has no context).

    Windows advance by half a context; each one scores only its second half, so every scored character sees at least
    block_size/2 characters of context — a fairer measure than cutting the text into disjoint blocks.
    Returns (windows (N, T+1), mask (N, T)) where mask marks the targets to score.
    """
    ids_t = torch.from_numpy(ids.astype(np.int64))
    n, T = len(ids_t), block_size
    if n < 2:
        raise TallerError("el texto de validación es demasiado corto (menos de 2 caracteres).")
    if n <= T + 1:
        return ids_t[None, :], torch.ones(1, n - 1, dtype=torch.bool)
    stride = max(1, T // 2)
    starts = list(range(0, n - T - 1, stride)) + [n - T - 1]
    windows = ids_t[torch.tensor(starts)[:, None] + torch.arange(T + 1)]  # (N, T+1)
    mask = torch.zeros(len(starts), T, dtype=torch.bool)
    mask[0] = True
    scored_until = T + 1  # characters [1, scored_until) are already scored
    for i, s in enumerate(starts[1:], start=1):
        first = max(scored_until, s + 1) - (s + 1)  # first target position in this window not yet scored
        mask[i, first:] = True
        scored_until = s + T + 1
    return windows, mask
