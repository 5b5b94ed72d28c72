"""A decoder-only Transformer, written to be read.

    characters ──► embedding + position ──► [ attention ─► feed-forward ] × n_layers ──► norm ──► logits

The same blocks with the causal mask off make an encoder that reads both sides of every position (BERT,
taller/models/bert.py): its config says `causal = False`, nothing else changes.

Shapes: B = batch, T = time (characters), C = d_model, H = heads, D = C // H (width of a head), V = vocabulary.
Each block is pre-norm: x = x + attention(norm(x)); x = x + feed_forward(norm(x)).

The defaults are the classic GPT the lesson explains. A few switches in [model] turn on the pieces of the modern
recipe (the NanoGPT speedrun, nanochat), each one line of algebra where it acts:
    pos_encoding = "rotary"   queries and keys are turned by an angle that grows with the position (RoPE)
    norm = "rmsnorm"          x / rms(x): only rescales (no mean taken away, no bias)
    qk_norm = true            queries and keys RMS-normalised per head before they meet
    activation = "relu2"      the feed-forward bends with relu(x)²
    zero_init = true          the projections back into the residual stream start at zero
    bigram_buckets = N        a learned vector per (previous, current) character pair is added to the input
    value_embeddings = true   each layer's values also get a second embedding of the character
    logit_cap = c             logits = c · tanh(logits / c): never beyond ±c
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.models.kind import BY_PASSES, Kind, ModelConfig, need

POS_ENCODINGS = ("sinusoidal", "learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "relu", "relu2")


@dataclass
class TransformerConfig(ModelConfig):
    """The [model] section of a Transformer."""

    kind: str = "transformer"
    block_size: int = 64  # context: how many characters (tokens) the model sees at once
    d_model: int = 128  # width of the residual stream
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 512  # hidden width of the feed-forward block
    dropout: float = 0.1
    pos_encoding: str = "sinusoidal"  # sinusoidal | learned (added to the input) | rotary (turns queries and keys)
    tie_weights: bool = False  # share the embedding and output matrices
    attention: str = "fused"  # fused (scaled_dot_product_attention) | explicit (readable, same numbers)
    # --- switches of the modern recipe (see the top of this file); the defaults are the classic GPT ---
    bias: bool = True  # biases in every Linear layer and LayerNorm (nanoGPT's baby has none)
    norm: str = "layernorm"  # layernorm | rmsnorm
    activation: str = "gelu"  # gelu | relu | relu2 (ReLU squared)
    qk_norm: bool = False  # queries and keys RMS-normalised per head
    zero_init: bool = False  # attention's and the feed-forward's output projections start at zero
    bigram_buckets: int = 0  # > 0: rows of the hashed (previous, current) character-pair embedding
    value_embeddings: bool = False  # a second embedding of each character added to every layer's values
    logit_cap: float = 0.0  # > 0: soft cap of the logits at ±logit_cap

    def check(self, data) -> None:
        need(1 <= self.block_size <= 8192, f"model.block_size={self.block_size} debe estar entre 1 y 8192.")
        need(1 <= self.d_model <= 8192, f"model.d_model={self.d_model} debe estar entre 1 y 8192.")
        need(1 <= self.n_heads <= 256, f"model.n_heads={self.n_heads} debe estar entre 1 y 256.")
        need(
            self.d_model % self.n_heads == 0,
            f"model.d_model={self.d_model} no es divisible entre "
            f"model.n_heads={self.n_heads}; elige, por ejemplo, n_heads={divisor_near(self.d_model, self.n_heads)}.",
        )
        need(1 <= self.n_layers <= 256, f"model.n_layers={self.n_layers} debe estar entre 1 y 256.")
        need(1 <= self.d_ff <= 65536, f"model.d_ff={self.d_ff} debe estar entre 1 y 65536.")
        need(
            0.0 <= self.dropout < 1.0 or self.dropout == BY_PASSES,
            f"model.dropout={self.dropout} debe estar en [0, 1) (o -1: según cuántas veces se leerá el texto).",
        )
        need(
            self.pos_encoding in POS_ENCODINGS,
            f"model.pos_encoding='{self.pos_encoding}': usa {', '.join(POS_ENCODINGS)}.",
        )
        need(
            self.pos_encoding != "rotary" or (self.d_model // self.n_heads) % 2 == 0,
            f"model.pos_encoding='rotary' gira pares de números: d_model / n_heads = {self.d_model // self.n_heads} "
            "debe ser par; cambia d_model o n_heads.",
        )
        need(self.attention in ("fused", "explicit"), f"model.attention='{self.attention}': usa fused o explicit.")
        need(self.norm in NORMS, f"model.norm='{self.norm}': usa {', '.join(NORMS)}.")
        need(self.activation in ACTIVATIONS, f"model.activation='{self.activation}': usa {', '.join(ACTIVATIONS)}.")
        need(
            self.bigram_buckets == 0 or 2 <= self.bigram_buckets <= 1_000_000,
            f"model.bigram_buckets={self.bigram_buckets}: usa 0 (sin pares) o entre 2 y 1000000 filas.",
        )
        need(
            self.logit_cap >= 0 and math.isfinite(self.logit_cap),
            f"model.logit_cap={self.logit_cap}: usa 0 (sin tope) o un número positivo, por ejemplo 30.",
        )

    def estimate_parameters(self) -> int:
        C, F_, V = self.d_model, self.d_ff, max(self.vocab_size, 256)
        per_layer = 4 * C * C + 2 * C * F_ + 9 * C + F_  # attention (4 C×C and biases), feed-forward, 2 norms
        extra = (self.bigram_buckets + V * self.value_embeddings) * C  # the pair and value embeddings
        return 2 * V * C + self.block_size * C + self.n_layers * per_layer + extra  # embedding, head, positions, blocks

    def estimate_activations(self, batch_size: int) -> int:
        B, T, C, F_, H = batch_size, self.block_size, self.d_model, self.d_ff, self.n_heads
        V = max(self.vocab_size, 256)
        # per block: two norms (in and out), q, k, v, the heads' output, its projection, dropouts and residuals
        # (~12 B×T×C); the feed-forward's hidden layer before and after GELU (2 B×T×F); attention's scores, weights
        # and their dropout, T×T per head (3 B×H×T²: also on the fused path, which falls back to them with dropout)
        per_block = 12 * B * T * C + 2 * B * T * F_ + 3 * B * H * T * T
        return 2 * B * T * C + self.n_layers * per_block + 3 * B * T * V  # embeddings; blocks; logits, softmax, grad

    @property
    def context(self) -> int:
        return self.block_size

    @property
    def training_window(self) -> int:
        return self.block_size

    @property
    def causal(self) -> bool:
        """Each position sees only the ones before it (GPT); an encoder (BERT) turns this off."""
        return True

    @property
    def n_ids(self) -> int:
        """Token ids the model reads and scores: the tokenizer's (an encoder adds its mask token)."""
        return self.vocab_size


def divisor_near(n: int, k: int) -> int:
    """The divisor of n closest to k: a number of heads that splits d_model evenly."""
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


def sinusoidal_positions(block_size: int, d_model: int) -> torch.Tensor:
    """The fixed position code of "Attention is all you need": sines and cosines of geometric frequencies."""
    position = torch.arange(block_size).float()[:, None]  # (T, 1)
    frequency = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))  # (C/2,)
    pe = torch.zeros(block_size, d_model)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return pe  # (T, C)


def rotary_angles(block_size: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE: the cosine and sine of the angle by which each position turns each pair of a head's numbers."""
    frequency = base ** (-torch.arange(0, head_dim, 2).float() / head_dim)  # (D/2,) fast to slow turns
    angle = torch.arange(block_size).float()[:, None] * frequency  # (T, D/2) position × frequency
    return angle.cos(), angle.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair (x1, x2) of x (B, H, T, D) by its position's angle (cos, sin: (T, D/2)). A query turned by
    position m meets a key turned by n with a product that depends only on m − n: attention sees relative positions."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, D/2) each: the first and second number of every pair
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def make_norm(cfg: TransformerConfig) -> nn.Module:
    """LayerNorm: (x − mean) / std, then a learned scale and shift; RMSNorm: x / rms(x), then a learned scale."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model)
    return nn.LayerNorm(cfg.d_model, bias=cfg.bias)


class ReLUSquared(nn.ReLU):
    """relu(x)²: zero below 0 like a ReLU (and as dead there), growing faster above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


def make_activation(name: str) -> nn.Module:
    """The feed-forward's bend, as a module (gelu | relu | relu2)."""
    return {"gelu": nn.GELU, "relu": nn.ReLU, "relu2": ReLUSquared}[name]()


def bigram_rows(idx: torch.Tensor, previous: torch.Tensor | None, buckets: int) -> torch.Tensor:
    """(B, T) ids -> (B, T) rows of the pair table: a hash of (previous character, this one). Row 0 is for the first
    character of a text, which has no previous one; `previous` (B, 1) is the character before idx (generation)."""
    before = torch.full_like(idx[:, :1], -1) if previous is None else previous  # (B, 1)
    prev = torch.cat([before, idx[:, :-1]], dim=1)  # (B, T) the character before each one
    row = (prev * 36313 + idx * 27191) % (buckets - 1) + 1  # two primes mix the pair; rows 1 … buckets-1
    return torch.where(prev < 0, 0, row)


class CausalSelfAttention(nn.Module):
    """Each character looks back at the earlier ones (never forward) and mixes in what it finds useful.
    With `cfg.causal` off (an encoder) it looks at every position, before and after."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.block_size = cfg.block_size
        self.query = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)  # what am I looking for?
        self.key = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)  # what do I contain?
        self.value = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)  # what do I pass on if chosen?
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)  # heads back into the residual stream
        self.qk_norm = cfg.qk_norm
        if cfg.value_embeddings:  # how much of the character's value embedding this layer mixes into its values
            self.value_gate = nn.Parameter(torch.ones(()))
        self.dropout = nn.Dropout(cfg.dropout)  # its rate (.p) also drops attention weights
        self.explicit = cfg.attention == "explicit"
        self.causal = cfg.causal

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> queries, keys and values (B, T, C) each."""
        return self.query(x), self.key(x), self.value(x)

    def remember(self, k: torch.Tensor, v: torch.Tensor, cache: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Generation: keys and values of earlier characters are kept, not recomputed. k, v (B, H, T, D) of the new
        characters -> those of the whole text so far (B, H, past+T, D), and how many came before (past)."""
        B, H, T, D = k.shape
        if "k" not in cache:  # room for a whole window, filled in as the text grows (no copying per step)
            cache["k"] = k.new_empty(B, H, self.block_size, D)  # (B, H, block, D)
            cache["v"], cache["length"] = v.new_empty(B, H, self.block_size, D), 0
        past = cache["length"]
        cache["k"][:, :, past : past + T], cache["v"][:, :, past : past + T] = k, v
        cache["length"] = past + T
        return cache["k"][:, :, : past + T], cache["v"][:, :, : past + T], past

    def heads(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        ve: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> each head's queries, keys and values of the new characters, (B, H, T, D) each."""
        q, k, v = self.project(x)  # (B, T, C) each
        if ve is not None:
            v = v + self.value_gate * ve
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, D) each
        if self.qk_norm or rope is not None:  # queries and keys get the same treatment: in one go (fewer calls)
            qk = torch.cat([q, k])  # (2B, H, T, D)
            if self.qk_norm:  # every query and key gets the same length, √D: only their directions decide
                qk = F.rms_norm(qk, (self.head_dim,))
            if rope is not None:
                qk = rotate(qk, *rope)
            q, k = qk.chunk(2)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        cache: dict | None = None,
        record: list | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        ve: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). rope: (cos, sin) of the new characters' positions; ve: their value embedding;
        keys (B, T) bool, encoders only: which positions are text (True) and which are padding, never looked at;
        record: a list the attention weights (B, H, T, past+T) are appended to (the module itself keeps nothing)."""
        B, T, C = x.shape
        q, k, v = self.heads(x, rope, ve)  # (B, H, T, D) each
        past = 0
        if cache is not None:
            k, v, past = self.remember(k, v, cache)  # (B, H, past+T, D)
        y = self.attend(q, k, v, past, record, keys)  # (B, H, T, D)
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C): heads side by side again, projected
        return self.dropout(y) if self.dropout.p else y

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        past: int,
        record: list | None,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """softmax(q kᵀ / √D) v with the future masked (unless an encoder): q (B, H, T, D), k and v (B, H, past+T, D)
        -> (B, H, T, D)."""
        T, dropout = q.shape[2], self.dropout.p if self.training else 0.0
        if self.explicit or record is not None:  # the readable path: the attention matrix, written out
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, past+T)
            i = torch.arange(T, device=q.device)[:, None] + past  # absolute position of each query
            j = torch.arange(past + T, device=q.device)[None, :]  # absolute position of each key
            if self.causal:
                scores = scores.masked_fill(j > i, float("-inf"))  # causal: no looking ahead
            if keys is not None:
                scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))  # padding: never looked at
            weights = F.softmax(scores, dim=-1)  # each row sums to 1
            if record is not None:
                record.append(weights.detach())
            return F.dropout(weights, dropout, self.training) @ v
        if keys is not None:  # the fast path: an encoder's batch of texts of different lengths
            return F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :], dropout_p=dropout)
        if past == 0:  # the fast path: the same computation in one fused kernel
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=self.causal)
        if T == 1:  # one new character sees everything before it
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(diagonal=past)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class FeedForward(nn.Module):
    """Per-character thinking: widen, bend (GELU, ReLU or ReLU²), narrow."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.bend = make_activation(cfg.activation)  # a module (it has no weights): the health checkup watches it
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(self.bend(self.up(x)))  # (B, T, C)
        return self.dropout(y) if self.dropout.p else y


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attention = CausalSelfAttention(cfg)
        self.norm2 = make_norm(cfg)
        self.feed_forward = FeedForward(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cache: dict | None = None,
        record: list | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        ve: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), cache, record, rope, ve, keys)  # residual: add, don't replace
        x = x + self.feed_forward(self.norm2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.n_ids, cfg.d_model)  # a vector per character
        if cfg.pos_encoding == "learned":
            self.position = nn.Embedding(cfg.block_size, cfg.d_model)  # a learned vector per position
        elif cfg.pos_encoding == "sinusoidal":
            self.register_buffer("pe", sinusoidal_positions(cfg.block_size, cfg.d_model), persistent=False)
        else:  # rotary: nothing is added to the input; attention turns queries and keys
            cos, sin = rotary_angles(cfg.block_size, cfg.d_model // cfg.n_heads)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, D/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.bigram_buckets:
            self.bigram_embedding = nn.Embedding(cfg.bigram_buckets, cfg.d_model)  # a vector per character pair
        if cfg.value_embeddings:
            self.value_embedding = nn.Embedding(cfg.n_ids, cfg.d_model)  # a vector per character, for the values
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.output = nn.Linear(cfg.d_model, cfg.n_ids, bias=cfg.bias)  # a score (logit) per possible next token
        if cfg.tie_weights:
            self.output.weight = self.embedding.weight
        self.apply(self._init)
        for block in self.blocks:  # residual projections start small (or at zero), so blocks begin near identity
            for layer in (block.attention.proj, block.feed_forward.down):
                if cfg.zero_init:
                    nn.init.zeros_(layer.weight)
                else:
                    nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    def embed(self, idx: torch.Tensor, start: int, cache: list[dict] | None) -> torch.Tensor:
        """idx (B, T) at positions start … start+T-1 -> (B, T, C): each character's vector, plus its position's (unless
        rotary) and its pair's (with bigram_buckets)."""
        x = self.embedding(idx)  # (B, T, C)
        T, kind = idx.shape[1], self.cfg.pos_encoding
        if kind != "rotary":
            x = x + (self.position.weight if kind == "learned" else self.pe)[start : start + T]  # (T, C)
        if self.cfg.bigram_buckets:
            previous = cache[0].get("last") if cache else None  # (B, 1) the character read before idx, if any
            x = x + self.bigram_embedding(bigram_rows(idx, previous, self.cfg.bigram_buckets))
            if cache:
                cache[0]["last"] = idx[:, -1:]
        return self.dropout(x)

    def forward(self, idx: torch.Tensor, cache: list[dict] | None = None, record: list | None = None) -> torch.Tensor:
        """idx (B, T) character ids -> logits (B, T, V). With a cache, idx holds only the new characters."""
        return self.capped(self.output(self.features(idx, cache, record)))  # (B, T, V)

    def capped(self, logits: torch.Tensor) -> torch.Tensor:
        """With logit_cap, a smooth ceiling: no score grows beyond ±cap, however sure the model gets."""
        cap = self.cfg.logit_cap
        return cap * torch.tanh(logits / cap) if cap else logits

    def features(
        self,
        idx: torch.Tensor,
        cache: list[dict] | None = None,
        record: list | None = None,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """idx (B, T) -> the last layer's normalised states (B, T, C): what the output layer (or a classifier) reads."""
        B, T = idx.shape
        start = cache[0].get("length", 0) if cache else 0  # characters already read (with a cache), else 0
        assert start + T <= self.cfg.block_size, f"context {start + T} is longer than block_size {self.cfg.block_size}"
        x = self.embed(idx, start, cache)  # (B, T, C)
        rotary = self.cfg.pos_encoding == "rotary"
        rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T]) if rotary else None  # (T, D/2) each
        ve = self.value_embedding(idx) if self.cfg.value_embeddings else None  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache[i] if cache is not None else None, record, rope, ve, keys)
        return self.norm(x)  # (B, T, C)

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, Generation]:
        """Read a prompt (B, T); return the next-character logits (B, V) and the state (a KV cache per layer)."""
        cache = [{} for _ in self.blocks]
        return self(idx, cache)[:, -1], Generation(self, cache)

    def step(self, idx: torch.Tensor, state: Generation) -> tuple[torch.Tensor, Generation]:
        """Feed one new character per row (B, 1); return its next-character logits (B, V) and the updated state.
        Out of training it is read by the fast path (`Generation.read`), which computes what the readable forward
        does (tests/test_model.py holds them equal); a model in training mode (dropout) takes the readable one."""
        logits = self(idx, state.cache)[:, -1] if self.training else state.read(idx)
        return logits, state

    @staticmethod
    def state_length(state: Generation) -> int:
        return state.cache[0].get("length", 0) if state.cache else 0

    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, each (B, H, T, T), from the readable path. They are returned, not kept:
        the model is left as it was, so several callers (the server's requests) may ask at once."""
        maps: list[torch.Tensor] = []
        self.features(idx, record=maps)
        return maps


# --- the fast path of generation ------------------------------------------------------------------------------------
def rms(x: torch.Tensor, eps: float | None = None, scale: torch.Tensor | None = None) -> torch.Tensor:
    """x / rms(x) over the last axis (D), as F.rms_norm(x, (D,)) computes it (eps None: the dtype's), in one fused
    kernel: x and −x side by side have mean 0, so a LayerNorm of the pair divides by the root mean square of x. (On a
    CPU F.rms_norm is about seven small operations, F.layer_norm one: measured in bench/generate_speed.py.) `scale`
    (2D,), the learned weight twice, multiplies inside the same kernel."""
    D = x.shape[-1]
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return F.layer_norm(torch.cat([x, -x], dim=-1), (2 * D,), scale, eps=eps)[..., :D]


def transposed(*layers: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Linear layers that read the same input, as one product x @ W + b: W (C_in, ΣC_out) their weights side by side,
    transposed once and contiguous, and b their biases (or None)."""
    bias = torch.cat([m.bias for m in layers]) if layers[0].bias is not None else None
    return torch.cat([m.weight for m in layers]).t().contiguous(), bias


def affine(x: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    """x (B, C_in) @ W + b -> (B, C_out): one addmm (F.linear adds a transpose and checks on every call)."""
    W, b = weights
    return x @ W if b is None else torch.addmm(b, x, W)


class Generation:
    """The state of generation (what `start` returns and `step` carries on): each layer's keys and values of the
    text read so far (`CausalSelfAttention.remember` fills them), and `read`, the one-token step written for speed.

    A step of a small model on one row costs what its operations cost to start (about 1–20 µs each on a slow CPU),
    not their arithmetic; so `read` does the readable forward's algebra in fewer of them. The weights stay fixed
    while a text is generated, so they are laid out once for it: each layer's query, key and value matrices side by
    side in one product, every matrix transposed for addmm, each RMSNorm's weight inside its fused kernel. Rotary's
    turn of the new position is one D × D matrix for every layer, and there is no time axis, no dropout and few
    Module calls. The readable forward stays the definition (the prompt is read by it): tests/test_model.py holds
    the two equal for every switch of the recipe."""

    def __init__(self, model: Transformer, cache: list[dict]):
        self.model, self.cache = model, cache
        self.weights = [  # per layer: (W, b) of the queries-keys-values, the heads' projection, up and down
            (transposed(a.query, a.key, a.value), transposed(a.proj), transposed(ff.up), transposed(ff.down))
            for a, ff in ((block.attention, block.feed_forward) for block in model.blocks)
        ]
        self.output = transposed(model.output)
        self.scales = {  # an RMSNorm's weight twice, for `rms`
            norm: torch.cat([norm.weight, norm.weight])
            for norm in model.modules()
            if isinstance(norm, nn.RMSNorm) and norm.weight is not None
        }
        D = model.cfg.d_model // model.cfg.n_heads
        self.eye = torch.eye(D, device=model.embedding.weight.device)  # (D, D)

    def normed(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """norm(x) for rows x (B, C): a LayerNorm as it is, an RMSNorm through `rms`."""
        if isinstance(norm, nn.RMSNorm):
            return rms(x, norm.eps, self.scales.get(norm))
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def turn(self, position: int) -> torch.Tensor | None:
        """Rotary's turn of `position` as a matrix (D, D): x @ turn == rotate(x). A turn is linear, so its matrix is
        what it does to each row of the identity."""
        m = self.model
        if m.cfg.pos_encoding != "rotary":
            return None
        return rotate(self.eye, m.rope_cos[position], m.rope_sin[position])

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, 1): one new token per row -> the logits of the token after it (B, V), as
        `model(idx, self.cache)[:, -1]` gives them."""
        m, position = self.model, self.cache[0]["length"]
        assert position < m.cfg.block_size, f"the cache is full ({position} tokens)"
        x = m.embed(idx, position, self.cache)[:, 0]  # (B, C)
        ve = m.value_embedding(idx)[:, 0] if m.cfg.value_embeddings else None  # (B, C)
        turn = self.turn(position)  # (D, D) or None
        for block, (qkv, proj, up, down), cache in zip(m.blocks, self.weights, self.cache):
            y = self.attention(block.attention, affine(self.normed(x, block.norm1), qkv), cache, turn, ve)  # (B, C)
            x = x + affine(y, proj)
            x = x + affine(block.feed_forward.bend(affine(self.normed(x, block.norm2), up)), down)
        return m.capped(affine(self.normed(x, m.norm), self.output))  # (B, V)

    @staticmethod
    def attention(a: CausalSelfAttention, qkv: torch.Tensor, cache: dict, turn, ve) -> torch.Tensor:
        """`CausalSelfAttention.forward` for one new token per row, up to its projection: its queries, keys and values
        qkv (B, 3C) -> the heads' outputs side by side (B, C); the key and value are added to the layer's cache."""
        B = qkv.shape[0]
        heads = qkv.view(B, 3, a.n_heads, a.head_dim)  # (B, 3, H, D): queries, keys, values
        qk, v = heads[:, :2], heads[:, 2]  # (B, 2, H, D), (B, H, D)
        if ve is not None:
            v = v + a.value_gate * ve.view(v.shape)
        if a.qk_norm:
            qk = rms(qk)
        if turn is not None:
            qk = qk @ turn
        q, k = qk.unbind(1)  # (B, H, D) each
        past = cache["length"]
        cache["k"][:, :, past], cache["v"][:, :, past] = k, v
        cache["length"] = seen = past + 1
        y = F.scaled_dot_product_attention(q[:, :, None], cache["k"][:, :, :seen], cache["v"][:, :, :seen])
        return y.view(B, -1)  # (B, H, 1, D) -> (B, C)


KIND = Kind(
    name="transformer",
    title="Transformer",
    config=TransformerConfig,
    build=Transformer,
    objective="next_token",
    preset="base",
    timed_preset="base",
    shows_attention=True,
    shows_embedding=True,
    score_head=True,
    exports=("html", "onnx"),
)
