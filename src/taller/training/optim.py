"""How weights are nudged: the optimizer and the learning rate at each step.

Two optimizers:
    adamw   every parameter moves by its gradient's running mean over its running size (Adam), and shrinks a little
            (weight decay, on matrices only)
    muon    the hidden matrices (attention's and the feed-forward's) move by their momentum *orthogonalised*: the
            same directions with every singular value set to about 1, so no direction dominates the step. Embeddings,
            the output head, norms and biases keep AdamW. (Keller Jordan's Muon, as in the NanoGPT speedrun.)
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn as nn
from torch.optim.adamw import adamw

from taller.models import kind_of
from taller.models.protocols import HasScoreHead, SlowerParts

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Muon's quintic Newton–Schulz: pushes singular values towards 1 fast


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The scheduled lr into every group (times the group's own ratio: Muon's may differ from AdamW's)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_ratio", 1.0)


def learning_rate(cfg, step: int, progress: float) -> float:
    """Linear warm-up, then from lr down to min_lr as progress goes from 0 to 1 (steps or seconds): along a cosine,
    or (trapezoid) flat at lr and then a straight line over the last `cooldown` of the run."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    if t.schedule == "trapezoid":
        down = min(max((progress - (1 - t.cooldown)) / t.cooldown, 0.0), 1.0)  # 0 until the cool-down, 1 at the end
        return t.lr - (t.lr - t.min_lr) * down
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW (weight decay on matrices only, not on biases and norms), or Muon for the hidden matrices. A model may
    ask some parameters to learn more slowly (`model.lr_ratios()`, e.g. T5's encoder): they get groups of their own."""
    t, kind = cfg.train, kind_of(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    asked = cast(SlowerParts, model).lr_ratios() if kind.slower_parts else {}
    if t.optimizer == "muon":
        hidden = {id(p) for p in hidden_matrices(model, head=kind.score_head)}
        groups = [
            {
                "params": [p for p in params if id(p) in hidden],
                "weight_decay": t.weight_decay,
                "muon": True,
                "lr_ratio": t.muon_lr_ratio,
            },
            {"params": [p for p in params if id(p) not in hidden and p.dim() >= 2], "weight_decay": t.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return Muon(slower_groups(groups, asked), lr=t.lr, betas=(t.beta1, t.beta2))
    groups = slower_groups(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        asked,
    )
    try:
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), foreach=True)


def slower_groups(groups: list[dict], asked: dict[int, float]) -> list[dict]:
    """Each group split by the learning-rate ratio the model asks for its parameters (`asked`: {id(p): ratio}, its
    SlowerParts.lr_ratios(); 1 where it asks nothing); empty groups dropped."""
    out = []
    for group in groups:
        for ratio in sorted({asked.get(id(p), 1.0) for p in group["params"]}):
            mine = [p for p in group["params"] if asked.get(id(p), 1.0) == ratio]
            out.append({**group, "params": mine, "lr_ratio": group.get("lr_ratio", 1.0) * ratio})
    return [g for g in out if g["params"]]


def slowed_parameters(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Each parameter that learns at a fraction of the rate (its group's lr_ratio < 1): name -> ratio. The health
    checkup reads it, so that a matrix slowed on purpose (a T5's encoder) is not called too slow."""
    ratio = {id(p): group.get("lr_ratio", 1.0) for group in optimizer.param_groups for p in group["params"]}
    return {n: ratio[id(p)] for n, p in model.named_parameters() if ratio.get(id(p), 1.0) < 1.0}


def hidden_matrices(model: torch.nn.Module, head: bool = True) -> list[torch.Tensor]:
    """The 2-D weights inside the network: not the tables that read characters in (embeddings), not the head that
    writes scores out (`head`: the model has one, its kind's score_head: HasScoreHead.output)."""
    outside = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    if head:
        outside |= {id(p) for p in cast(HasScoreHead, model).output.parameters()}
    return [p for p in model.parameters() if p.dim() == 2 and id(p) not in outside]


def orthogonalise(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """g = U S Vᵀ (A × B) -> about U Vᵀ: the same directions, every singular value near 1 (within about 0.7–1.2),
    by five rounds of x ← a·x + (b·xxᵀ + c·(xxᵀ)²)·x, a polynomial that pulls every singular value towards 1."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:  # work with the wide way round: x xᵀ is then the smaller square
        x = x.T
    x = x / (x.norm() + 1e-7)  # the largest singular value is now at most 1
    for _ in range(steps):
        gram = x @ x.T  # (A, A)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for the groups marked muon=True, AdamW for the others: one optimizer, so one state to save and resume.

    Muon's step for a matrix W (A × B) with gradient G:
        m ← β·m + G ;  u ← orthogonalise(G + β·m)  (Nesterov) ;  W ← W·(1 − lr·wd) − lr · 0.2·√max(A, B) · u
    The factor 0.2·√max(A, B) gives the step the size of a typical AdamW step, so both can share one learning rate
    (train.muon_lr_ratio scales Muon's).
    """

    def __init__(
        self,
        groups: list[dict],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.99),
        momentum: float = 0.95,
        eps: float = 1e-8,
    ):
        super().__init__(
            groups,
            {
                "lr": lr,
                "betas": betas,
                "momentum": momentum,
                "eps": eps,
                "weight_decay": 0.0,
                "muon": False,
                "lr_ratio": 1.0,
            },
        )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                for p in params:
                    self.muon_step(p, group)
            elif params:
                self.adamw_step(params, group)

    def muon_step(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        m, beta = state["momentum_buffer"], group["momentum"]
        m.mul_(beta).add_(p.grad)
        update = orthogonalise(p.grad.add(m, alpha=beta))  # Nesterov: look one momentum step ahead
        p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled weight decay
        p.add_(update, alpha=-group["lr"] * 0.2 * math.sqrt(max(p.shape)))

    def adamw_step(self, params: list[torch.Tensor], group: dict) -> None:
        """AdamW, as torch.optim.AdamW computes it (one fused call for the whole group): with m and v the running
        means of the gradient and of its square, p ← p·(1 − lr·wd) − lr · m̂ / (√v̂ + eps), m̂ and v̂ corrected for
        their start at zero."""
        for p in params:
            if "exp_avg" not in self.state[p]:
                self.state[p].update(step=torch.zeros(()), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        states = [self.state[p] for p in params]
        (beta1, beta2), fused = group["betas"], True if params[0].device.type == "cpu" else None  # None: torch chooses
        adamw(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            fused=fused,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )
