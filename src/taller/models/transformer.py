"""A decoder-only Transformer, written to be read.

    characters ──► embedding + position ──► [ attention ─► feed-forward ] × n_layers ──► LayerNorm ──► logits

The same blocks with the causal mask off make an encoder that reads both sides of every position (BERT,
taller/models/bert.py): its config says `causal = False`, nothing else changes.

Shapes: B = batch, T = time (characters), C = d_model, H = heads, D = C // H (width of a head), V = vocabulary.
Each block is pre-norm: x = x + attention(norm(x)); x = x + feed_forward(norm(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.models.kind import Kind, ModelConfig, need


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
    pos_encoding: str = "sinusoidal"  # sinusoidal | learned
    tie_weights: bool = False  # share the embedding and output matrices
    attention: str = "fused"  # fused (scaled_dot_product_attention) | explicit (readable, same numbers)

    def check(self, data) -> None:
        need(1 <= self.block_size <= 8192, f"model.block_size={self.block_size} debe estar entre 1 y 8192.")
        need(1 <= self.d_model <= 8192, f"model.d_model={self.d_model} debe estar entre 1 y 8192.")
        need(1 <= self.n_heads <= 256, f"model.n_heads={self.n_heads} debe estar entre 1 y 256.")
        need(self.d_model % self.n_heads == 0, f"model.d_model={self.d_model} no es divisible entre "
             f"model.n_heads={self.n_heads}; elige, por ejemplo, n_heads={divisor_near(self.d_model, self.n_heads)}.")
        need(1 <= self.n_layers <= 256, f"model.n_layers={self.n_layers} debe estar entre 1 y 256.")
        need(1 <= self.d_ff <= 65536, f"model.d_ff={self.d_ff} debe estar entre 1 y 65536.")
        need(0.0 <= self.dropout < 1.0, f"model.dropout={self.dropout} debe estar en [0, 1).")
        need(self.pos_encoding in ("sinusoidal", "learned"),
             f"model.pos_encoding='{self.pos_encoding}': usa sinusoidal o learned.")
        need(self.attention in ("fused", "explicit"), f"model.attention='{self.attention}': usa fused o explicit.")

    def estimate_parameters(self) -> int:
        C, F_, V = self.d_model, self.d_ff, max(self.vocab_size, 256)
        per_layer = 4 * C * C + 2 * C * F_ + 9 * C + F_  # attention (4 C×C and biases), feed-forward, 2 norms
        return 2 * V * C + self.block_size * C + self.n_layers * per_layer  # embedding and head, positions, blocks

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


class CausalSelfAttention(nn.Module):
    """Each character looks back at the earlier ones (never forward) and mixes in what it finds useful.
    With `cfg.causal` off (an encoder) it looks at every position, before and after."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.block_size = cfg.block_size
        self.query = nn.Linear(cfg.d_model, cfg.d_model)  # what am I looking for?
        self.key = nn.Linear(cfg.d_model, cfg.d_model)  # what do I contain?
        self.value = nn.Linear(cfg.d_model, cfg.d_model)  # what do I pass on if chosen?
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)  # heads back into the residual stream
        self.dropout = cfg.dropout
        self.explicit = cfg.attention == "explicit"
        self.causal = cfg.causal
        self.weights = None  # (B, H, T, T) attention of the last call, when recorded

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, cache: dict | None = None, record: bool = False,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        """keys (B, T) bool, encoders only: which positions are text (True) and which are padding, never looked at."""
        B, T, C = x.shape
        if cache is None:
            q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, C) each
        else:  # generation: the weights stay fixed, so the three projections can be one product (faster)
            if "qkv" not in cache:
                cache["qkv"] = (torch.cat([self.query.weight, self.key.weight, self.value.weight]),  # (3C, C)
                                torch.cat([self.query.bias, self.key.bias, self.value.bias]))  # (3C,)
            q, k, v = F.linear(x, *cache["qkv"]).split(C, dim=-1)  # (B, T, C) each
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, D) each
        past = 0
        if cache is not None:  # generation: keys and values of earlier characters are kept, not recomputed
            if "k" not in cache:  # room for a whole window, filled in as the text grows (no copying per step)
                cache["k"] = k.new_empty(B, self.n_heads, self.block_size, self.head_dim)  # (B, H, block, D)
                cache["v"] = v.new_empty(B, self.n_heads, self.block_size, self.head_dim)
                cache["length"] = 0
            past = cache["length"]
            cache["k"][:, :, past:past + T], cache["v"][:, :, past:past + T] = k, v
            cache["length"] = past + T
            k, v = cache["k"][:, :, :past + T], cache["v"][:, :, :past + T]  # (B, H, past+T, D)
        dropout = self.dropout if self.training else 0.0

        if self.explicit or record:  # the readable path: the attention matrix, written out
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, past+T)
            i = torch.arange(T, device=x.device)[:, None] + past  # absolute position of each query
            j = torch.arange(past + T, device=x.device)[None, :]  # absolute position of each key
            if self.causal:
                scores = scores.masked_fill(j > i, float("-inf"))  # causal: no looking ahead
            if keys is not None:
                scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))  # padding: never looked at
            weights = F.softmax(scores, dim=-1)  # each row sums to 1
            if record:
                self.weights = weights.detach()
            y = F.dropout(weights, dropout, self.training) @ v  # (B, H, T, D)
        else:  # the fast path: the same computation in one fused kernel
            if keys is not None:  # an encoder's batch of texts of different lengths
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :], dropout_p=dropout)
            elif past == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=self.causal)
            elif T == 1:  # one new character sees everything before it
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
            else:
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return F.dropout(self.proj(y), dropout, self.training)


class FeedForward(nn.Module):
    """Per-character thinking: widen, bend (GELU), narrow."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.gelu = nn.GELU()  # a module (it has no weights), so that the health checkup can watch its output
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.gelu(self.up(x))))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attention = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cache: dict | None = None, record: bool = False,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), cache, record, keys)  # residual: add, don't replace
        x = x + self.feed_forward(self.norm2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.n_ids, cfg.d_model)  # a vector per character
        if cfg.pos_encoding == "learned":
            self.position = nn.Embedding(cfg.block_size, cfg.d_model)  # a learned vector per position
        else:
            self.register_buffer("pe", sinusoidal_positions(cfg.block_size, cfg.d_model), persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.n_ids)  # a score (logit) per possible next character
        if cfg.tie_weights:
            self.output.weight = self.embedding.weight
        self.apply(self._init)
        for block in self.blocks:  # residual projections start small so that deep stacks begin near identity
            for layer in (block.attention.proj, block.feed_forward.down):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    def forward(self, idx: torch.Tensor, cache: list[dict] | None = None, record: bool = False) -> torch.Tensor:
        """idx (B, T) character ids -> logits (B, T, V). With a cache, idx holds only the new characters."""
        return self.output(self.features(idx, cache, record))

    def features(self, idx: torch.Tensor, cache: list[dict] | None = None, record: bool = False,
                 keys: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> the last layer's normalised states (B, T, C): what the output layer (or a classifier) reads."""
        B, T = idx.shape
        start = self.state_length(cache)  # characters already read (with a cache), else 0
        assert start + T <= self.cfg.block_size, f"context {start + T} is longer than block_size {self.cfg.block_size}"
        table = self.position.weight if self.cfg.pos_encoding == "learned" else self.pe  # (block_size, C)
        pos = table[start:start + T]  # (T, C) the code of each character's position
        x = self.dropout(self.embedding(idx) + pos)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache[i] if cache is not None else None, record, keys)
        return self.norm(x)  # (B, T, C)

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        """Read a prompt (B, T); return the next-character logits (B, V) and the state (a KV cache per layer)."""
        cache = [{} for _ in self.blocks]
        return self(idx, cache)[:, -1], cache

    def step(self, idx: torch.Tensor, state: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        """Feed one new character per row (B, 1); return its next-character logits (B, V) and the updated state."""
        return self(idx, state)[:, -1], state

    @staticmethod
    def state_length(state: list[dict]) -> int:
        return state[0].get("length", 0) if state else 0

    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, each (B, H, T, T), from the readable path."""
        self(idx, record=True)
        return [block.attention.weights for block in self.blocks]


KIND = Kind(name="transformer", title="Transformer", config=TransformerConfig, build=Transformer,
            objective="next_token", preset="base", timed_preset="base",
            exports=("html", "onnx"))
