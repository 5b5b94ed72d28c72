"""Sampling: the model gives a probability to every next token (a character, a word or a BPE piece); we choose one
and repeat.

Choosing: greedy (always the most likely), or at random after reshaping the distribution with
temperature (< 1 bolder, > 1 wilder), top-k (only the k best) and top-p (the fewest whose probabilities add to p).
Every step is recorded with the model's own top-5 probabilities (temperature 1) and, beside them, the probabilities
those same tokens had in the distribution actually sampled from (after temperature, top-k, top-p; greedy: 1 for the
best), for `--show-probs` and `table.txt`; the loop itself only handles tensors, and the records are turned into text
once, at the end.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from taller.threads import for_steps

TOP = 5  # candidates each Step records by default: the rows of table.txt per position
MIN_TEMPERATURE = 1e-6  # logits are divided by the temperature: never by 0 (greedy=True is the real "temperature 0")


@dataclass
class Step:
    position: int  # 1-based position of the generated token in the whole text, prompt included
    token: str  # the chosen token's text: a character, a word or a BPE piece
    top: list[
        tuple[str, float]
    ]  # the model's `top` (5) most likely tokens' texts with their probabilities; [] if top=0
    sampled: list[float] = field(default_factory=list)  # the same tokens' probabilities in the distribution drawn from


@dataclass
class Sample:
    prompt: str
    generated: str = ""
    steps: list[Step] = field(default_factory=list)
    unit: str = "Carácter"  # what each step chooses: a character, or a token (word or BPE)

    @property
    def text(self) -> str:
        return self.prompt + self.generated


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """(B, V) logits -> (B, V) logits with the excluded tokens at -inf."""
    logits = logits / max(temperature, MIN_TEMPERATURE)
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th best score
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - F.softmax(sorted_logits, dim=-1) >= top_p  # keep until the mass before reaches p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def is_plain(temperature: float, top_k: int, top_p: float) -> bool:
    """True when sampling draws from the model's own distribution, unchanged."""
    return temperature == 1.0 and not top_k and top_p >= 1.0


def sampling_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, greedy: bool = False
) -> torch.Tensor:
    """(B, V) logits -> (B, V) the probabilities the next token is actually drawn with. Greedy is temperature 0: all
    of it on the best token."""
    if greedy:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    shaped = logits if is_plain(temperature, top_k, top_p) else filter_logits(logits, temperature, top_k, top_p)
    return F.softmax(shaped, dim=-1)


def prompt_ids(tokenizer, prompt: str, unknown: str = "error") -> list[int]:
    """The prompt's ids; an empty prompt starts a new line (for proverbs, "the start of a refrán")."""
    return tokenizer.encode(prompt, unknown=unknown) or tokenizer.start_ids()


@torch.no_grad()
def next_token_logits(model, tokenizer, prompt: str, unknown: str = "error") -> torch.Tensor:
    """(V,) the model's scores (logits) for the token after `prompt`: the first step of `generate`."""
    model.eval()
    context = torch.tensor(
        [prompt_ids(tokenizer, prompt, unknown)], device=next(model.parameters(), torch.zeros(0)).device
    )  # (1, T)
    if model.block_size is not None:
        context = context[:, -model.block_size :]
    logits, _ = model.start(context)  # (1, V)
    return logits[0].float().cpu()


def next_token_probs(model, tokenizer, prompt: str, unknown: str = "error") -> torch.Tensor:
    """(V,) the model's own distribution of the token after `prompt` (temperature 1)."""
    return F.softmax(next_token_logits(model, tokenizer, prompt, unknown), dim=-1)


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of (B, V) probabilities, as torch.multinomial draws it but with less work: every
    token waits an exponential time divided by its probability, and the first to arrive wins."""
    wait = torch.empty_like(probs).exponential_(generator=generator)  # (B, V)
    return (probs / wait).argmax(dim=-1)  # (B,)


class StopWatch:
    """Which rows have written `stop` so far: at once for the tokens that hold it (one tensor test a step), and, for a
    stop of several characters, through each row's last characters too (it may be split between tokens)."""

    def __init__(self, tokenizer, stop: str | None, n: int):
        self.stop, self.pieces = stop or "", tokenizer.pieces
        self.ids = torch.tensor(
            [i for i, p in enumerate(self.pieces) if self.stop and self.stop in p], dtype=torch.long
        )
        self.tails = [""] * n if len(self.stop) > 1 else None  # per row: its last len(stop) - 1 characters
        self.done = torch.zeros(n, dtype=torch.bool)

    def all_done(self, choice: torch.Tensor) -> bool:
        """Note the tokens just chosen, (n,) ids; True once every row has written the stop."""
        if not self.stop:
            return False
        self.done |= torch.isin(choice, self.ids)
        if self.tails is not None:
            for b, j in enumerate(choice.tolist()):
                text = self.tails[b] + self.pieces[j]
                if self.stop in text:
                    self.done[b] = True
                self.tails[b] = text[-(len(self.stop) - 1) :]
        return bool(self.done.all())


class Reader:
    """A left-to-right model reading rows of text side by side, one token per row at each step; `logits` (rows, V)
    is what it expects next. Generation reads so, and so do both sides of `taller compress`.

    With its cache (the Transformer's keys and values, an RNN's state) only the new token is read. A model that
    sees at most block_size tokens reads again from the last half of its window when the cache holds a whole one.
    Without the cache (`cached=False`, the slow path to check the fast one) it reads its whole window every step."""

    def __init__(self, model, context: torch.Tensor, cached: bool = True):  # context: (rows, T) token ids
        self.model, self.block, self.cached = model, model.block_size, cached
        self.recent = self.window(context)  # (rows, ≤ block): what the model sees
        self.logits, self.state = model.start(self.recent) if cached else (model(self.recent)[:, -1], None)

    def window(self, text: torch.Tensor) -> torch.Tensor:
        return text if self.block is None else text[:, -self.block :]

    def feed(self, tokens: torch.Tensor) -> None:
        """One more token per row: (rows,)."""
        new = tokens[:, None]  # (rows, 1)
        if self.block is not None or not self.cached:
            self.recent = self.window(torch.cat([self.recent, new], dim=1))
        if not self.cached:  # read the whole window again
            self.logits = self.model(self.recent)[:, -1]
        elif self.block is not None and self.model.state_length(self.state) >= self.block:  # full: its last half again
            self.logits, self.state = self.model.start(self.recent[:, -max(1, self.block // 2) :])
        else:  # only the new token is read; the cache holds the rest
            self.logits, self.state = self.model.step(new, self.state)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompt: str,
    n: int = 1,
    *,
    max_chars: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    seed: int | None = None,
    stop: str | None = "\n",
    unknown: str = "error",
    use_cache: bool = True,
    top: int = TOP,
) -> list[Sample]:
    """Continue `prompt` n times (as one batch), at most `max_chars` characters each, stopping after the first
    `stop` (any text; None or "": only max_chars stops it).

    `top` is how many of the model's best candidates each Step records (0: no records, the fastest).
    The loop only works with tensors; characters and records are made once, at the end.
    """
    model.eval()
    device = next(model.parameters(), torch.zeros(0)).device  # a count model (n-gram) has no parameters: CPU
    ids = prompt_ids(tokenizer, prompt, unknown)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    watch = StopWatch(tokenizer, stop, n)
    with for_steps(model, n, device):  # a batch-1 step of a small model: faster on one thread
        reader = Reader(model, torch.tensor([ids] * n, device=device), cached=use_cache)  # the prompt: (n, T)
        chosen, records = [], []  # per step: (n,) ids; (n, top) probabilities (the model's, the sampled) and ids
        for _ in range(max_chars):
            logits = reader.logits.float().cpu()  # (n, V)
            probs = sampling_probs(logits, temperature, top_k, top_p, greedy) if top or not greedy else None  # (n, V)
            choice = logits.argmax(dim=-1) if greedy else draw(probs, generator)  # (n,)
            if top:
                records.append(step_record(logits, probs, top, temperature, top_k, top_p, greedy))
            chosen.append(choice)
            if watch.all_done(choice):
                break
            reader.feed(choice.to(device))
    return to_samples(tokenizer, prompt, n, chosen, records, stop, max_chars)


def step_record(logits, probs, top: int, temperature: float, top_k: int, top_p: float, greedy: bool):
    """(n, top) each: the model's best probabilities (temperature 1), their ids, and what the sampling gave them."""
    best = torch.topk(F.softmax(logits, dim=-1), min(top, logits.shape[-1]), dim=-1)
    plain = not greedy and is_plain(temperature, top_k, top_p)  # the same numbers: nothing more to compute
    return best.values, best.indices, best.values if plain else probs.gather(-1, best.indices)


def cut_at_stop(tokenizer, row: list[int], stop: str | None) -> tuple[list[int], str]:
    """The tokens up to the one that completes `stop` (it is recorded, not written) and the text before the stop."""
    text = tokenizer.decode(row)
    at = text.find(stop) if stop else -1
    if at < 0:
        return row, text
    # the fewest tokens whose text reaches the stop's end: a prefix (decoded text grows with it), by binary search
    k = bisect.bisect_left(range(1, len(row) + 1), at + len(stop), key=lambda i: len(tokenizer.decode(row[:i])))
    return row[: k + 1], text[:at]


def to_samples(
    tokenizer, prompt: str, n: int, chosen: list, records: list, stop: str | None, max_chars: int
) -> list[Sample]:
    """The loop's tensors as text: each row up to its stop (the stop itself is recorded but not written).

    With words or BPE the text is decoded and cut at the stop and at max_chars."""
    samples = [Sample(prompt) for _ in range(n)]
    pieces = tokenizer.pieces
    if not chosen:
        return samples
    ids = torch.stack(chosen, dim=1).tolist()  # (n, steps)
    if records:
        probs, best, sampled = (
            torch.stack([r[k] for r in records], dim=1).tolist() for k in range(3)
        )  # (n, steps, top)
    for b, sample in enumerate(samples):
        row, sample.generated = cut_at_stop(tokenizer, ids[b], stop)
        if len(sample.generated) > max_chars:  # words or BPE wrote past max_chars: cut, and keep the steps shown
            sample.generated = sample.generated[:max_chars]
            # the tokens that start before max_chars: a prefix (decoded text grows with it), found by binary search
            row = row[: bisect.bisect_left(range(len(row)), max_chars, key=lambda i: len(tokenizer.decode(row[:i])))]
        sample.unit = "Carácter" if tokenizer.kind == "char" else "Token"
        start = len(prompt) if tokenizer.kind == "char" else len(tokenizer.encode(prompt, unknown="replace"))
        for i, j in enumerate(row):
            top = [(pieces[c], p) for p, c in zip(probs[b][i], best[b][i])] if records else []
            sample.steps.append(Step(start + i + 1, pieces[j], top, sampled[b][i] if records else []))
    return samples
