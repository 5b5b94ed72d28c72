"""T5: an encoder that reads the whole input and a decoder that writes the answer, looking at the input as it writes.

    input  «Más vale <X0> que nunca.»  ──► encoder (BERT's blocks: both sides) ──► memory (B, S, C)
                                                                                       │ cross-attention
    answer «<start> <X0> tarde <end>»  ──► decoder (GPT's blocks: left to right) ◄─────┘ ──► next answer token

Every task is text in, text out. Pretraining hides spans of the input behind sentinels <X0>, <X1> … and asks the
decoder to write what each one hid (span corruption, training/spans.py); `taller fill` uses just that. The encoder
blocks are the Transformer's own (transformer.py) with the causal mask off; each decoder block adds one piece, the
cross-attention: its queries come from the answer, its keys and values from the encoder's memory, so row i of its
(answer × input) matrix says where in the input the decoder looked to write answer token i.

Token ids: the tokenizer's (0 … V-1), then `n_sentinels` sentinels, then <start> and <end>.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from taller.models.kind import Kind, need
from taller.models.transformer import Block, CausalSelfAttention, FeedForward, TransformerConfig, sinusoidal_positions


@dataclass
class T5Config(TransformerConfig):
    """The [model] section of a T5 (n_layers, block_size: the encoder's; the decoder has its own)."""

    kind: str = "t5"
    n_dec_layers: int = 2  # decoder blocks
    target_size: int = 32  # the longest answer the decoder writes, in tokens (sentinels and <end> included)
    n_sentinels: int = 16  # <X0> <X1> …: each stands for one hidden span
    mask_rate: float = 0.15  # share of the input's tokens hidden in spans
    span_length: float = 3.0  # mean length of a hidden span, in tokens
    encoder_lr: float = 0.1  # the encoder's learning rate, as a multiple of lr (see T5.lr_ratios)

    def check(self, data) -> None:
        super().check(data)
        need(1 <= self.n_dec_layers <= 256, f"model.n_dec_layers={self.n_dec_layers} debe estar entre 1 y 256.")
        need(
            self.pos_encoding == "sinusoidal" and self.norm == "layernorm" and not self.bigram_buckets,
            f"un T5 lee posiciones sinusoidales con LayerNorm y sin pares de letras (pos_encoding={self.pos_encoding}, "
            f"norm={self.norm}, bigram_buckets={self.bigram_buckets}); si viene de --init, usa un BERT del preset "
            "`bert`, que es así.",
        )
        need(4 <= self.target_size <= 8192, f"model.target_size={self.target_size} debe estar entre 4 y 8192.")
        need(1 <= self.n_sentinels <= 1000, f"model.n_sentinels={self.n_sentinels} debe estar entre 1 y 1000.")
        need(0.0 < self.mask_rate < 1.0, f"model.mask_rate={self.mask_rate} debe estar entre 0 y 1 (T5 usa 0.15).")
        need(
            0.0 < self.encoder_lr <= 1.0,
            f"model.encoder_lr={self.encoder_lr} debe estar en (0, 1] (el codificador "
            "aprende a esa fracción del learning rate; 0.1 por defecto).",
        )
        need(
            1.0 <= self.span_length <= self.block_size,
            f"model.span_length={self.span_length} debe estar entre 1 y block_size ({self.block_size}).",
        )
        spans = max(1, round(self.block_size * self.mask_rate / self.span_length))
        need(
            spans <= self.n_sentinels,
            f"una ventana de {self.block_size} tokens esconde unos {spans} tramos y sólo hay "
            f"model.n_sentinels={self.n_sentinels} centinelas; sube n_sentinels o span_length.",
        )
        need(
            round(self.block_size * self.mask_rate) + spans + 1 <= self.target_size,
            f"model.target_size={self.target_size} no alcanza para escribir los tramos escondidos de una ventana de "
            f"{self.block_size}; súbelo.",
        )

    def estimate_parameters(self) -> int:
        C = self.d_model
        return super().estimate_parameters() + self.n_dec_layers * (8 * C * C + 2 * C * self.d_ff)

    @property
    def causal(self) -> bool:
        return False  # the encoder reads both sides; the decoder's own blocks are causal

    @property
    def n_ids(self) -> int:
        return self.vocab_size + self.n_sentinels + 2

    def sentinel(self, k: int) -> int:
        return self.vocab_size + k

    @property
    def start_id(self) -> int:
        return self.vocab_size + self.n_sentinels

    @property
    def end_id(self) -> int:
        return self.vocab_size + self.n_sentinels + 1


IGNORE = -100  # an answer position past its <end>: not scored
CLASSIFY_PREFIX = "clasifica: "  # a task is written in the input: «clasifica: Más vale tarde que nunca.» -> «refrán»


@dataclass
class T5TaskConfig(T5Config):
    """The [model] section of a T5 that learns a task written as text (from a pretrained T5 run with --init)."""

    kind: str = "t5-tareas"
    n_labels: int = 0  # filled in from the labelled lines
    init: str = ""  # folder of a pretrained T5 run whose weights start this one, or a BERT's: its encoder ("" = none)


TILDES_PREFIX = "tildes: "  # the accents task, written in the input: «tildes: el dijo que si» -> «él dijo que sí»


@dataclass
class T5TildesConfig(T5Config):
    """The [model] section of a T5 that puts the accents back, text to text: the input «tildes: » and a window of
    the stripped text, the answer the same window with its accents (block_size - len(«tildes: ») characters)."""

    kind: str = "t5-tildes"
    init: str = ""  # folder of a pretrained T5 run whose weights start this one ("" = from scratch)
    word_loss: float = 1.0  # weight of the choice among a word's training forms, beside the characters written

    def check(self, data) -> None:
        super().check(data)
        need(
            0.0 <= self.word_loss <= 100.0,
            f"model.word_loss={self.word_loss} debe estar entre 0 (sólo los caracteres) y 100.",
        )
        need(
            data.tokenizer == "char",
            f"data.tokenizer={data.tokenizer}: el T5 de tildes escribe el texto letra a "
            "letra y necesita caracteres (--set tokenizer=char).",
        )
        need(
            self.text_window >= 8,
            f"model.block_size={self.block_size}: al T5 de tildes le quedan "
            f"{self.text_window} caracteres de texto tras «{TILDES_PREFIX}»; súbelo a 32 o más.",
        )

    @property
    def text_window(self) -> int:
        return self.block_size - len(TILDES_PREFIX)  # characters of text the encoder reads and the decoder writes


class CrossAttention(nn.Module):
    """The decoder's positions (queries) look at the encoder's memory (keys and values): answer × input."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.query = nn.Linear(cfg.d_model, cfg.d_model)  # what is the answer looking for?
        self.key = nn.Linear(cfg.d_model, cfg.d_model)  # what does each input position hold?
        self.value = nn.Linear(cfg.d_model, cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)  # its rate (.p) also drops attention weights

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor | None = None, record: list | None = None
    ) -> torch.Tensor:
        """x (B, T, C) the answer so far, memory (B, S, C) the input read, keys (B, S) True where the input is text;
        record: a list the weights (B, H, T, S) are appended to."""
        B, T, C = x.shape
        q, k, v = self.heads(self.query(x)), self.heads(self.key(memory)), self.heads(self.value(memory))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, S): no causal mask, all the input
        if keys is not None:
            scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))  # padding: never looked at
        weights = F.softmax(scores, dim=-1)
        if record is not None:
            record.append(weights.detach())
        y = F.dropout(weights, self.dropout.p, self.training) @ v  # (B, H, T, D)
        return self.dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class DecoderBlock(nn.Module):
    """GPT's block with one more step: after looking back at the answer, look at the input."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attention = CausalSelfAttention(cfg)
        self.attention.causal = True  # the answer is written left to right
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.cross = CrossAttention(cfg)
        self.norm3 = nn.LayerNorm(cfg.d_model)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x, memory, keys=None, record: list | None = None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        x = x + self.cross(self.norm2(x), memory, keys, record)
        return x + self.feed_forward(self.norm3(x))


class T5(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.n_ids, cfg.d_model)  # shared by the input and the answer
        longest = max(cfg.block_size, cfg.target_size)  # the decoder of a T5 de tildes writes up to block_size
        self.register_buffer("pe", sinusoidal_positions(longest, cfg.d_model), persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))  # the encoder (causal mask off)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_dec_layers))
        self.dec_norm = nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.n_ids)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    @torch.no_grad()
    def start_encoder_from(self, bert: nn.Module) -> None:
        """The encoder starts as a pretrained BERT of the same size (its blocks, its last norm and its characters'
        embeddings: the first vocab_size rows, which the decoder reads too); the decoder starts anew. A BERT that hid
        single characters reads letters in context better than a T5 pretrained as long on spans (README «Tildes»)."""
        self.blocks.load_state_dict(bert.blocks.state_dict())
        self.norm.load_state_dict(bert.norm.state_dict())
        V = self.cfg.vocab_size
        self.embedding.weight[:V] = bert.embedding.weight[:V]

    def lr_ratios(self) -> dict[int, float]:
        """The encoder learns at encoder_lr × lr. At the full rate it never starts: while the cross-attention is still
        uniform, every input position gets the same gradient, which carries nothing but noise; Adam turns that noise
        into full-size steps, the encoder's output grows (6.6 → 226 in 500 steps, measured), its final LayerNorm makes
        it a constant, and the cross-attention stays uniform for good. Slower, it keeps its size and the attention
        learns where to look (README, «BERT y T5»)."""
        encoder = [*self.blocks.parameters(), *self.norm.parameters()]
        return {id(p): self.cfg.encoder_lr for p in encoder}

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(idx) + self.pe[: idx.shape[1]])  # (B, T, C)

    def encode(self, src: torch.Tensor, keys: torch.Tensor | None = None, record: list | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, C): the input read from both sides."""
        x = self.embed(src)
        for block in self.blocks:
            x = block(x, None, record, keys=keys)
        return self.norm(x)

    def decode(
        self, tgt: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor | None = None, record: list | None = None
    ) -> torch.Tensor:
        """tgt (B, T) the answer so far (it starts with <start>) -> logits of each next answer token (B, T, n_ids)."""
        x = self.embed(tgt)
        for block in self.decoder:
            x = block(x, memory, keys, record)
        return self.output(self.dec_norm(x))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(tgt, self.encode(src, keys), keys)

    @torch.no_grad()
    def answer(self, src: torch.Tensor) -> list[tuple[int, float]]:
        """Greedy answer to one input (1, S): (token, probability) until <end> or target_size tokens."""
        memory, tgt, out = self.encode(src), torch.tensor([[self.cfg.start_id]], device=src.device), []
        for _ in range(self.cfg.target_size):
            probs = torch.softmax(self.decode(tgt, memory)[0, -1].float(), dim=-1)  # (n_ids,)
            p, token = probs.max(dim=-1)
            if int(token) == self.cfg.end_id:
                break
            out.append((int(token), float(p)))
            tgt = torch.cat([tgt, token.view(1, 1)], dim=1)
        return out

    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's attention, each layer (B, H, S, S): no causal triangle. Returned, not kept in the model."""
        maps: list[torch.Tensor] = []
        self.encode(idx, record=maps)
        return maps

    def cross_attention_maps(self, src: torch.Tensor, tgt: torch.Tensor) -> list[torch.Tensor]:
        """Per decoder layer, where each answer position looked in the input: (B, H, T_answer, S_input)."""
        maps: list[torch.Tensor] = []
        self.decode(tgt, self.encode(src), record=maps)
        return maps


def answers_of(tokenizer, names: list[str], cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Each label as the decoder writes it: its input (L, A) (<start>, then the label) and its targets (L, A) (the
    label, then <end>; IGNORE after it)."""
    written = [tokenizer.encode(name, unknown="replace")[: cfg.target_size - 1] + [cfg.end_id] for name in names]
    A = max(map(len, written))
    dec_in = torch.full((len(names), A), cfg.start_id)
    targets = torch.full((len(names), A), IGNORE)
    for i, row in enumerate(written):
        dec_in[i, 1 : len(row)] = torch.tensor(row[:-1])
        targets[i, : len(row)] = torch.tensor(row)
    return dec_in, targets


@torch.no_grad()
def label_scores(
    model, src: torch.Tensor, keys: torch.Tensor, dec_in: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """ln P(label l's answer | text) for every text (B, S) and label: (B, L)."""
    memory = model.encode(src, keys)  # (B, S, C): read once, answered once per label
    scores = []
    for d, t in zip(dec_in, targets):
        logits = model.decode(d.expand(len(src), -1), memory, keys).float()  # (B, A, n_ids)
        lp = F.cross_entropy(logits.transpose(1, 2), t.expand(len(src), -1), ignore_index=IGNORE, reduction="none")
        scores.append(-lp.sum(dim=1))  # (B,)
    return torch.stack(scores, dim=1)


T5_TASKS = (("clasificar", "t5-tareas"), ("tildes", "t5-tildes"))
KIND = Kind(
    name="t5",
    title="T5",
    config=T5Config,
    build=T5,
    objective="spans",
    preset="t5",
    timed_preset="t5",
    language_model=False,
    fills=True,
    encoder_decoder=True,
    prepared_data=False,
    tasks=T5_TASKS,
    shows_attention=True,
    shows_embedding=True,
    slower_parts=True,
    score_head=True,
    refusal="{run} es un T5 (codificador y decodificador): no escribe texto de izquierda a derecha; úsalo con "
    '`taller fill {run} --text "Más vale ___ que nunca."` (cada serie de _ es un tramo de cualquier largo).',
)

TASKS = Kind(
    name="t5-tareas",
    title="T5 de tareas",
    config=T5TaskConfig,
    build=T5,
    objective="text_to_text",
    preset="t5-tareas",
    timed_preset="t5-tareas",
    fine_tunes=True,
    language_model=False,
    classifies=True,
    encoder_decoder=True,
    distributed=False,
    prepared_data=False,
    shows_attention=True,
    shows_embedding=True,
    slower_parts=True,
    score_head=True,
    refusal="{run} es un T5 que responde una tarea escrita como texto («clasifica: …»): pregúntale con "
    '`taller classify {run} --text "…"`.',
)

TILDES = Kind(
    name="t5-tildes",
    title="T5 de tildes",
    config=T5TildesConfig,
    build=T5,
    objective="tildes",
    preset="t5-tildes",
    timed_preset="t5-tildes",
    fine_tunes=True,
    language_model=False,
    fixes_accents=True,
    encoder_decoder=True,
    distributed=False,
    prepared_data=False,
    shows_attention=True,
    shows_embedding=True,
    slower_parts=True,
    score_head=True,
    refusal="{run} es un T5 que pone tildes («tildes: …» -> el texto con ellas): úsalo con "
    '`taller tildes {run} --text "el dijo que si"`.',
)
