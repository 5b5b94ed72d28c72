"""From text to training examples: the train/val split and random windows of characters.

The model learns to predict each next character: for a window x = text[i : i+T], the targets are
y = text[i+1 : i+T+1] (teacher forcing: every position is a training example at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taller.errors import TallerError


@dataclass
class Split:
    """The training text and the validation text held out from it (see split_text for the kinds)."""

    train: str
    val: str
    kind: str  # "tail", "lines" or "after" (split_text); "prepared" for a folder from `taller prepare` (texts empty)


def split_text(text: str, *, lines: bool, val_fraction: float = 0.1, seed: int = 1234, kind: str = "auto",
               max_chars: int = 0) -> Split:
    """Hold out validation text that training never sees. `kind` is "tail", "lines", "after" or "auto" (lines for a
    corpus of lines, else tail).

    - tail: the last `val_fraction` of the characters (a book: val is its ending).
    - lines: `val_fraction` of the whole lines, chosen at random with a fixed seed, so that no proverb is in both
      halves and, in an alphabetical file, val is not all 'Z'. The newline stays as the end-of-proverb character.
    - after: train on exactly the first `max_chars` characters (a lesson's text) and validate on the
      `val_fraction × max_chars` characters that follow them.
    With `max_chars`, tail and lines first cut the text to its first `max_chars` characters.
    """
    kind = ("lines" if lines else "tail") if kind == "auto" else kind
    if kind == "after":
        n_val = max(2, round(max_chars * val_fraction))
        if len(text) < max_chars + n_val:
            raise TallerError(f"el texto tiene {len(text)} caracteres, menos que max_chars={max_chars} más {n_val} de "
                              "validación; baja data.max_chars o usa --set split=tail.")
        return Split(text[:max_chars], text[max_chars:max_chars + n_val], kind)
    if max_chars:
        text = text[:max_chars]
    if kind == "lines":
        items = [line for line in text.split("\n") if line.strip()]
        if len(items) < 2:
            raise TallerError("el corpus tiene menos de 2 líneas: no se puede separar validación por líneas; usa --set split=tail.")
        n_val = max(1, round(len(items) * val_fraction))
        val_idx = set(np.random.default_rng(seed).choice(len(items), size=n_val, replace=False).tolist())
        train = [s for i, s in enumerate(items) if i not in val_idx]
        val = [s for i, s in enumerate(items) if i in val_idx]
        return Split("\n".join(train) + "\n", "\n".join(val) + "\n", kind)
    cut = int(len(text) * (1 - val_fraction))
    return Split(text[:cut], text[cut:], kind)


class Batches:
    """Random windows of `block_size` characters from a token array, built without a Python loop."""

    def __init__(self, ids: np.ndarray, block_size: int, batch_size: int, device: torch.device, seed: int):
        if len(ids) < block_size + 1:
            raise TallerError(f"el texto de entrenamiento tiene {len(ids)} caracteres, menos que el contexto "
                              f"({block_size}) + 1; usa un texto más largo o --set block_size={max(1, len(ids) // 2)}.")
        self.ids = torch.from_numpy(ids.astype(np.int64))
        self.block_size, self.batch_size, self.device = block_size, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)  # data order: its own generator, saved for --resume
        self.offsets = torch.arange(block_size + 1)  # (T+1,)

    @property
    def steps_per_epoch(self) -> int:  # an epoch: as many window characters as the text has
        return max(1, len(self.ids) // (self.batch_size * self.block_size))

    def seek(self, step: int) -> None:
        """Resuming: nothing to do, the generator's state comes back from the checkpoint."""

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.ids) - self.block_size, (self.batch_size,), generator=self.generator)  # (B,)
        return self.windows(starts)

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows = self.ids[starts[:, None] + self.offsets]  # (B, T+1)
        x, y = windows[:, :-1], windows[:, 1:]  # (B, T) inputs and their next characters
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class ShuffledWindows(Batches):
    """The lesson's DataLoader: every window (one every `stride` characters) once per epoch, in a new random order.

    With stride 1 a text of N characters gives N - T windows, so an epoch shows each character T times. The order of
    epoch e comes from (seed, e) alone, so a resumed run picks up at the same window; the last batch may be smaller.
    """

    def __init__(self, ids: np.ndarray, block_size: int, batch_size: int, device: torch.device, seed: int, stride: int = 1):
        super().__init__(ids, block_size, batch_size, device, seed)
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
        return self.windows(self.starts[self.order[i * self.batch_size:(i + 1) * self.batch_size]])


def make_batches(ids: np.ndarray, cfg, device: torch.device, batch_size: int = 0) -> Batches:
    """`batch_size`: the global batch (torchrun: processes × train.batch_size; 0 = train.batch_size)."""
    t = cfg.train
    batch_size = batch_size or t.batch_size
    if hasattr(ids, "batches"):  # a prepared corpus on disk (prepared.TokenFile) reads its own windows
        return ids.batches(cfg, device, batch_size)
    if t.sampler == "shuffled":
        return ShuffledWindows(ids, cfg.model.block_size, batch_size, device, seed=t.seed + 1, stride=t.stride)
    return Batches(ids, cfg.model.block_size, batch_size, device, seed=t.seed + 1)


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
