"""Sampling: the model gives a probability to every next character; we choose one and repeat.

Choosing: greedy (always the most likely), or at random after reshaping the distribution with
temperature (< 1 bolder, > 1 wilder), top-k (only the k best) and top-p (the fewest whose probabilities add to p).
Every step is recorded with the model's own top-5 probabilities (temperature 1), for `table.txt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class Step:
    position: int  # 1-based position of the generated character in the whole text (prompt included)
    char: str  # the character chosen
    top: list[tuple[str, float]]  # the model's 5 most likely characters with their probabilities


@dataclass
class Sample:
    prompt: str
    generated: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.prompt + self.generated


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """(B, V) logits -> (B, V) logits with the excluded characters at -inf."""
    logits = logits / max(temperature, 1e-6)
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th best score
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - F.softmax(sorted_logits, dim=-1) >= top_p  # keep until the mass before reaches p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def prompt_ids(tokenizer, prompt: str, unknown: str = "error") -> list[int]:
    """The prompt's ids; an empty prompt starts a new line (for proverbs, "the start of a refrán")."""
    return tokenizer.encode(prompt, unknown=unknown) or [tokenizer.index.get("\n", 0)]


@torch.no_grad()
def next_char_probs(model, tokenizer, prompt: str, unknown: str = "error") -> torch.Tensor:
    """(V,) the model's own distribution of the character after `prompt`: the first step of `generate`."""
    model.eval()
    context = torch.tensor([prompt_ids(tokenizer, prompt, unknown)],
                           device=next(model.parameters(), torch.zeros(0)).device)  # (1, T)
    if model.block_size is not None:
        context = context[:, -model.block_size:]
    logits, _ = model.start(context)  # (1, V)
    return F.softmax(logits.float(), dim=-1)[0].cpu()


@torch.no_grad()
def generate(model, tokenizer, prompt: str, n: int = 1, *, max_chars: int = 200, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, greedy: bool = False, seed: int | None = None,
             stop: str | None = "\n", unknown: str = "error", use_cache: bool = True, top: int = 5) -> list[Sample]:
    """Continue `prompt` n times (as one batch), at most `max_chars` characters each, stopping at `stop`."""
    model.eval()
    device = next(model.parameters(), torch.zeros(0)).device  # a count model (n-gram) has no parameters: CPU
    ids = prompt_ids(tokenizer, prompt, unknown)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    samples = [Sample(prompt) for _ in range(n)]
    block = model.block_size  # the longest context the model reads; None: no limit (LSTM, n-gram)
    context = torch.tensor([ids] * n, device=device)  # (n, T)
    crop = (lambda c: c) if block is None else (lambda c: c[:, -block:])
    logits, state = model.start(crop(context)) if use_cache else (model(crop(context))[:, -1], None)
    done = torch.zeros(n, dtype=torch.bool)
    for i in range(max_chars):
        probs = F.softmax(logits.float(), dim=-1).cpu()  # (n, V) the model's own distribution
        if greedy:
            choice = probs.argmax(dim=-1)
        else:
            filtered = F.softmax(filter_logits(logits.float().cpu(), temperature, top_k, top_p), dim=-1)
            choice = torch.multinomial(filtered, 1, generator=generator)[:, 0]  # (n,)
        best = torch.topk(probs, min(top, probs.shape[-1]), dim=-1)
        for b, sample in enumerate(samples):
            if done[b]:
                continue
            char = tokenizer.chars[choice[b]]
            sample.steps.append(Step(len(prompt) + i + 1, char,
                                     [(tokenizer.chars[j], float(p)) for p, j in zip(best.values[b], best.indices[b])]))
            if stop is not None and char == stop:
                done[b] = True
            else:
                sample.generated += char
        if done.all():
            break
        context = torch.cat([context, choice[:, None].to(device)], dim=1)
        if not use_cache:
            logits = model(crop(context))[:, -1]
        elif block is not None and model.state_length(state) >= block:  # the window is full: start again from its last half
            logits, state = model.start(context[:, -max(1, block // 2):])
        else:
            logits, state = model.step(choice[:, None].to(device), state)
    return samples
